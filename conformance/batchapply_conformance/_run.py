"""Run the checks on a target and fold their outcomes into one verdict per SPEC clause."""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

from batchapply_conformance import _spec
from batchapply_conformance._checks import Check, Outcome, Target, golden_checks
from batchapply_conformance._transforms import transform_checks

REPORT_SCHEMA_ID = "batchapply-conformance-report/1"


@dataclasses.dataclass
class ClauseResult:
    """The verdict on one clause: PASS, FAIL, N/A, or XFAIL (an expected failure)."""

    clause: str
    must: bool
    status: str = "N/A"
    checks: int = 0
    passed: int = 0
    detail: str = ""
    counterexample: dict[str, Any] | None = None

    def add(self, check: Check, outcome: Outcome) -> None:
        if outcome.status == "na":
            if self.status == "N/A" and not self.detail:
                self.detail = f"{check.name}: {outcome.detail}"
            return
        self.checks += 1
        if outcome.status == "pass":
            self.passed += 1
            if self.status == "N/A":
                self.status, self.detail = "PASS", ""  # drop why an earlier check did not apply
        elif self.status != "FAIL":
            self.status = "FAIL"
            self.detail = f"{check.name}: {outcome.detail}"
            self.counterexample = outcome.counterexample


@dataclasses.dataclass
class Report:
    """Everything one run found; :meth:`to_json` follows ``report.schema.json``."""

    target: str
    profile: str
    max_examples: int
    seed: int | None
    clauses: list[ClauseResult]
    seconds: float

    @property
    def failing_musts(self) -> list[str]:
        return [c.clause for c in self.clauses if c.must and c.status == "FAIL"]

    @property
    def conforms(self) -> bool:
        """Every applicable MUST clause passes (N/A and non-MUST clauses do not count)."""
        return not self.failing_musts

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.clauses) for s in ("PASS", "FAIL", "N/A", "XFAIL")}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA_ID,
            "target": self.target,
            "profile": self.profile,
            "max_examples": self.max_examples,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "versions": _versions(self.target),
            "summary": {
                **self.counts(),
                "conforms": self.conforms,
                "failing_must_clauses": self.failing_musts,
            },
            "clauses": [dataclasses.asdict(c) for c in self.clauses],
        }


def _versions(target: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    distributions = ["batchapply", "numpy", "jax", "hypothesis", target.split(":")[0].split(".")[0]]
    for name in dict.fromkeys(distributions):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def all_checks(profile: str, max_examples: int, seed: int | None) -> list[Check]:
    """Golden, transform, sharding, jax-input and property checks, in that order."""
    from batchapply_conformance._jax_inputs import jax_input_checks
    from batchapply_conformance._properties import property_checks
    from batchapply_conformance._sharding import sharding_checks

    return [
        *golden_checks(),
        *transform_checks(),
        *sharding_checks(),
        *jax_input_checks(),
        *property_checks(max_examples=max_examples, seed=seed),
    ]


def run(
    target: Target | str,
    *,
    profile: str = "ci",
    max_examples: int | None = None,
    seed: int | None = None,
    clauses: Iterable[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Report:
    """Run every check (or those of ``clauses``) on ``target``; one result per SPEC clause.

    Args:
        target: A :class:`Target` or ``"module:attr"``.
        profile: ``dev``, ``ci`` or ``thorough``: how many hypothesis examples per property.
        max_examples: Overrides the profile's number of examples.
        seed: None for a derandomized (reproducible) run; an int for a random run from that seed.
        clauses: Only these clause IDs (default: all).
        expected_failures: clause ID -> reason; such a clause that fails is XFAIL.
        progress: Called as ``progress(done, total, check_name)`` after each check.

    Returns:
        The :class:`Report`.
    """
    started = time.perf_counter()
    if isinstance(target, str):
        target = Target.load(target)
    examples = max_examples if max_examples is not None else PROFILES[profile]
    wanted = set(clauses) if clauses is not None else None
    checks = [c for c in all_checks(profile, examples, seed) if wanted is None or wanted & set(c.clauses)]
    results = {
        c.id: ClauseResult(clause=c.id, must=c.must)
        for c in _spec.clauses()
        if not c.withdrawn and (wanted is None or c.id in wanted)
    }
    for done, check in enumerate(checks, 1):
        outcome = check.run(target)
        for clause in check.clauses:
            if clause in results:
                results[clause].add(check, outcome)
        if progress is not None:
            progress(done, len(checks), check.name)
    for clause, reason in (expected_failures or {}).items():
        if clause in results and results[clause].status == "FAIL":
            results[clause].status = "XFAIL"
            results[clause].detail = f"expected failure ({reason}): {results[clause].detail}"
    for result in results.values():
        if result.checks == 0 and not result.detail:
            result.detail = (
                "the Flax module wrappers (batchapply.linen, batchapply.nnx): checked by the project's tests"
                if result.clause.startswith("BA-12.")
                else "no check of the kit applies to this target"
            )
    ordered = sorted(results.values(), key=lambda r: _spec.clause_key(r.clause))
    return Report(
        target=target.name,
        profile=profile,
        max_examples=examples,
        seed=seed,
        clauses=ordered,
        seconds=time.perf_counter() - started,
    )


PROFILES = {"dev": 20, "ci": 100, "thorough": 2000}
"""Hypothesis examples per property check for each ``--profile``."""


def render(report: Report, *, width: int = 100) -> str:
    """The human-readable table and summary line."""
    lines = [
        f"batchapply-conformance: {report.target} against SPEC.md "
        f"(profile {report.profile}, {report.max_examples} examples per property"
        f"{', seed ' + str(report.seed) if report.seed is not None else ', derandomized'})",
        f"{'clause':<8} {'level':<6} {'status':<6} {'checks':>6}  detail",
    ]
    for r in report.clauses:
        detail = r.detail if len(r.detail) <= width else r.detail[: width - 3] + "..."
        level = "MUST" if r.must else "-"
        lines.append(f"{r.clause:<8} {level:<6} {r.status:<6} {r.checks:>6}  {detail}")
    counts = report.counts()
    verdict = (
        "conforms"
        if report.conforms
        else f"does not conform: MUST clauses fail: {', '.join(report.failing_musts)}"
    )
    lines.append(
        f"summary: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['N/A']} N/A"
        + (f", {counts['XFAIL']} XFAIL" if counts["XFAIL"] else "")
        + f" in {report.seconds:.1f} s; {verdict}"
    )
    return "\n".join(lines)


def write_progress(done: int, total: int, name: str) -> None:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""
    if not sys.stderr.isatty():
        return
    filled = int(30 * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {name[:40]:<40}")
    if done == total:
        sys.stderr.write("\r" + " " * 90 + "\r")
    sys.stderr.flush()
