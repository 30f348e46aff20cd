"""The differential engine charges a raise to the one aspect of a drawn call that causes it (the
attribution rule of docs/conformance.md, issue 23): each test builds one call that holds several
aspects, on a target with one fault, and pins the exact clauses the raise is charged to. Before
issue 23 each was charged to every clause the call exercises.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import batchapply
from batchapply_conformance import _differential
from batchapply_conformance._checks import Target
from batchapply_conformance.input_space import DEEP, WideCall
from batchapply_conformance.nodes import KeyedNode
from batchapply_conformance.strategies import Point


def target(check: Callable[[Any], None]) -> Target:
    """``batchapply.BatchApply`` that first calls ``check((args, kwargs))`` (which may raise)."""

    def factory(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
        apply = batchapply.BatchApply(f, num_dims)

        def call(*args: Any, **kwargs: Any) -> Any:
            check((args, kwargs))
            return apply(*args, **kwargs)

        return call

    return Target(name="test", factory=factory, module=batchapply, options=frozenset())


def walk(tree: Any) -> list[Any]:
    """Every object in ``tree`` (lists, tuples, dicts, Points, KeyedNodes), with a stack of its own."""
    seen, stack = [], [tree]
    while stack:
        x = stack.pop()
        seen.append(x)
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, KeyedNode):
            stack.extend((x.a, x.b))
    return seen


def depth(tree: Any) -> int:
    deepest, stack = 0, [(tree, 0)]
    while stack:
        x, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(x, (list, tuple)):
            stack.extend((y, level + 1) for y in x)
    return deepest


def refuse(condition: Callable[[Any], bool], error: type[Exception] = ValueError) -> Callable[[Any], None]:
    def check(tree: Any) -> None:
        if condition(tree):
            raise error("this target cannot take it")

    return check


def deep(inner: Any) -> Any:
    for _ in range(DEEP):
        inner = [inner]
    return inner


def kit_call(*args: Any, num_dims: int = 2, classes: frozenset[str] = frozenset(), **kwargs: Any) -> WideCall:
    return WideCall("rolled", args, kwargs, num_dims, None, classes, None)


ROWS = np.arange(24.0).reshape(2, 3, 4)
NESTED = deep([Point(np.ones((2, 3)), 1.5), KeyedNode(np.ones((2, 3)), np.zeros((2, 3)))])
"""A list nested 600 deep holding a namedtuple, a custom node and a Python scalar."""


def charged(t: Target, call: WideCall) -> list[tuple[str, ...]]:
    return [clauses for clauses, _, _ in _differential.problems(t, call)]


@pytest.mark.parametrize(
    ("fault", "clauses"),
    [
        (refuse(lambda tree: depth(tree) > 100), ("BA-1.5",)),
        (refuse(lambda tree: any(isinstance(x, Point) for x in walk(tree))), ("BA-1.3",)),
        (refuse(lambda tree: any(isinstance(x, KeyedNode) for x in walk(tree))), ("BA-1.3",)),
        (refuse(lambda tree: any(type(x) is float for x in walk(tree))), ("BA-1.2",)),
    ],
    ids=["too deep", "namedtuple", "custom node", "python scalar"],
)
def test_a_raise_on_nested_containers_goes_to_the_one_container_or_leaf_at_fault(
    fault: Callable[[Any], None], clauses: tuple[str, ...]
) -> None:
    call = kit_call(NESTED, batch=ROWS)
    assert charged(target(fault), call) == [clauses]


def test_a_recursion_error_goes_to_deep_nesting() -> None:
    def recurse(tree: Any) -> None:  # two frames a level: 1200 for the list nested 600 deep
        if isinstance(tree, (list, tuple)):
            for x in tree:
                visit(x)

    def visit(x: Any) -> None:
        recurse(x)

    call = kit_call(NESTED, batch=ROWS, classes=frozenset({"container: nested 600 deep"}))
    assert charged(target(recurse), call) == [("BA-1.5",)]


def reshape_minus_one(tree: Any) -> None:
    """Merges as ``x.reshape((-1,) + x.shape[2:])`` does: ``-1`` is ambiguous without elements."""
    for x in walk(tree):
        if isinstance(x, np.ndarray) and x.ndim >= 2:
            x.reshape((-1,) + x.shape[2:])


@pytest.mark.parametrize(
    ("shape", "clauses"), [((2, 3, 0), ("BA-1.6",)), ((2, 0, 0), ("BA-5.4",))], ids=["rows", "N = 0"]
)
def test_a_raise_on_arrays_without_elements_goes_to_their_clause(
    shape: tuple[int, ...], clauses: tuple[str, ...]
) -> None:
    # The keyword named self and the masked leaf are benign here: not charged (BA-6.2, BA-5.7).
    masked = np.ma.masked_array(np.zeros(shape), mask=np.zeros(shape, bool))
    call = kit_call(np.zeros(shape), batch=masked, self=np.zeros(shape))
    assert charged(target(reshape_minus_one), call) == [clauses]


def test_of_two_faults_in_one_call_the_raise_goes_to_the_one_that_raised() -> None:
    def two_faults(tree: Any) -> None:
        if any(isinstance(x, np.ma.MaskedArray) for x in walk(tree)):
            raise ValueError("masked arrays are not supported")
        if "self" in tree[1]:
            raise TypeError("got multiple values for argument 'self'")

    masked = np.ma.masked_array(ROWS, mask=ROWS > 20)
    call = kit_call(ROWS, batch=masked, self=ROWS)
    assert charged(target(two_faults), call) == [("BA-5.7",)]
    call = kit_call(ROWS, batch=ROWS, self=ROWS)
    assert charged(target(two_faults), call) == [("BA-6.2",)]


def test_an_f_that_never_gets_the_merged_rows_fails_the_merge() -> None:
    vmapped = Target.load("batchapply_conformance.adapters.jax_vmap:BatchApply")
    keywords_only = frozenset({"call: array leaves in keywords only"})
    call = kit_call(
        num_dims=1, classes=keywords_only, batch=np.ones(3), x=collections.OrderedDict(a=np.ones(3))
    )
    assert charged(vmapped, call) == [("BA-5.1",)]


def test_a_raise_on_jax_arrays_without_elements_goes_to_their_clause() -> None:
    import jax

    with jax.enable_x64(True):  # 64-bit leaves made as the kit makes them, used outside enable_x64
        rows, other = jax.numpy.zeros((1, 0, 1)), jax.numpy.zeros((1, 0, 2), jax.numpy.complex128)
    empty = refuse(
        lambda tree: any(isinstance(x, jax.Array) and x.size == 0 for x in walk(tree)), ZeroDivisionError
    )
    call = kit_call(rows, batch=rows, f=other, classes=frozenset({"leaf: jax x64", "keyword: f"}))
    assert charged(target(empty), call) == [("BA-5.4",)]


def test_a_golden_crash_on_masked_arrays_goes_to_the_mask_clause() -> None:
    from batchapply_conformance import _checks, _diagnose

    masked = target(refuse(lambda tree: any(isinstance(x, np.ma.MaskedArray) for x in walk(tree))))
    (check,) = [c for c in _checks.golden_checks() if c.name.endswith(":masked-array-with-plain-arrays")]
    assert set(check.clauses) == {"BA-5.7", "BA-1.3"}  # the case cites both
    found = _diagnose.run_check(check, masked)
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [("BA-5.7",)]


def changed(merge: Callable[[Any], Any] = lambda x: x, split: Callable[[Any], Any] = lambda x: x) -> Target:
    """``batchapply.BatchApply`` whose ``f`` gets each array leaf through ``merge`` and whose
    caller gets each output array leaf through ``split`` (one side's fault at a time)."""
    import jax

    def arrays(fn: Callable[[Any], Any], tree: Any) -> Any:
        return jax.tree_util.tree_map(lambda x: fn(x) if isinstance(x, np.ndarray) else x, tree)

    def factory(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
        apply = batchapply.BatchApply(
            lambda *a, **k: f(*arrays(merge, a), **arrays(merge, k)), num_dims, **options
        )
        return lambda *args, **kwargs: arrays(split, apply(*args, **kwargs))

    return Target(name="test", factory=factory, module=batchapply, options=frozenset())


UPCAST = lambda x: x.astype(np.float64) if x.dtype == np.float32 else x  # noqa: E731
MERGE_FAULT, SPLIT_FAULT = changed(merge=UPCAST), changed(split=UPCAST)


@pytest.mark.parametrize(("fault", "clauses"), [(MERGE_FAULT, ("BA-5.2",)), (SPLIT_FAULT, ("BA-7.2",))])
def test_a_wrong_dtype_goes_to_the_side_that_made_it(fault: Target, clauses: tuple[str, ...]) -> None:
    # The outputs alone differ alike (float64 for float32); what f was given tells the two apart.
    call = kit_call(batch=np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert charged(fault, call) == [clauses]


@pytest.mark.parametrize(("fault", "clauses"), [(MERGE_FAULT, ("BA-5.2",)), (SPLIT_FAULT, ("BA-7.2",))])
def test_a_golden_dtype_fault_goes_to_the_side_that_made_it(fault: Target, clauses: tuple[str, ...]) -> None:
    from batchapply_conformance import _checks, _diagnose

    (check,) = [c for c in _checks.golden_checks() if c.name == "golden floating:tanh-float32-leading2x3"]
    found = _diagnose.run_check(check, fault)
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [clauses]


def retyped(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """``batchapply.BatchApply`` whose call errors are all ``RuntimeError``, SPEC's prefix kept."""
    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return apply(*args, **kwargs)
        except (ValueError, TypeError) as e:
            raise RuntimeError(str(e)) from None

    return call


@pytest.mark.parametrize(
    ("reworded", "clauses"), [(True, ("BA-10.1",)), (False, None)], ids=["prefix", "type"]
)
def test_a_right_error_worded_otherwise_goes_to_the_prefix_clause(
    reworded: bool, clauses: tuple[str, ...] | None
) -> None:
    # The row's condition clause (BA-3.1, when E9 is raised) holds where the type is right.
    from batchapply_conformance import _checks, _diagnose, _error_rows

    if reworded:  # the corpus target: the row's type and words, another prefix
        fault = Target.load("broken_targets:reworded_errors")
    else:
        fault = Target(name="test", factory=retyped, module=batchapply, options=frozenset())
    (case,) = [c for c in _checks.golden_checks() if c.name == "golden errors:E9-transposed-leading"]
    (row,) = [c for c in _error_rows.error_row_checks() if c.name == "error row E9"]
    for check in (case, row):
        found = _diagnose.run_check(check, fault)
        assert [o.charged for o in (found if isinstance(found, list) else [found])] == [clauses]


def test_a_missing_error_is_not_an_escaped_one() -> None:
    # E10 not raised: BA-7.3 and BA-10.1 fail; BA-10.2 (no other exception escapes) holds.
    from batchapply_conformance import _checks, _diagnose

    fault = Target.load("broken_targets:scalar_outputs_broadcast")  # rank-0 outputs broadcast, no E10
    (check,) = [c for c in _checks.golden_checks() if c.name == "golden errors:E10-rank0-output"]
    assert "BA-10.2" in check.clauses
    found = _diagnose.run_check(check, fault)
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [("BA-7.3", "BA-10.1")]


def test_a_broadcast_rank0_output_goes_to_the_rank0_clause() -> None:
    # The outputs differ in shape, as a wrong split's would; the rank-0 leaf names BA-7.3.
    from batchapply_conformance import _checks, _diagnose

    fault = Target.load("broken_targets:scalar_outputs_broadcast")  # rank-0 outputs broadcast, no E10
    (check,) = [c for c in _checks.golden_checks() if c.name == "golden pytrees:pass-through-rank0-array"]
    found = _diagnose.run_check(check, fault)
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [("BA-7.3",)]


def e8_everywhere(tree: Any) -> None:
    raise ValueError("BatchApply requires at least one input with ndim >= 1, got none.")


@pytest.mark.parametrize(
    ("fault", "keyword_clause"), [("broken_targets:positional_leading_only", True), ("e8", False)]
)
def test_an_e8_that_keyword_leaves_disprove_goes_to_the_keyword_clause(
    fault: str, keyword_clause: bool
) -> None:
    # A target that looks for the leading shape in the positional arguments only raises E8 on a
    # call whose batch is all keywords: BA-4.5's fault, not that of the merge (BA-5.x) or of the
    # containers (BA-1.3) the check cites. A target that raises E8 on every call keeps them.
    from batchapply_conformance import _checks, _diagnose, _properties

    broken = Target.load(fault) if fault != "e8" else target(e8_everywhere)
    (case,) = [c for c in _checks.golden_checks() if c.name == "golden pytrees:kwargs-only"]
    assert set(case.clauses) == {"BA-1.3", "BA-4.5"}  # the case cites both
    found = _diagnose.run_check(case, broken)
    golden_charged = [o.charged for o in (found if isinstance(found, list) else [found])]
    (check,) = [
        c for c in _properties.property_checks(max_examples=1, seed=0) if c.name.endswith("on array leaves")
    ]
    example = {
        "function": "identity",
        "num_dims": _checks.safe_encode(1),
        "in_axes": _checks.safe_encode(0),
        "out_axes": _checks.safe_encode(0),
        "args": _checks.safe_encode(()),
        "kwargs": _checks.safe_encode({"batch": np.arange(3.0)}),
    }
    raised = _checks.Outcome("fail", "expected an output, got ValueError: BatchApply requires", example)
    property_charged = [o.charged for o in _diagnose.diagnose(check, [raised], broken)]  # type: ignore[union-attr]
    if keyword_clause:
        assert golden_charged == [("BA-4.5",)] and property_charged == [("BA-4.5",)]
    else:
        assert ("BA-4.5",) not in golden_charged + property_charged
        assert property_charged and all(c and "BA-5.1" in c for c in property_charged)


@pytest.mark.parametrize(
    ("case", "clauses"),
    [("axes:in-axes-none-kwargs-merged", ("BA-4.2",)), ("errors:E8-all-unselected", ("BA-4.2", "BA-10.1"))],
)
def test_a_golden_error_that_in_axes_none_hides_goes_to_in_axes(case: str, clauses: tuple[str, ...]) -> None:
    # A target that reads in_axes=None as 0 merges the positional leaves, so the error of the case
    # (E10 for an unmerged argument returned, E8 for nothing to merge) is not raised: BA-4.2's
    # fault, not that of the keyword leaves (BA-4.5) or of E8's condition (BA-3.3) the case cites.
    from batchapply_conformance import _checks, _diagnose

    fault = Target.load("broken_targets:in_axes_none_merges")
    (check,) = [c for c in _checks.golden_checks() if c.name == f"golden {case}"]
    assert set(clauses) < set(check.clauses)
    found = _diagnose.run_check(check, fault)
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [clauses]


def test_a_property_counterexample_that_json_cannot_hold_is_diagnosed_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The counterexamples of the check with non-array leaves hold Points and Tokens, which the
    # report keeps as a repr: the diagnosis reruns the call itself (Outcome.call), so the
    # in_axes=None fault is BA-4.2's, not the merge's and the split's (BA-5.1, BA-7.2).
    from batchapply_conformance import _diagnose, _properties

    monkeypatch.setattr(_properties, "SHRINK_SECONDS", 0)
    monkeypatch.setattr(_properties, "SWEEP_AFTER_FAILURE_SECONDS", 0)
    fault = Target.load("broken_targets:in_axes_none_merges")
    (check,) = [
        c
        for c in _properties.property_checks(max_examples=20, seed=None)
        if c.name.endswith("non-array leaves")
    ]
    found = _diagnose.run_check(check, fault)
    outcomes = found if isinstance(found, list) else [found]
    assert [o.charged for o in outcomes] == [("BA-4.2",)]
    assert all(o.call is None for o in outcomes)  # the call stays in the worker
    assert "repr" in str(outcomes[0].counterexample)  # what JSON holds of it


@pytest.mark.parametrize(
    "name", ["audit one object in four threads", "transform chunks under a trace", "differential closure"]
)
def test_a_check_that_calls_twice_judges_its_own_clause_on_inputs_a_call_changed(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A target that writes an output into an input buffer fails BA-5.5. These checks call it more
    # than once on the same inputs (or read them after the call): each expects what unchanged
    # inputs give, so the change is BA-5.5's alone, not that of threads (BA-6.4), of chunks under
    # a trace (BA-13.4) or of a stale f (BA-6.1).
    from batchapply_conformance import _diagnose, _properties, _run

    monkeypatch.setattr(_properties, "SHRINK_SECONDS", 0)
    monkeypatch.setattr(_properties, "SWEEP_AFTER_FAILURE_SECONDS", 0)
    fault = Target.load("broken_targets:writes_output_in_place")
    (check,) = [c for c in _run.all_checks("dev", 20, None) if c.name == name]
    found = _diagnose.run_check(check, fault)
    failures = [o for o in (found if isinstance(found, list) else [found]) if o.status == "fail"]
    assert all(o.charged == ("BA-5.5",) for o in failures), [(o.charged, o.detail) for o in failures]


@pytest.mark.parametrize(
    ("fault", "case", "clauses"),
    [
        # NumPy inputs merged in the C order whatever the counts: the order's fault, not that of the
        # values row_order takes (BA-14.1) or of one order per call (BA-14.3), which the case cites.
        ("row_order_only_for_jax", "row_order:row-order-gather_rows-leading2x4-counts1x2", ("BA-14.2",)),
        # No chunks under shard counts: which rows form a chunk (BA-14.9), not the chunk clauses
        # of section 13 or BA-14.3 that the case cites.
        ("global_chunks", "chunking:chunk-with-row-order", ("BA-14.9",)),
    ],
)
def test_a_golden_fault_with_row_order_goes_to_the_option_at_fault(
    fault: str, case: str, clauses: tuple[str, ...]
) -> None:
    from batchapply_conformance import _checks, _diagnose

    (check,) = [c for c in _checks.golden_checks() if c.name == f"golden {case}"]
    assert set(clauses) < set(check.clauses)
    found = _diagnose.run_check(check, Target.load(f"broken_targets:{fault}"))
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [clauses]


def test_a_compiled_f_kept_without_chunks_is_the_once_per_call_clause() -> None:
    # A jit of f kept with the object for unchunked calls: f is not run again (BA-6.1). The
    # check also cites "no compiled program of f is kept" for chunked calls (BA-13.4), whose
    # calls here run f each time.
    from batchapply_conformance import _diagnose, _jax_inputs

    (check,) = [c for c in _jax_inputs.jax_input_checks() if c.name.endswith("closure changes between calls")]
    assert set(check.clauses) == {"BA-6.1", "BA-13.4"}
    found = _diagnose.run_check(check, Target.load("broken_targets:jit_cached_f"))
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [("BA-6.1",)]


def halved_chunks(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """``batchapply.BatchApply`` with chunks of half the ``chunk_size`` (at least 1 row)."""
    size = options.pop("chunk_size", None)
    return batchapply.BatchApply(f, num_dims, chunk_size=size and max(1, size // 2), **options)


HALVED = Target(name="test", factory=halved_chunks, module=batchapply, options=frozenset({"chunk_size"}))


@pytest.mark.parametrize(
    ("fault", "case", "clauses"),
    [
        # The short last chunk padded (or widened over the chunk before): f got other rows, so a
        # row-mixing f's values differ; not the join (BA-13.5, 13.8), the one-call rule (BA-13.2) or
        # the order of the calls (BA-13.4) that the case cites, nor the row-mixing clause alone.
        ("padded_last_chunk", "chunk-reverse_rows-size5", ("BA-13.3",)),
        ("overlapping_last_chunk", "chunk-reverse_rows-size5", ("BA-13.3",)),
        ("padded_last_chunk", "chunk-batch-mean-per-chunk", ("BA-13.3",)),
        # No chunks when chunk_size divides N; with shard counts too, where the C order fails alike.
        ("unchunked_when_divisible", "chunk-reverse_rows-size1", ("BA-13.3",)),
        ("unchunked_when_divisible", "chunk-with-row-order", ("BA-13.3",)),
        # N <= chunk_size cut into two calls: f must get every row at once (BA-13.2).
        (HALVED, "chunk-reverse_rows-size12", ("BA-13.2",)),
        (HALVED, "chunk-reverse_rows-size5", ("BA-13.3",)),
    ],
)
def test_a_golden_chunk_fault_goes_to_the_rows_f_was_given(
    fault: str | Target, case: str, clauses: tuple[str, ...]
) -> None:
    from batchapply_conformance import _checks, _diagnose

    (check,) = [c for c in _checks.golden_checks() if c.name == f"golden chunking:{case}"]
    t = fault if isinstance(fault, Target) else Target.load(f"broken_targets:{fault}")
    found = _diagnose.run_check(check, t)
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [clauses]


@pytest.mark.parametrize(
    ("fault", "clauses"),
    [
        # Chunks run last first: their calls, and so the positions counted over the rows f saw
        # before, come in another order (BA-13.4), not other rows (BA-13.3).
        ("chunks_last_first", [("BA-13.4",)]),
        # The last chunk widened over the one before: other rows (its positions), whose rolled
        # values differ too: not also the join (BA-13.5).
        ("overlapping_last_chunk", [("BA-13.3",)]),
    ],
)
def test_a_differential_chunk_fault_is_charged_once_for_its_cause(
    fault: str, clauses: list[tuple[str, ...]]
) -> None:
    call = WideCall("rolled", (), {"batch": np.arange(3.0).reshape(1, 3, 1)}, 2, 2, frozenset())
    assert charged(Target.load(f"broken_targets:{fault}"), call) == clauses


@pytest.mark.parametrize(
    ("fault", "clause"), [("padded_last_chunk", "BA-13.3"), ("chunks_last_first", "BA-13.4")]
)
def test_chunks_under_a_trace_of_other_sizes_are_the_rows_clause(fault: str, clause: str) -> None:
    # f called as often as BA-13.4 says, with inputs of the right kinds: a last chunk padded to
    # chunk_size rows is which rows form a chunk (BA-13.3); the same chunks in another order, BA-13.4.
    from batchapply_conformance import _diagnose, _run

    (check,) = [c for c in _run.all_checks("dev", 20, None) if c.name == "transform chunks under a trace"]
    found = _diagnose.run_check(check, Target.load(f"broken_targets:{fault}"))
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [(clause,)]


@pytest.mark.parametrize("name", ["audit f raises partway", "audit 64-bit NumPy and jax chunk outputs"])
def test_an_audit_whose_f_never_reached_its_second_chunk_is_the_chunks_fault(name: str) -> None:
    # f raises (or returns another type) on its second chunk; called once, it never does: the
    # chunks are at fault (BA-13.3, BA-13.4), not the raise (BA-6.3) or the join (BA-13.8).
    from batchapply_conformance import _diagnose, _run

    (check,) = [c for c in _run.all_checks("dev", 20, None) if c.name == name]
    found = _diagnose.run_check(check, Target.load("broken_targets:unchunked_when_divisible"))
    assert [o.charged for o in (found if isinstance(found, list) else [found])] == [("BA-13.3", "BA-13.4")]


def test_a_raise_lost_where_f_runs_once_still_fails_the_raise_clause() -> None:
    # The same check keeps BA-6.3: a target that calls f once and swallows f's exception fails it.
    from batchapply_conformance import _diagnose, _run

    def swallowing(f: Callable[..., Any], num_dims: int = 2, chunk_size: Any = None) -> Callable[..., Any]:
        apply = batchapply.BatchApply(f, num_dims)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return apply(*args, **kwargs)
            except Exception:
                return None

        return call

    (check,) = [c for c in _run.all_checks("dev", 20, None) if c.name == "audit f raises partway"]
    t = Target(name="test", factory=swallowing, module=batchapply, options=frozenset({"chunk_size"}))
    found = _diagnose.run_check(check, t)
    charges = [o.charged for o in (found if isinstance(found, list) else [found]) if o.status == "fail"]
    assert charges == [("BA-13.3", "BA-13.4"), None], charges
