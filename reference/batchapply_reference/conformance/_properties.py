"""Hypothesis differential checks: the target against the reference on generated calls.

Uses the strategies of :mod:`batchapply_reference.strategies` (hypothesis is the
``conformance`` extra). Each check runs one property; on failure, hypothesis
shrinks the input and the minimal counterexample goes into the report.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import batchapply_reference
from batchapply_reference import functions, golden
from batchapply_reference.conformance._checks import Check, Outcome, Target, describe_error, safe_encode

Problem = tuple[str, dict[str, Any]]


def _call(api: Any, case: Any, options: frozenset[str]) -> Any:
    extra = {name: getattr(case, name) for name in ("in_axes", "out_axes") if name in options}
    fn = functions.FUNCTIONS[case.function].fn
    return api.BatchApply(fn, case.num_dims, **extra)(*case.args, **case.kwargs)


def _example(case: Any) -> dict[str, Any]:
    return {
        "function": case.function,
        "num_dims": safe_encode(case.num_dims),
        "in_axes": safe_encode(case.in_axes),
        "out_axes": safe_encode(case.out_axes),
        "args": safe_encode(case.args),
        "kwargs": safe_encode(case.kwargs),
    }


def _outcome_of(api: Any, case: Any, options: frozenset[str]) -> tuple[str, Any]:
    """("ok", output) or ("error", exception), on a private copy of the inputs."""
    private = copy.deepcopy(case)
    try:
        return "ok", _call(api, private, options)
    except Exception as e:
        return "error", e


def _agreement(target: Target, case: Any) -> Problem | None:
    """BA-5.x, BA-7.x: the same outputs as the reference."""
    options = target.options & {"in_axes", "out_axes"}
    want_kind, want = _outcome_of(batchapply_reference, case, options)
    got_kind, got = _outcome_of(target.api(), case, options)
    if want_kind == "error":
        return None  # error parity is its own property
    if got_kind == "error":
        return f"expected an output, got {describe_error(got)}", {
            **_example(case),
            "got": describe_error(got),
        }
    problem = golden.mismatch(want, got, exact=functions.FUNCTIONS[case.function].exact)
    if problem is None:
        return None
    return problem, {**_example(case), "expected": safe_encode(want), "got": safe_encode(got)}


def _error_parity(target: Target, case: Any) -> Problem | None:
    """BA-10.1, BA-10.2: the reference's exception type and SPEC message prefix."""
    strategies = importlib.import_module("batchapply_reference.strategies")
    options = target.options & {"in_axes", "out_axes"}
    want_kind, want = _outcome_of(batchapply_reference, case, options)
    if want_kind != "error":
        return None
    got_kind, got = _outcome_of(target.api(), case, options)
    prefix = strategies.error_prefix(want)
    if got_kind == "error" and type(got) is type(want) and str(got).startswith(prefix):
        return None
    expected = f"{type(want).__name__} starting {prefix!r}"
    observed = describe_error(got) if got_kind == "error" else "an output"
    return f"expected {expected}, got {observed}", {**_example(case), "expected": expected, "got": observed}


def _hypothesis_check(
    strategy_name: str, body: Callable[[Target, Any], Problem | None], max_examples: int, seed: int | None
) -> Callable[[Target], Outcome]:
    def run(target: Target) -> Outcome:
        try:
            import hypothesis
            from hypothesis import reporting

            strategies = importlib.import_module("batchapply_reference.strategies")
        except ImportError as e:
            return Outcome("na", f"needs the conformance extra (pip install 'batchapply[conformance]'): {e}")
        failure: list[Problem] = []
        options = target.options & {"in_axes", "out_axes"}

        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=seed is None,
            database=None,
            print_blob=False,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(getattr(strategies, strategy_name)(extensions=options))
        def prop(case: Any) -> None:
            problem = body(target, case)
            if problem is not None:
                failure[:] = [problem]  # the last failure is hypothesis's shrunk, minimal one
                raise AssertionError(problem[0])

        if seed is not None:
            prop = hypothesis.seed(seed)(prop)
        try:
            with reporting.with_reporter(lambda *_: None):
                prop()
        except AssertionError:
            detail, example = failure[-1]
            return Outcome("fail", f"minimal counterexample: {detail}", example)
        return Outcome("pass")

    return run


def property_checks(*, max_examples: int, seed: int | None) -> Iterator[Check]:
    yield Check(
        name="property agreement with the reference",
        clauses=("BA-1.2", "BA-5.1", "BA-5.2", "BA-5.3", "BA-6.1", "BA-7.1", "BA-7.2", "BA-7.4"),
        run=_hypothesis_check("cases", _agreement, max_examples, seed),
    )
    yield Check(
        name="property error parity with the reference",
        clauses=("BA-10.1", "BA-10.2"),
        run=_hypothesis_check("error_cases", _error_parity, max_examples, seed),
    )
