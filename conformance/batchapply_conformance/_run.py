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
from batchapply_conformance._checks import Check, Outcome, Outcomes, Target, golden_checks
from batchapply_conformance._transforms import transform_checks

REPORT_SCHEMA_ID = "batchapply-conformance-report/2"

STATUSES = ("PASS", "FAIL", "NOT RUN", "N/A", "XFAIL")


@dataclasses.dataclass
class ClauseResult:
    """The verdict on one clause: PASS, FAIL, NOT RUN, N/A, or XFAIL (an expected failure).

    FAIL wins over NOT RUN (a check that applies could not run: the clause is not
    known to pass), which wins over PASS; N/A means no check applies to the target.
    """

    clause: str
    must: bool
    status: str = "N/A"
    checks: int = 0
    passed: int = 0
    not_run: int = 0
    skipped: int = 0
    detail: str = ""
    counterexample: dict[str, Any] | None = None

    def add(self, check: Check, outcome: Outcome) -> None:
        if outcome.status == "na":
            if self.status == "N/A" and not self.detail:
                self.detail = f"{check.name}: {outcome.detail}"
            return
        if outcome.status == "not_run":
            skipped = outcome.detail.startswith(SKIPPED)
            self.skipped += skipped
            self.not_run += not skipped
            first = self.status in ("N/A", "PASS") or (not skipped and self.not_run == 1)
            if self.status != "FAIL" and first:  # a check that could not run outranks a skipped one
                self.status, self.detail = "NOT RUN", f"{check.name}: {outcome.detail}"
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


SKIPPED = "skipped on request"


@dataclasses.dataclass
class Report:
    """Everything one run found; :meth:`to_json` follows ``report.schema.json``."""

    target: str
    profile: str
    max_examples: int
    seed: int | None
    clauses: list[ClauseResult]
    seconds: float
    skipped_families: list[str] = dataclasses.field(default_factory=list)
    allow_not_run: bool = False

    @property
    def failing_musts(self) -> list[str]:
        return [c.clause for c in self.clauses if c.must and c.status == "FAIL"]

    @property
    def not_run_musts(self) -> list[str]:
        """MUST clauses with an applicable check that could not run (skipped ones do not count)."""
        return [c.clause for c in self.clauses if c.must and c.status == "NOT RUN" and c.not_run]

    @property
    def conforms(self) -> bool:
        """Every applicable MUST clause passes, and every check of one ran (or the user allowed it not to)."""
        return not self.failing_musts and (self.allow_not_run or not self.not_run_musts)

    @property
    def exit_code(self) -> int:
        """0 conforms, 1 a MUST clause fails, 3 an applicable MUST check did not run."""
        if self.failing_musts:
            return 1
        return 3 if self.not_run_musts and not self.allow_not_run else 0

    def not_run_reason(self) -> str:
        """One line: why the checks of :attr:`not_run_musts` did not run (the distinct reasons)."""
        by_clause = {c.clause: c.detail for c in self.clauses}
        reasons = dict.fromkeys(by_clause[c].split(": ", 1)[-1] for c in self.not_run_musts)
        return "; ".join(reasons)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.clauses) for s in STATUSES}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA_ID,
            "target": self.target,
            "profile": self.profile,
            "max_examples": self.max_examples,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "versions": _versions(self.target),
            "skipped_families": self.skipped_families,
            "allow_not_run": self.allow_not_run,
            "summary": {
                **self.counts(),
                "conforms": self.conforms,
                "exit_code": self.exit_code,
                "failing_must_clauses": self.failing_musts,
                "not_run_must_clauses": self.not_run_musts,
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
    from batchapply_conformance._differential import differential_checks
    from batchapply_conformance._error_rows import error_row_checks
    from batchapply_conformance._jax_inputs import jax_input_checks
    from batchapply_conformance._properties import property_checks
    from batchapply_conformance._sharding import sharding_checks

    return [
        *golden_checks(),
        *transform_checks(),
        *sharding_checks(),
        *jax_input_checks(),
        *property_checks(max_examples=max_examples, seed=seed),
        *differential_checks(max_examples=max_examples, seed=seed),
        *error_row_checks(),
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
    skip: Iterable[str] = (),
    allow_not_run: bool = False,
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
        skip: Families of checks not to run (``golden``, ``transforms``, ``sharding``,
            ``properties``); their clauses are NOT RUN, on request.
        allow_not_run: A MUST clause whose check could not run does not stop conformance.

    Returns:
        The :class:`Report`.

    Raises:
        TargetError: ``target`` is not a BatchApply factory (:meth:`Target.preflight`).
    """
    started = time.perf_counter()
    if isinstance(target, str):
        target = Target.load(target)
    target.preflight()  # TargetError at once, not a report of crashes
    examples = max_examples if max_examples is not None else PROFILES[profile]
    wanted = set(clauses) if clauses is not None else None
    skipped = sorted(set(skip))
    checks = [c for c in all_checks(profile, examples, seed) if wanted is None or wanted & set(c.clauses)]
    results = {
        c.id: ClauseResult(clause=c.id, must=c.must)
        for c in _spec.clauses()
        if not c.withdrawn and (wanted is None or c.id in wanted)
    }
    for done, check in enumerate(checks, 1):
        if check.family in skipped:
            found: Outcomes = Outcome("not_run", f"{SKIPPED} (--skip {check.family})")
        else:
            found = check.run(target)
        fold(results, check, found)
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
        skipped_families=skipped,
        allow_not_run=allow_not_run,
    )


def fold(results: Mapping[str, ClauseResult], check: Check, found: Outcomes) -> None:
    """Add what ``check`` found to the results of its clauses.

    A failure counts against the clauses it is charged to (by default every clause the
    check cites); a clause the check cites that no failure is charged to passes, since
    the property it states held.
    """
    outcomes = found if isinstance(found, list) else [found]
    failures: dict[str, Outcome] = {}
    for outcome in outcomes:
        if outcome.status == "fail":
            for clause in outcome.charged if outcome.charged is not None else check.clauses:
                failures.setdefault(clause, outcome)
    rest = Outcome("pass") if failures else outcomes[0]
    for clause in dict.fromkeys([*check.clauses, *failures]):
        if clause in results:
            results[clause].add(check, failures.get(clause, rest))


PROFILES = {"dev": 20, "ci": 100, "thorough": 2000}
"""Hypothesis examples per property check for each ``--profile``."""


def render(report: Report, *, width: int = 100) -> str:
    """The human-readable table and summary line."""
    lines = [
        f"batchapply-conformance: {report.target} against SPEC.md "
        f"(profile {report.profile}, {report.max_examples} examples per property"
        f"{', seed ' + str(report.seed) if report.seed is not None else ', derandomized'})",
        f"{'clause':<8} {'level':<6} {'status':<7} {'checks':>6}  detail",
    ]
    for r in report.clauses:
        detail = r.detail if len(r.detail) <= width else r.detail[: width - 3] + "..."
        level = "MUST" if r.must else "-"
        lines.append(f"{r.clause:<8} {level:<6} {r.status:<7} {r.checks:>6}  {detail}".rstrip())
    counts = report.counts()
    if report.failing_musts:
        verdict = f"does not conform: MUST clauses fail: {', '.join(report.failing_musts)}"
    elif report.not_run_musts and not report.allow_not_run:
        verdict = f"not checked: MUST clauses NOT RUN: {', '.join(report.not_run_musts)}"
    else:
        verdict = "conforms"
        narrowed = [f"--skip {f}" for f in report.skipped_families]
        if report.not_run_musts:
            narrowed.append(f"--allow-not-run: {len(report.not_run_musts)} MUST clauses NOT RUN")
        if narrowed:
            verdict += f" (narrowed: {', '.join(narrowed)})"
    lines.append(
        f"summary: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['NOT RUN']} NOT RUN, "
        f"{counts['N/A']} N/A"
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
