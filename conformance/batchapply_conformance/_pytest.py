"""One pytest case per SPEC clause, for another project's own test suite (like sklearn's)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from batchapply_conformance import _spec
from batchapply_conformance._run import Report, run


def parametrize_with_checks(
    target: str,
    *,
    expected_failures: Mapping[str, str] | None = None,
    profile: str = "dev",
    allow_not_run: bool = False,
) -> Any:
    """A ``pytest.mark.parametrize`` over ``clause_check``: one callable per SPEC clause.

    The checks run once per session, on the first ``clause_check()`` called (the same
    run as the CLI's); each ``clause_check()`` then looks up its clause and raises
    AssertionError with the minimal counterexample when a MUST clause fails, or when
    a check of a MUST clause did NOT RUN (fail closed; with ``allow_not_run`` it is
    skipped instead). A clause in ``expected_failures`` (clause ID -> reason) is marked
    ``xfail(strict=True)``; an entry that names no SPEC clause adds a failing case that lists it.

    Args:
        target: ``module:attr`` of a factory ``make(f, num_dims) -> callable``.
        expected_failures: Clauses known to fail, with the reason.
        profile: ``dev``, ``ci`` or ``thorough`` (examples per property check).
        allow_not_run: Skip, rather than fail, a MUST clause whose check could not run.
    """
    import pytest

    expected = dict(expected_failures or {})
    ids = [c.id for c in _spec.clauses() if not c.withdrawn]
    params = []
    for clause in ids:
        marks = [pytest.mark.xfail(strict=True, reason=expected[clause])] if clause in expected else []
        check = _clause_check(target, clause, profile, allow_not_run)
        params.append(pytest.param(check, id=clause, marks=marks))
    stray = sorted(set(expected) - set(ids))
    if stray:
        params.append(pytest.param(_stray_check(stray), id="expected-failures-that-match-no-clause"))
    return pytest.mark.parametrize("clause_check", params)


@functools.cache
def session_report(target: str, profile: str) -> Report:
    """The report of one run of every check on ``target``, shared by all clause checks."""
    return run(target, profile=profile)


def _clause_check(target: str, clause: str, profile: str, allow_not_run: bool) -> Callable[[], None]:
    def check() -> None:
        import pytest

        (result,) = [r for r in session_report(target, profile).clauses if r.clause == clause]
        if result.must and result.status == "FAIL":
            example = json.dumps(result.counterexample, indent=1)[:4000]
            raise AssertionError(f"{clause} fails: {result.detail}\ncounterexample: {example}")
        if result.must and result.status == "NOT RUN" and result.not_run:
            if allow_not_run:
                pytest.skip(f"{clause} NOT RUN: {result.detail}")
            raise AssertionError(f"{clause} NOT RUN: {result.detail}")

    return check


def _stray_check(stray: list[str]) -> Callable[[], None]:
    def check() -> None:
        raise AssertionError(f"expected_failures names clauses that SPEC.md does not have: {stray}")

    return check
