"""Hypothesis differential checks: the target against the reference on generated calls.

Uses the strategies of :mod:`batchapply_conformance.strategies` (hypothesis is the
``conformance`` extra). Each check runs one property; on failure, hypothesis
shrinks the input and the minimal counterexample goes into the report.

A target without ``in_axes``/``out_axes`` is checked on the same calls with both
set to 0; whatever the reference then does (an output or an error) is what the
target must do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import batchapply_reference
from batchapply_conformance import golden
from batchapply_conformance._checks import (
    PROPERTY_CLAUSES,
    Check,
    Outcome,
    Outcomes,
    Target,
    describe_error,
    reworded,
    safe_encode,
)
from batchapply_reference import _tree

Problem = tuple[tuple[str, ...] | None, str, dict[str, Any]]
"""The clauses a problem is charged to (None: those of the check), what differs, the example."""
AXES = frozenset({"in_axes", "out_axes"})
EXTENSION_ROWS = ("E4", "E5", "E6", "E7", "E11")  # errors of in_axes/out_axes themselves
HELPER_ROWS = ("E12", "E13")  # split_leading_dim
NON_ARRAY_OUTPUTS = ("named_pieces", "more_leaves")  # functions that return ints or strings


def _strategies() -> Any:
    return importlib.import_module("batchapply_conformance.strategies")


def _effective(case: Any, target: Target) -> Any:
    """The call as the target can make it: axes set to 0 when it does not take them."""
    if target.options >= AXES:
        return case
    return dataclasses.replace(case, in_axes=0, out_axes=0)


def _outcome(api: Any, case: Any, target: Target) -> tuple[str, Any]:
    """("ok", output) or ("error", exception), on a private copy of the inputs."""
    strategies = _strategies()
    private = dataclasses.replace(case, args=_copy_arrays(case.args), kwargs=_copy_arrays(case.kwargs))
    try:
        if private.function == strategies.SPLIT:
            return "ok", api.split_leading_dim(*private.args)
        options = {"in_axes": private.in_axes, "out_axes": private.out_axes} if target.options >= AXES else {}
        apply = api.BatchApply(strategies.function_of(private), private.num_dims, **options)
        return "ok", apply(*private.args, **private.kwargs)
    except Exception as e:
        return "error", e


def _copy_arrays(tree: Any) -> Any:
    """``tree`` with fresh copies of its NumPy arrays, so that a call cannot change the case;
    every other leaf is the same object, as pass-through checks need (BA-1.2)."""
    return _tree.map_leaves(
        lambda _path, leaf, _axis: leaf.copy() if isinstance(leaf, np.ndarray) else leaf, tree, None, ""
    )


CALL = "_call"
"""The key of a problem's example that holds the call itself (moved to ``Outcome.call``)."""


def _example(case: Any) -> dict[str, Any]:
    return {
        CALL: case,
        "function": case.function,
        "num_dims": safe_encode(case.num_dims),
        "in_axes": safe_encode(case.in_axes),
        "out_axes": safe_encode(case.out_axes),
        "args": safe_encode(case.args),
        "kwargs": safe_encode(case.kwargs),
    }


def _agreement(target: Target, case: Any, leaf_clauses: tuple[str, ...] | None) -> list[Problem]:
    """The target returns what the reference returns (calls where the reference raises are skipped).

    Each property that differs is one problem, charged to its clause (PROPERTY_CLAUSES);
    a non-array leaf that differs goes to ``leaf_clauses`` (None: the check's own clauses).
    """
    strategies = _strategies()
    case = _effective(case, target)
    want_kind, want = _outcome(batchapply_reference, case, target)
    if want_kind == "error":
        return []  # error parity is its own check
    got_kind, got = _outcome(target.api(), case, target)
    if got_kind == "error":
        observed = describe_error(got)
        return [(None, f"expected an output, got {observed}", {**_example(case), "got": observed})]
    exact = case.function == strategies.SPLIT or strategies.FUNCTIONS[case.function].exact
    example = {**_example(case), "expected": safe_encode(want), "got": safe_encode(got)}
    problems: dict[tuple[str, ...] | None, Problem] = {}
    for kind, problem in golden.mismatches(want, got, exact=exact):
        charged = leaf_clauses if kind == "leaf" else PROPERTY_CLAUSES[kind]
        problems.setdefault(charged, (charged, problem, example))
    return list(problems.values())


def _spec_prefix(error: BaseException, num_dims: Any) -> str:
    """The SPEC error-table prefix that ``error``'s message starts with (the reference's errors have one)."""
    row = _row(error, num_dims)
    if row is None:
        return str(error)  # not a table row: the whole message must match
    return _strategies().ERROR_PREFIXES[row][1].replace("{num_dims}", str(num_dims))


def _row(error: BaseException, num_dims: Any) -> str | None:
    """The SPEC error row whose type and prefix ``error`` has, or None."""
    for row, (kind, prefix) in _strategies().ERROR_PREFIXES.items():
        if type(error) is kind and str(error).startswith(prefix.replace("{num_dims}", str(num_dims))):
            return row
    return None


CONSTRUCTION_ROWS = frozenset({"E1", "E2", "E3", "E4", "E5", "E14", "E15", "E20"})
"""The rows the constructor raises, in BA-10.3's order; the others are the call's (BA-10.4 to 10.6)."""


def _charged_error(got: BaseException, want: BaseException, num_dims: Any) -> tuple[str, ...]:
    """Another row than the reference's: the order clause's (BA-10.3 at construction, else BA-10.4)
    and BA-10.1's; the right error worded otherwise: BA-10.1's; another exception: BA-10.1's and
    BA-10.2's (it escaped)."""
    got_row, want_row = _row(got, num_dims), _row(want, num_dims)
    if got_row is not None and want_row is not None and got_row != want_row:
        return ("BA-10.1", "BA-10.3" if want_row in CONSTRUCTION_ROWS else "BA-10.4")
    return reworded(got, type(want).__name__, _spec_prefix(want, num_dims)) or ("BA-10.1", "BA-10.2")


def _error_parity(target: Target, case: Any) -> list[Problem]:
    """Where the reference raises, the target raises the same type with the same SPEC prefix."""
    case = _effective(case, target)
    want_kind, want = _outcome(batchapply_reference, case, target)
    if want_kind != "error":
        return []
    got_kind, got = _outcome(target.api(), case, target)
    prefix = _spec_prefix(want, case.num_dims)
    if got_kind == "error" and type(got) is type(want) and str(got).startswith(prefix):
        return []
    expected = f"{type(want).__name__} starting {prefix!r}"
    observed = describe_error(got) if got_kind == "error" else "an output"
    return [
        (
            _charged_error(got, want, case.num_dims) if got_kind == "error" else ("BA-10.1",),
            f"expected {expected}, got {observed}",
            {**_example(case), "expected": expected, "got": observed},
        )
    ]


NEEDS_HYPOTHESIS = "needs hypothesis: install batchapply[conformance]"


def _hypothesis_check(
    make_strategy: Callable[[Any, Target], Any],
    body: Callable[[Target, Any], list[Problem]],
    max_examples: int,
    seed: int | None,
) -> Callable[[Target], Outcomes]:
    """A check: :func:`hypothesis_search` over the calls of ``make_strategy(strategies, target)``."""

    def run(target: Target) -> Outcomes:
        try:
            strategies = _strategies()
        except ImportError as e:
            return Outcome("not_run", f"{NEEDS_HYPOTHESIS} ({e})")
        return hypothesis_search(make_strategy(strategies, target), body, max_examples, seed, target)

    return run


def hypothesis_search(
    strategy: Any,
    body: Callable[[Target, Any], list[Problem]],
    max_examples: int,
    seed: int | None,
    target: Target,
) -> Outcomes:
    """One hypothesis run over ``max_examples`` calls, every problem recorded by the clauses it is
    charged to; then, for each such set of clauses, a shrinking run for its minimal counterexample."""
    try:
        import hypothesis
        from hypothesis import reporting
    except ImportError as e:
        return Outcome("not_run", f"{NEEDS_HYPOTHESIS} ({e})")

    def search(test: Callable[[Any], None], phases: tuple[Any, ...]) -> None:
        settings = hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=seed is None,
            database=None,
            print_blob=False,
            phases=phases,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        prop = settings(hypothesis.given(strategy)(test))
        if seed is not None:
            prop = hypothesis.seed(seed)(prop)
        with reporting.with_reporter(lambda *_: None):
            prop()

    first: dict[tuple[str, ...] | None, Problem] = {}
    stop = [float("inf")]

    def sweep(case: Any) -> None:
        if time.monotonic() > stop[0]:
            return  # the verdict is FAIL already; the rest of the budget goes to shrinking
        for problem in body(target, case):
            first.setdefault(problem[0], problem)
            stop[0] = min(stop[0], time.monotonic() + SWEEP_AFTER_FAILURE_SECONDS)

    search(sweep, (hypothesis.Phase.explicit, hypothesis.Phase.generate))
    outcomes = []
    deadline = time.monotonic() + SHRINK_SECONDS  # for every failing property of this check together
    for charged, detail, example in first.values():
        if time.monotonic() >= deadline:
            outcomes.append(_failed(f"counterexample (not shrunk): {detail}", example, charged))
            continue
        shrunk: list[Problem] = []
        # AssertionError; or, past the deadline, hypothesis's Flaky on the replay
        with contextlib.suppress(Exception):
            search(
                _failing_on(body, target, charged, shrunk, deadline),
                (hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink),
            )
        if shrunk:
            _, detail, example = shrunk[-1]  # the last failure is the smallest hypothesis found
        outcomes.append(_failed(f"minimal counterexample: {detail}", example, charged))
    return outcomes or Outcome("pass")


def _failed(detail: str, example: dict[str, Any], charged: tuple[str, ...] | None) -> Outcome:
    """The failure, its call moved out of the (JSON) example into ``Outcome.call``."""
    example = dict(example)
    call = example.pop(CALL, None)
    return Outcome("fail", detail, example, charged, call=call)


SWEEP_AFTER_FAILURE_SECONDS = 3.0
"""How long the sweep goes on after its first failure, looking for failures of other clauses."""

SHRINK_SECONDS = 5.0
"""How long hypothesis may shrink the failing properties of one check, all together (then the
smallest example so far is reported), so that a target that fails many clauses is still judged
in seconds; 0 reports the sweep's first counterexamples unshrunk."""


def _failing_on(
    body: Callable[[Target, Any], list[Problem]],
    target: Target,
    charged: tuple[str, ...] | None,
    shrunk: list[Problem],
    deadline: float = float("inf"),
) -> Callable[[Any], None]:
    """A test that fails on the problems charged to ``charged`` only (hypothesis then shrinks them);
    once ``deadline`` (``time.monotonic()``) has passed, it passes (shrinking stops)."""

    def test(case: Any) -> None:
        if shrunk and time.monotonic() > deadline:
            return
        for problem in body(target, case):
            if problem[0] == charged:
                shrunk[:] = [problem]  # the last failure is hypothesis's shrunk, minimal one
                raise AssertionError(problem[1])

    return test


def _array_cases(strategies: Any, target: Target) -> Any:
    """Calls whose inputs and outputs hold arrays (and None) only."""
    names = [name for name in strategies.FUNCTIONS if name not in NON_ARRAY_OUTPUTS]
    return strategies.cases(functions=names, non_arrays=False)


def _error_rows(strategies: Any, target: Target) -> Any:
    rows = [
        row
        for row in strategies.ERROR_ROWS
        if (target.options >= AXES or row not in EXTENSION_ROWS)
        and (hasattr(target.module, "split_leading_dim") or row not in HELPER_ROWS)
    ]
    return strategies.error_cases(rows=rows)


def property_checks(*, max_examples: int, seed: int | None) -> Iterator[Check]:
    yield Check(
        name="property agreement on array leaves",
        clauses=("BA-5.1", "BA-5.2", "BA-5.3", "BA-6.1", "BA-7.1", "BA-7.2"),
        run=_hypothesis_check(
            _array_cases, lambda t, c: _agreement(t, c, PROPERTY_CLAUSES["leaf"]), max_examples, seed
        ),
        family="properties",
    )
    yield Check(
        name="property agreement with non-array leaves",
        clauses=("BA-1.1", "BA-1.2", "BA-7.4"),
        run=_hypothesis_check(
            lambda s, t: s.cases(), lambda t, c: _agreement(t, c, None), max_examples, seed
        ),
        family="properties",
    )
    yield Check(
        name="property error parity",
        clauses=("BA-10.1", "BA-10.2", "BA-10.3", "BA-10.4"),
        run=_hypothesis_check(_error_rows, _error_parity, max_examples, seed),
        family="properties",
    )
