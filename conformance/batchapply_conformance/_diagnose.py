"""Attribution by diagnosis: is a failing call with an option the option's fault?

A golden case that uses an option (``in_axes``, ``out_axes``, ``chunk_size``,
``row_order``) charges a structure, values or leaf fault to the clauses of that
option's section. A target that reverses every tuple output would then fail "f is
called once per chunk" (BA-13.4) as well as BA-7.1. So when such a case fails, the
runner re-runs its call with the option taken away (the control): ``chunk_size`` and
``row_order`` dropped, ``in_axes=None`` arguments bound into ``f`` instead of passed,
the expected output from the reference. If the control fails too, the fault is not
the option's: it is charged as the control's failure is (to the clause of the
violated property: BA-7.1 for structure, ...). If the control passes, the option's
clauses keep it.

Likewise an exception where an output was expected, in a golden case or in a property
check's minimal counterexample (a raise may come from merging the inputs or from
splitting the outputs): the control keeps the inputs and ``in_axes`` but ``f`` returns
only the first row leaf (``out_axes=0``). If the control passes, the inputs were fine:
the failure is charged to the output clauses (section 7) the case cites; if it raises
too, to the clauses it cites about inputs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from batchapply_conformance import _sides, golden
from batchapply_conformance._checks import (
    OPTION_SECTIONS,
    PASS_THROUGH,
    PROPERTY_CLAUSES,
    Check,
    Outcome,
    Outcomes,
    Target,
    describe_error,
)

OPTION_PREFIXES = tuple(prefix for _, prefix in OPTION_SECTIONS)


def run_check(check: Check, target: Target) -> Outcomes:
    """``check.run(target)``, its option-charged failures diagnosed (:func:`diagnose`).

    A golden case (all of whose inputs are NumPy) runs under
    ``jax.transfer_guard_host_to_device("disallow")``: SPEC BA-5.3 keeps NumPy inputs on
    the host, so an implicit transfer of one is that clause's FAIL.
    """
    if check.name not in _cases():
        return diagnose(check, check.run(target), target)
    with _host_only():
        guarded = check.run(target)
    moved = [o for o in _listed(guarded) if o.status == "fail" and TRANSFER in o.detail]
    if not moved:
        return diagnose(check, guarded, target)
    # Judge the case's own clauses without the guard, so that the transfer hides no other fault.
    found = diagnose(check, check.run(target), target)
    if not _moved_an_array(moved[0].detail):
        return found  # a scalar probed on the device (jnp.asarray(2.5)): no NumPy array moved
    plain = [o for o in _listed(found) if o.status == "fail"]
    case = _cases()[check.name]
    if case.target != "BatchApply":
        charged, moved_what = case.clauses, "a NumPy array input"
    elif calls := _moved_after_f(case, target):
        charged = _sides.CHUNKS_JOINED if calls > 1 else ("BA-7.2",)
        moved_what = "a NumPy output array of f, in the split,"
    else:
        charged, moved_what = ("BA-5.3",), "a NumPy array input"
    why = f"{moved_what} was moved to the device, which {', '.join(charged)} rules out"
    return [*plain, Outcome("fail", f"{moved[0].detail} ({why})", moved[0].counterexample, charged)]


def _moved_after_f(case: golden.GoldenCase, target: Target) -> int:
    """How often ``f`` ran before the transfer the guard stops, where that is as often as in the
    reference (what moved is then an output of ``f``, in the split, not an input); else 0."""
    if case.function is None:
        return 0
    import batchapply_reference
    from batchapply_conformance import functions

    fn = functions.FUNCTIONS[str(case.function)].fn
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return fn(*args, **kwargs)

    try:
        golden.replay(copy.deepcopy(case), batchapply_reference, fn=counting)
    except Exception:
        return 0
    wanted, calls[:] = len(calls), []
    with contextlib.suppress(Exception), _host_only():
        golden.replay(copy.deepcopy(case), target.api(), fn=counting)
    return wanted if wanted == len(calls) else 0


def _moved_an_array(detail: str) -> bool:
    """Whether the transfer the guard stopped was of an array of rank >= 1 (its aval's shape)."""
    import re

    match = re.search(r"aval=ShapedArray\(\w+\[([^\]]*)\]", detail)
    return match is None or bool(match[1].strip())


def _listed(found: Outcomes) -> list[Outcome]:
    return found if isinstance(found, list) else [found]


TRANSFER = "Disallowed host-to-device transfer"


def _host_only() -> Any:
    import contextlib

    try:
        import jax
    except ImportError:
        return contextlib.nullcontext()
    return jax.transfer_guard_host_to_device("disallow")


@functools.cache
def _cases() -> dict[str, golden.GoldenCase]:
    return {f"golden {group}:{case.name}": case for group, case in golden.load_corpus()}


def _on_option(outcome: Outcome, case: golden.GoldenCase) -> bool:
    charged = case.clauses if outcome.charged is None else outcome.charged
    return outcome.status == "fail" and bool(charged) and all(c.startswith(OPTION_PREFIXES) for c in charged)


def diagnose(check: Check, found: Outcomes, target: Target) -> Outcomes:
    """Re-charge the failures of an option case that its control call shows without the option,
    and the exceptions of an identity case to its inputs' or its outputs' clauses."""
    case = _cases().get(check.name)
    outcomes = _listed(found)
    if case is None and check.family == "properties":
        found = []
        for o in outcomes:
            decoded = _decoded(o, check)
            if decoded is None:
                found.append(o)
                continue
            o = _keywords_unselected(o, decoded, target)
            o = _in_axes_at_fault(o, decoded, target)
            o = _which_side(_without_elements(o, decoded, target), decoded, target)
            if o.status == "fail" and o.charged is None:  # the check's clauses, which the probe may narrow
                o = dataclasses.replace(o, charged=check.clauses)
            found += _merge_or_split([o], decoded, target)
        return [dataclasses.replace(o, call=None) for o in found]
    if case is not None and case.target == "BatchApply" and case.function is not None and case.expected_error:
        return [_error_in_axes_at_fault(o, case, target) for o in outcomes]
    if (
        case is None
        or case.target != "BatchApply"
        or case.expected_error is not None
        or case.function is None
    ):
        return found
    outcomes = [
        _which_side(_special_kind(_keywords_unselected(o, case, target), case, target), case, target)
        for o in outcomes
    ]
    outcomes = _merge_or_split(outcomes, case, target)
    found = outcomes
    uses_option = not (
        type(case.in_axes) is int
        and case.in_axes == 0
        and type(case.out_axes) is int
        and case.out_axes == 0
        and case.chunk_size is None
        and case.row_order == "C"
    )
    if not uses_option or not any(_on_option(o, case) for o in outcomes):
        return found
    on_order = [
        o for o in outcomes if _on_option(o, case) and any(c.startswith(ORDER) for c in o.charged or ())
    ]
    if case.row_order != "C" and on_order:
        ordered = _order_or_chunks(case, target)
        if ordered is not None:
            clauses, why = ordered
            kept = [o for o in outcomes if not any(o is p for p in on_order)]
            first = on_order[0]
            return [*kept, dataclasses.replace(first, charged=clauses, detail=f"{first.detail} ({why})")]
    control = _control(case)
    if control is None:
        return found
    fn, args, kwargs, dropped = control
    import batchapply_reference
    from batchapply_conformance import functions

    try:
        expected = batchapply_reference.BatchApply(fn, case.num_dims)(
            *copy.deepcopy(args), **copy.deepcopy(kwargs)
        )
    except Exception:
        return found  # without the option the call is not valid: nothing to compare
    try:
        got = target.factory(fn, case.num_dims)(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    except Exception as e:
        plain = [c for c in case.clauses if not c.startswith(OPTION_PREFIXES)]
        if not plain:
            return found
        problems = [(tuple(plain), f"raised {describe_error(e)}")]
    else:
        exact = functions.FUNCTIONS[str(case.function)].exact
        found_kinds = golden.mismatches(expected, got, exact=exact)
        problems = [(_property_clauses(case, kind), problem) for kind, problem in found_kinds]
    if not problems:  # the control passes: the option is at fault
        return _chunks_at_fault(found, case, target) if case.chunk_size is not None else found
    kept = [o for o in outcomes if not _on_option(o, case)]
    example = next((o.counterexample for o in outcomes if _on_option(o, case)), None)
    seen: set[tuple[str, ...]] = set()
    for charged, problem in problems:
        if charged in seen:
            continue
        seen.add(charged)
        detail = f"{problem} (also without {dropped}: not the option's fault)"
        kept.append(Outcome("fail", detail, example, charged))
    return kept


ORDER = "BA-14."
"""The section of ``row_order``."""


def _order_or_chunks(case: golden.GoldenCase, target: Target) -> tuple[tuple[str, ...], str] | None:
    """For a failure on a golden case with a ``row_order`` that its option clauses keep: the
    clauses it goes to, and why, from controls that each take one option away (the reference
    gives what is expected). Passing without ``row_order`` (and, with a ``chunk_size``, failing
    without it) puts the fault on the order: BA-14.2 (and BA-14.4 for ``"shard_major"``), not the
    other clauses of section 14 the case cites (BA-14.1 is about the values the constructor
    takes). With a ``chunk_size``, passing without either option puts it on their combination,
    which rows form a chunk under shard counts (BA-14.9). None: the control of both decides.
    Only failures charged to section 14 clauses are moved."""
    from batchapply_conformance._differential import OPTION_CLAUSES

    def passes(control: golden.GoldenCase) -> bool | None:
        return _passes(control, target)  # None: without the option the call is not valid

    order = OPTION_CLAUSES["row_order shard_major" if case.row_order == "shard_major" else "row_order"]
    unordered = passes(dataclasses.replace(case, row_order="C"))
    if case.chunk_size is None:
        return (order, "the same call in the C order passes: the order is at fault") if unordered else None
    unchunked = passes(dataclasses.replace(case, chunk_size=None))
    if unordered and unchunked:
        why = "the same call passes without row_order and without chunk_size: its counts' chunks are at fault"
        return OPTION_CLAUSES["row_order chunked"], why
    if unchunked is False and unordered:
        return order, "the same call passes in the C order, not without chunk_size: the order is at fault"
    return None  # the chunks alone, or neither: the control of both decides


CHUNKS = "BA-13."
"""The section of ``chunk_size``."""


def _chunks_at_fault(outcomes: list[Outcome], case: golden.GoldenCase, target: Target) -> list[Outcome]:
    """The failures of a golden case with a ``chunk_size`` that its section 13 clauses keep (its
    call passes without the option), charged to what ``f`` was given (:func:`_other_rows`): where
    the calls of ``f`` did not get the reference's chunks, which rows form a chunk is at fault
    (BA-13.3; BA-13.2 where the reference calls ``f`` once with every row), not every section 13
    clause the case cites (the join, the order of the calls). Otherwise, or where a call raised,
    the charge stays. With a ``row_order``, only where the same call in the C order fails too
    (else the order's controls decide)."""
    on_chunks = [
        o for o in outcomes if _on_option(o, case) and any(c.startswith(CHUNKS) for c in o.charged or ())
    ]
    if not on_chunks:
        return outcomes
    if case.row_order != "C" and _passes(dataclasses.replace(case, row_order="C"), target) is not False:
        return outcomes
    found = _other_rows(case, target)
    if found is None:
        return outcomes
    kept = [o for o in outcomes if not any(o is p for p in on_chunks)]
    first = on_chunks[0]
    why = "f was given other rows than the chunks of BA-13.3"
    return [*kept, dataclasses.replace(first, charged=found, detail=f"{first.detail} ({why})")]


def _other_rows(case: golden.GoldenCase, target: Target) -> tuple[str, ...] | None:
    """``("BA-13.3",)`` where the calls of ``f`` in the target were not given the rows of the
    calls in the reference, call for call in some order (a chunk of other rows, one more or one
    fewer); ``("BA-13.2",)`` where the reference calls ``f`` once. None where they were (the
    reference's chunks, in whatever order), or a call raised."""
    import batchapply_reference
    from batchapply_conformance import functions

    fn = functions.FUNCTIONS[str(case.function)].fn

    def calls(api: Any) -> list[Any]:
        given: list[Any] = []

        def recording(*args: Any, **kwargs: Any) -> Any:
            given.append((args, kwargs))
            return fn(*args, **kwargs)

        golden.replay(copy.deepcopy(case), api, fn=recording)
        return given

    try:
        wanted, given = calls(batchapply_reference), calls(target.api())
        unmatched = list(wanted)
        for g in given:  # the same rows, call for call, in whatever order (an equivalence: greedy is exact)
            match = next((i for i, w in enumerate(unmatched) if _same_rows(w, g)), None)
            if match is None:
                break
            del unmatched[match]
        else:
            if not unmatched:
                return None  # f got the reference's chunks
    except Exception:
        return None
    return ("BA-13.2",) if len(wanted) == 1 else ("BA-13.3",)


def _same_rows(expected: Any, got: Any) -> bool:
    """Whether two calls of ``f`` were given the same leaves: arrays of the same shape and bytes
    (of whatever array type), other leaves equal."""
    import jax
    import numpy as np

    want, have = jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(got)
    if len(want) != len(have):
        return False
    for e, a in zip(want, have, strict=True):
        if hasattr(e, "shape") and hasattr(a, "shape"):
            e, a = np.asarray(e), np.asarray(a)
            if e.shape != a.shape or e.dtype != a.dtype or e.tobytes() != a.tobytes():
                return False
        elif not (e is a or (type(e) is type(a) and e == a)):
            return False
    return True


def _passes(control: golden.GoldenCase, target: Target) -> bool | None:
    """Whether the target answers ``control`` as the reference does; None where the reference
    refuses it (the call is not valid)."""
    import batchapply_reference
    from batchapply_conformance import functions

    exact = functions.FUNCTIONS[str(control.function)].exact
    try:
        want = golden.replay(copy.deepcopy(control), batchapply_reference)
    except Exception:
        return None
    try:
        got = golden.replay(copy.deepcopy(control), target.api())
    except Exception:
        return False
    return not golden.mismatches(want, got, exact=exact)


def _merge_or_split(outcomes: list[Outcome], case: golden.GoldenCase, target: Target) -> list[Outcome]:
    """A failure charged to merge or split clauses (an array's type, dtype or values, a
    non-array leaf, the structure), charged to the side that the probe of
    :mod:`batchapply_conformance._sides` shows at fault."""
    if not any(o.status == "fail" and _sides.probed(o.charged) for o in outcomes):
        return outcomes
    import batchapply_reference
    from batchapply_conformance import functions

    fn = functions.FUNCTIONS[str(case.function)].fn

    def run(api: Any) -> Callable[[Callable[..., Any]], Any]:
        return lambda f: golden.replay(copy.deepcopy(case), api, fn=f)

    found = _sides.sides(run(batchapply_reference), run(target.api()), lambda: fn)
    charged: dict[tuple[str, ...] | None, Outcome] = {}
    for o in outcomes:
        if o.status == "fail" and _sides.probed(o.charged):
            clauses, note = _sides.recharge(o.charged or (), found)
            o = dataclasses.replace(o, charged=clauses, detail=f"{o.detail} ({note})" if note else o.detail)
        charged.setdefault(o.charged if o.status == "fail" else (o.status,), o)
    return list(charged.values())


def _without_in_axes(case: golden.GoldenCase) -> tuple[Any, Any, Any, dict[str, Any]] | None:
    """``case``'s call without its ``in_axes`` (its ``None`` arguments bound into ``f``):
    ``(f, args, kwargs, options)``, the options keeping its ``out_axes``; None where there is none."""
    control = _control(dataclasses.replace(case, out_axes=0))  # out_axes is kept in the options
    if control is None:
        return None
    fn, args, kwargs, _ = control
    kept = {} if type(case.out_axes) is int and case.out_axes == 0 else {"out_axes": case.out_axes}
    return fn, args, kwargs, kept


def _in_axes_at_fault(outcome: Outcome, case: golden.GoldenCase, target: Target) -> Outcome:
    """A property check's failure on a call with ``in_axes``, charged to the clauses of that
    ``in_axes`` form (BA-4.x) when the same call without it (its ``None`` arguments bound into
    ``f``) passes: the option, not the property, is at fault."""
    if outcome.status != "fail" or type(case.num_dims) is not int:
        return outcome
    if outcome.charged is not None and not _sides.probed(outcome.charged):
        return outcome
    if type(case.in_axes) is int and case.in_axes == 0:
        return outcome
    control = _without_in_axes(case)
    if control is None:
        return outcome
    fn, args, kwargs, kept = control
    import batchapply_reference
    from batchapply_conformance import functions
    from batchapply_conformance._differential import OPTION_CLAUSES

    try:
        expected = batchapply_reference.BatchApply(fn, case.num_dims, **kept)(
            *copy.deepcopy(args), **copy.deepcopy(kwargs)
        )
        got = target.factory(fn, case.num_dims, **kept)(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    except Exception:
        return outcome
    if golden.mismatches(expected, got, exact=functions.FUNCTIONS[str(case.function)].exact):
        return outcome
    form = "None" if case.in_axes is None else "list" if isinstance(case.in_axes, list) else "tuple"
    why = "the same call without in_axes, its unmerged arguments bound into f, passes"
    return dataclasses.replace(
        outcome, charged=OPTION_CLAUSES[f"in_axes {form}"], detail=f"{outcome.detail} ({why})"
    )


KEYWORDS_CLAUSE = "BA-4.5"
"""Every leaf of the keyword arguments is selected."""


def _keywords_unselected(outcome: Outcome, case: golden.GoldenCase, target: Target) -> Outcome:
    """A failure where the target raises E8 (no leaf to merge) on a call with keyword arguments,
    charged to BA-4.5 alone when the same call with those arguments passed positionally (``f``
    given them back as keywords) gives the reference's result: the target did not select the
    keyword leaves. A raise of E8 only: another fault that shows with keywords (a keyword named
    ``self``, BA-6.2) keeps its own clauses."""
    if outcome.status != "fail" or not case.kwargs or type(case.num_dims) is not int:
        return outcome
    if case.target != "BatchApply" or case.function is None or _row_raised(case, target) != "E8":
        return outcome
    from batchapply_conformance import functions

    fn = functions.FUNCTIONS[str(case.function)].fn
    names, k = list(case.kwargs), len(case.args)

    def rebound(*args: Any) -> Any:
        return fn(*args[:k], **dict(zip(names, args[k:], strict=True)))

    if type(case.in_axes) is int and case.in_axes == 0:
        in_axes: Any = 0
    elif case.in_axes is None:
        in_axes = (None,) * k + (0,) * len(names)
    elif isinstance(case.in_axes, (tuple, list)) and len(case.in_axes) == k:
        in_axes = (*case.in_axes, *(0,) * len(names))
    else:
        return outcome
    positional = (*case.args, *(case.kwargs[name] for name in names))
    control = dataclasses.replace(case, args=positional, kwargs={}, in_axes=in_axes)
    import batchapply_reference

    want = _replayed(control, batchapply_reference, rebound)
    got = _replayed(control, target.api(), rebound)
    if want[0] != got[0]:
        return outcome
    if want[0] == "ok":
        exact = functions.FUNCTIONS[str(case.function)].exact
        if golden.mismatches(want[1], got[1], exact=exact):
            return outcome
    elif type(want[1]) is not type(got[1]) or _row_of(want[1], case) != _row_of(got[1], case):
        return outcome
    why = "E8 raised, but the same call with its keyword arguments passed positionally does as the reference"
    return dataclasses.replace(outcome, charged=(KEYWORDS_CLAUSE,), detail=f"{outcome.detail} ({why})")


def _replayed(case: golden.GoldenCase, api: Any, fn: Callable[..., Any]) -> tuple[str, Any]:
    try:
        return "ok", golden.replay(copy.deepcopy(case), api, fn=fn)
    except Exception as e:
        return "error", e


def _row_of(error: BaseException, case: golden.GoldenCase) -> str | None:
    from batchapply_conformance import _properties

    return _properties._row(error, case.num_dims)


def _row_raised(case: golden.GoldenCase, target: Target) -> str | None:
    """The SPEC error row the target raises on ``case`` (None: another error, or none)."""
    from batchapply_conformance import functions

    if case.function not in functions.FUNCTIONS:
        return None
    kind, got = _replayed(case, target.api(), functions.FUNCTIONS[str(case.function)].fn)
    return _row_of(got, case) if kind == "error" else None


def _error_in_axes_at_fault(outcome: Outcome, case: golden.GoldenCase, target: Target) -> Outcome:
    """A golden error case with ``in_axes`` that the target fails (no error, or another one),
    charged to the clauses of that ``in_axes`` form (and BA-10.1, where the case cites it) when
    the same call without it (its ``None`` arguments bound into ``f``) raises the case's error in
    the target as in the reference: the option, not the row's condition, is at fault."""
    if outcome.status != "fail" or type(case.num_dims) is not int or case.expected_error is None:
        return outcome
    if type(case.in_axes) is int and case.in_axes == 0:
        return outcome
    if case.chunk_size is not None or case.row_order != "C":
        return outcome
    control = _without_in_axes(case)
    if control is None:
        return outcome
    fn, args, kwargs, kept = control
    import batchapply_reference
    from batchapply_conformance._differential import OPTION_CLAUSES

    wanted = case.expected_error
    prefix = wanted["prefix"].replace("{num_dims}", str(case.num_dims))
    for factory in (batchapply_reference.BatchApply, target.factory):
        try:
            factory(fn, case.num_dims, **kept)(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        except Exception as e:
            if type(e).__name__ == wanted["type"] and str(e).startswith(prefix):
                continue
        return outcome  # no error, or another one: the control does not show the option at fault
    form = "None" if case.in_axes is None else "list" if isinstance(case.in_axes, list) else "tuple"
    charged = (*OPTION_CLAUSES[f"in_axes {form}"], *(c for c in ("BA-10.1",) if c in case.clauses))
    why = f"the same call without in_axes, its unmerged arguments bound into f, raises {wanted['row']}"
    return dataclasses.replace(outcome, charged=charged, detail=f"{outcome.detail} ({why})")


OUTPUT_SECTION = "BA-7."
RAISED = "expected an output, got "


def _decoded(outcome: Outcome, check: Check) -> golden.GoldenCase | None:
    """The call of a property check's counterexample, as a golden case (None if it cannot be decoded)."""
    from batchapply_conformance import functions

    call = outcome.call
    if (
        call is not None and call.function in functions.FUNCTIONS
    ):  # whatever its leaves (a repr in the example)
        return golden.GoldenCase(
            name=check.name,
            clauses=check.clauses,
            function=call.function,
            num_dims=call.num_dims,
            in_axes=call.in_axes,
            out_axes=call.out_axes,
            args=tuple(call.args),
            kwargs=dict(call.kwargs),
        )
    example = outcome.counterexample or {}
    try:
        return golden.GoldenCase(
            name=check.name,
            clauses=check.clauses,
            function=example["function"],
            num_dims=golden.decode(example["num_dims"]),
            in_axes=golden.decode(example["in_axes"]),
            out_axes=golden.decode(example["out_axes"]),
            args=tuple(golden.decode(example["args"])),
            kwargs=dict(golden.decode(example["kwargs"])),
        )
    except Exception:
        return None


def _without_elements(outcome: Outcome, case: golden.GoldenCase | None, target: Target) -> Outcome:
    """An exception on a call with arrays without elements, charged to BA-5.4 (a 0 in the
    leading shape) or BA-1.6 (in the trailing shape) when the same call with every 0 made
    a 1 passes: the fault is the zero size, not the clauses of the check."""
    if (
        case is None
        or outcome.status != "fail"
        or outcome.charged is not None
        or RAISED not in outcome.detail
    ):
        return outcome
    import numpy as np

    import batchapply_reference

    try:
        from jax import tree_util
    except ImportError:
        return outcome
    try:
        leaves = tree_util.tree_leaves((case.args, case.kwargs))
    except Exception:
        return outcome
    empty = [x for x in leaves if type(x) is np.ndarray and x.size == 0]
    if not empty or type(case.num_dims) is not int:
        return outcome

    def filled(x: Any) -> Any:
        if type(x) is np.ndarray and x.size == 0:
            return np.ones(tuple(d or 1 for d in x.shape), x.dtype)
        return x

    try:
        args, kwargs = tree_util.tree_map(filled, (list(case.args), dict(case.kwargs)))
        control = dataclasses.replace(case, args=tuple(args), kwargs=kwargs)
        expected = golden.replay(copy.deepcopy(control), batchapply_reference)
        got = golden.replay(copy.deepcopy(control), target.api())
    except Exception:
        return outcome
    if golden.mismatches(expected, got, exact=False):
        return outcome
    leading = any(0 in x.shape[: case.num_dims] for x in empty)
    charged = ("BA-5.4",) if leading else ("BA-1.6",)
    why = "the same call with every 0 in a shape made 1 passes"
    return dataclasses.replace(
        outcome, charged=charged, detail=f"{outcome.detail} (arrays without elements: {why})"
    )


KIND_CLAUSES = {"masked": "BA-5.7"}
"""A leaf kind whose own clause a crash on it violates, where the case cites that clause."""


def _special_kind(outcome: Outcome, case: golden.GoldenCase, target: Target) -> Outcome:
    """An exception where an output was expected, on a case with masked arrays that cites BA-5.7,
    charged to BA-5.7 alone when the same call with each masked array made its plain data passes
    (so a target that refuses masked arrays fails the mask clause, not the case's dtype or
    container clauses)."""
    if outcome.status != "fail" or outcome.charged is not None or RAISED not in outcome.detail:
        return outcome
    if KIND_CLAUSES["masked"] not in case.clauses:
        return outcome
    import numpy as np

    try:
        from jax import tree_util
    except ImportError:
        return outcome
    masked = [x for x in tree_util.tree_leaves((case.args, case.kwargs)) if isinstance(x, np.ma.MaskedArray)]
    if not masked:
        return outcome

    def plain(x: Any) -> Any:
        return np.array(x.data) if isinstance(x, np.ma.MaskedArray) else x

    try:
        args, kwargs = tree_util.tree_map(plain, (list(case.args), dict(case.kwargs)))
        control = dataclasses.replace(case, args=tuple(args), kwargs=kwargs)
        golden.replay(copy.deepcopy(control), batchapply_reference_module())
        golden.replay(copy.deepcopy(control), target.api())
    except Exception:
        return outcome
    why = "the same call with its masked arrays made plain arrays passes"
    return dataclasses.replace(
        outcome, charged=(KIND_CLAUSES["masked"],), detail=f"{outcome.detail} (a masked array: {why})"
    )


def batchapply_reference_module() -> Any:
    import batchapply_reference

    return batchapply_reference


def _which_side(outcome: Outcome, case: golden.GoldenCase | None, target: Target) -> Outcome:
    """An exception where an output was expected, charged to the inputs' or the outputs' clauses."""
    if case is None or outcome.status != "fail" or outcome.charged is not None:
        return outcome
    if RAISED not in outcome.detail:
        return outcome
    outputs = tuple(c for c in case.clauses if c.startswith(OUTPUT_SECTION))
    inputs = tuple(c for c in case.clauses if not c.startswith(OUTPUT_SECTION))
    if not outputs or not inputs:
        return outcome
    changed = _passed_through(case, target) if PASS_THROUGH_CLAUSE in case.clauses else None
    if changed is not None:  # f was given another object: what it returned was wrong before the split
        detail = f"{outcome.detail} (on the inputs: {changed})"
        return dataclasses.replace(outcome, charged=(PASS_THROUGH_CLAUSE,), detail=detail)
    import batchapply_reference

    control = dataclasses.replace(case, function="first_row_leaf", out_axes=0)
    try:
        expected = golden.replay(copy.deepcopy(control), batchapply_reference)
    except Exception:
        return outcome
    try:
        got = golden.replay(copy.deepcopy(control), target.api())
    except Exception:
        why = "the same call returning only its first array raises too"
        return dataclasses.replace(outcome, charged=inputs, detail=f"{outcome.detail} (on the inputs: {why})")
    if golden.mismatches(expected, got, exact=True):
        return outcome
    why = "the same call returning only its first array passes"
    return dataclasses.replace(outcome, charged=outputs, detail=f"{outcome.detail} (on the outputs: {why})")


PASS_THROUGH_CLAUSE = "BA-1.2"
"""Leaves that are not merged reach ``f`` as the very same objects."""


def _passed_through(case: golden.GoldenCase, target: Target) -> str | None:
    """Which non-array input leaf of ``case`` did not reach ``f`` as the same object (BA-1.2), or
    None. The call is made with an ``f`` that records what it gets and returns its first array,
    and without the case's options: no option merges or changes a leaf that is not an array."""
    if case.target != "BatchApply" or type(case.num_dims) is not int:
        return None
    try:
        from jax import tree_util
    except ImportError:
        return None
    args, kwargs = copy.deepcopy((list(case.args), dict(case.kwargs)))
    given = [x for x in tree_util.tree_leaves((args, kwargs)) if not hasattr(x, "shape")]
    seen: list[Any] = []

    def record(*a: Any, **k: Any) -> Any:
        leaves = tree_util.tree_leaves((a, k))
        seen.extend(leaves)
        return next((x for x in leaves if getattr(x, "ndim", 0) >= 1), None)

    with contextlib.suppress(Exception):  # a failed split: what f was given is recorded already
        target.factory(record, case.num_dims)(*args, **kwargs)
    if not seen:
        return None
    for x in given:
        if not any(y is x for y in seen):
            return f"f did not get the {type(x).__name__} {x!r} itself, but another object"
    return None


def _property_clauses(case: golden.GoldenCase, kind: str) -> tuple[str, ...]:
    if kind == "leaf":
        return tuple(c for c in case.clauses if c in PASS_THROUGH) or PROPERTY_CLAUSES[kind]
    return PROPERTY_CLAUSES[kind]


def _control(case: golden.GoldenCase) -> tuple[Callable[..., Any], list[Any], dict[str, Any], str] | None:
    """The case's call without its options: ``(f, args, kwargs, what was dropped)``, or None
    where an option cannot be taken away without changing the call (an ``out_axes``, or an
    ``in_axes`` entry that is a tree)."""
    from batchapply_conformance import functions

    fn = functions.FUNCTIONS[str(case.function)].fn
    dropped = []
    if case.chunk_size is not None:
        dropped.append("chunk_size")
    if case.row_order != "C":
        dropped.append("row_order")
    if not (type(case.out_axes) is int and case.out_axes == 0):
        return None
    args = list(case.args)
    in_axes = case.in_axes
    if type(in_axes) is int and in_axes == 0:
        return fn, args, dict(case.kwargs), ", ".join(dropped)
    if in_axes is None:
        axes: list[Any] = [None] * len(args)
    elif isinstance(in_axes, (tuple, list)) and len(in_axes) == len(args):
        axes = list(in_axes)
    else:
        return None
    if any(not (a is None or (type(a) is int and a == 0)) for a in axes):
        return None
    fixed = {i: arg for i, (arg, axis) in enumerate(zip(args, axes, strict=True)) if axis is None}

    def bound(*selected: Any, **kwargs: Any) -> Any:
        rest = iter(selected)
        return fn(*[fixed[i] if i in fixed else next(rest) for i in range(len(args))], **kwargs)

    dropped.append("in_axes")
    selected = [arg for i, arg in enumerate(args) if i not in fixed]
    return bound, selected, dict(case.kwargs), ", ".join(dropped)
