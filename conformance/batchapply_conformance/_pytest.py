"""One pytest case per SPEC clause, for another project's own test suite (like sklearn's)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from batchapply_conformance import _spec
from batchapply_conformance._run import run


def parametrize_with_checks(
    target: str,
    *,
    expected_failures: Mapping[str, str] | None = None,
    profile: str = "dev",
) -> Any:
    """A ``pytest.mark.parametrize`` over ``clause_check``: one callable per SPEC clause.

    Each ``clause_check()`` runs that clause's checks on ``target`` and raises
    AssertionError with the minimal counterexample when a MUST clause fails. A
    clause in ``expected_failures`` (clause ID -> reason) is marked ``xfail(strict=True)``;
    an entry that names no SPEC clause adds a failing case that lists it.

    Args:
        target: ``module:attr`` of a factory ``make(f, num_dims) -> callable``.
        expected_failures: Clauses known to fail, with the reason.
        profile: ``dev``, ``ci`` or ``thorough`` (examples per property check).
    """
    import pytest

    expected = dict(expected_failures or {})
    ids = [c.id for c in _spec.clauses() if not c.withdrawn]
    params = []
    for clause in ids:
        marks = [pytest.mark.xfail(strict=True, reason=expected[clause])] if clause in expected else []
        params.append(pytest.param(_clause_check(target, clause, profile), id=clause, marks=marks))
    stray = sorted(set(expected) - set(ids))
    if stray:
        params.append(pytest.param(_stray_check(stray), id="expected-failures-that-match-no-clause"))
    return pytest.mark.parametrize("clause_check", params)


def _clause_check(target: str, clause: str, profile: str) -> Callable[[], None]:
    def check() -> None:
        (result,) = run(target, profile=profile, clauses=[clause]).clauses
        if result.must and result.status == "FAIL":
            example = json.dumps(result.counterexample, indent=1)[:4000]
            raise AssertionError(f"{clause} fails: {result.detail}\ncounterexample: {example}")

    return check


def _stray_check(stray: list[str]) -> Callable[[], None]:
    def check() -> None:
        raise AssertionError(f"expected_failures names clauses that SPEC.md does not have: {stray}")

    return check
