"""Run the checks on a target and fold their outcomes into one verdict per SPEC clause."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

from batchapply_conformance import _spec
from batchapply_conformance._checks import Check, Outcome, Outcomes, Target, TargetError, golden_checks
from batchapply_conformance._transforms import transform_checks
from batchapply_conformance._worker import IMPORT_TIMEOUT, Limits, Worker, WorkerLost

REPORT_SCHEMA_ID = "batchapply-conformance-report/3"
DEVICES_FLAG = "--xla_force_host_platform_device_count=8"
MAX_FAILURES = 20
"""Failing cases the report keeps per clause, with their full details."""

STATUSES = ("PASS", "FAIL", "NOT RUN", "N/A", "XFAIL", "XPASS")


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
    title: str = ""
    failed: int = 0
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)

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
        if outcome.status == "fail":
            self.failed += 1
            if len(self.failures) < MAX_FAILURES:
                self.failures.append(
                    {"case": check.name, "detail": outcome.detail, "counterexample": outcome.counterexample}
                )
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
class CaseResult:
    """What one check (a golden case, a transform, a property) found, for baselines and diffs."""

    case: str
    family: str
    clauses: list[str]
    status: str
    charged: list[str]
    detail: str
    seconds: float

    @classmethod
    def of(cls, check: Check, found: Outcomes, seconds: float) -> CaseResult:
        outcomes = found if isinstance(found, list) else [found]
        failures = [o for o in outcomes if o.status == "fail"]
        charged = [c for o in failures for c in (o.charged if o.charged is not None else check.clauses)]
        if failures:
            status, detail = "FAIL", "; ".join(o.detail for o in failures)
        else:
            first = outcomes[0]
            status = {"pass": "PASS", "na": "N/A", "not_run": "NOT RUN"}.get(first.status, "PASS")
            detail = first.detail
        return cls(
            case=check.name,
            family=check.family,
            clauses=list(check.clauses),
            status=status,
            charged=list(dict.fromkeys(charged)),
            detail=detail,
            seconds=round(seconds, 3),
        )


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
    cases: list[CaseResult] = dataclasses.field(default_factory=list)
    excluded: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    isolated: bool = False
    limits: Limits = dataclasses.field(default_factory=Limits)

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
            "version": _kit_version(),
            "target": self.target,
            "profile": self.profile,
            "max_examples": self.max_examples,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "versions": _versions(self.target),
            "skipped_families": self.skipped_families,
            "excluded": self.excluded,
            "allow_not_run": self.allow_not_run,
            "isolated": self.isolated,
            "limits": {"timeout_s": self.limits.timeout, "memory_mib": self.limits.memory_mib},
            "notes": self.notes,
            "summary": {
                **self.counts(),
                "conforms": self.conforms,
                "exit_code": self.exit_code,
                "failing_must_clauses": self.failing_musts,
                "not_run_must_clauses": self.not_run_musts,
            },
            "clauses": [dataclasses.asdict(c) for c in self.clauses],
            "cases": [dataclasses.asdict(c) for c in self.cases],
        }


def _kit_version() -> str:
    try:
        return metadata.version("batchapply")
    except metadata.PackageNotFoundError:
        return "unknown"


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
    from batchapply_conformance._audit_checks import audit_checks
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
        *audit_checks(),
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
    exclude: Iterable[str] = (),
    isolate: bool | None = None,
    limits: Limits | None = None,
    helpers: str | None = None,
    exitfirst: bool = False,
) -> Report:
    """Run every check (or those of ``clauses``) on ``target``; one result per SPEC clause.

    Args:
        target: A :class:`Target` or ``"module:attr"`` (or ``"path/to/file.py:attr"``).
        profile: ``dev``, ``ci`` or ``thorough``: how many hypothesis examples per property.
        max_examples: Overrides the profile's number of examples.
        seed: None for a derandomized (reproducible) run; an int for a random run from that seed.
        clauses: Only these clause IDs (default: all).
        expected_failures: clause ID -> reason; such a clause that fails is XFAIL.
        progress: Called as ``progress(done, total, check_name)`` after each check.
        skip: Families of checks not to run (``golden``, ``transforms``, ``sharding``,
            ``properties``); their clauses are NOT RUN, on request.
        allow_not_run: A MUST clause whose check could not run does not stop conformance.
        exclude: Clause IDs or case names (``golden errors:E9-transposed-leading``) not to
            run; they are NOT RUN, on request.
        isolate: Run the checks in a worker process, each bounded by ``limits`` (a crash or
            hang is that case's FAIL). Default: when ``target`` is a name.
        limits: Seconds and resident memory per check (isolated runs only).
        helpers: The module to find SPEC section 9's helpers in (default: next to the factory).
        exitfirst: Stop at the first check that FAILs a MUST clause (not an expected failure):
            the checks after it are NOT RUN, on request. The exit status is the same as a full
            run's whenever it is 1; the report shows one failure, not all of them.

    Returns:
        The :class:`Report`.

    Raises:
        TargetError: ``target`` cannot be checked: importing it failed, it is not a BatchApply
            factory, or it raised, crashed or hung at construction.
    """
    started = time.perf_counter()
    isolate = isinstance(target, str) if isolate is None else isolate
    limits = limits or Limits()
    examples = max_examples if max_examples is not None else PROFILES[profile]
    wanted = set(clauses) if clauses is not None else None
    excluded = set(exclude)
    skipped = sorted(set(skip))
    checks = all_checks(profile, examples, seed)
    selected = [
        i
        for i, c in enumerate(checks)
        if (wanted is None or wanted & set(c.clauses)) and not set(c.clauses) <= excluded
    ]
    results = {
        c.id: ClauseResult(clause=c.id, must=c.must, title=c.title)
        for c in _spec.clauses()
        if not c.withdrawn and (wanted is None or c.id in wanted)
    }
    todo = [i for i in selected if checks[i].family not in skipped and checks[i].name not in excluded]
    info: dict[str, Any] = {}
    stop = _first_failure(results, expected_failures or {}) if exitfirst else None
    if isolate:
        name = target if isinstance(target, str) else target.name
        found, info = _run_isolated(
            name, checks, todo, limits, helpers, profile, examples, seed, progress, stop
        )
    else:
        if isinstance(target, str):
            target = Target.load(target)
        target.preflight()  # TargetError at once, not a report of crashes
        found = _run_in_process(target, checks, todo, progress, stop)
        name = target.name
    cases = []
    for i in selected:
        check = checks[i]
        outcome: Outcomes
        if check.family in skipped:
            outcome, seconds = Outcome("not_run", f"{SKIPPED} (--skip {check.family})"), 0.0
        elif check.name in excluded:
            outcome, seconds = Outcome("not_run", f"{SKIPPED} (--exclude {check.name})"), 0.0
        elif i not in found:
            outcome, seconds = Outcome("not_run", f"{SKIPPED} (--exitfirst: stopped at a failure)"), 0.0
        else:
            outcome, seconds = found[i]
        fold(results, check, outcome)
        cases.append(CaseResult.of(check, outcome, seconds))
    for clause in excluded & set(results):
        result = results[clause]
        result.status, result.detail, result.skipped = "NOT RUN", f"{SKIPPED} (--exclude {clause})", 1
        result.failures, result.counterexample = [], None
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
    notes = info.get("notes", [])
    for result in results.values():
        if result.clause.startswith("BA-9.") and result.status == "FAIL" and notes:
            result.detail += " (note: " + "; ".join(notes) + ")"
    ordered = sorted(results.values(), key=lambda r: _spec.clause_key(r.clause))
    return Report(
        target=name,
        profile=profile,
        max_examples=examples,
        seed=seed,
        clauses=ordered,
        seconds=time.perf_counter() - started,
        skipped_families=skipped,
        allow_not_run=allow_not_run,
        cases=cases,
        excluded=sorted(excluded),
        notes=notes,
        isolated=isolate,
        limits=limits,
    )


def run_check(check: Check, target: Target) -> Outcomes:
    from batchapply_conformance._diagnose import run_check as diagnosed

    return diagnosed(check, target)


def _first_failure(
    results: Mapping[str, ClauseResult], expected: Mapping[str, str]
) -> Callable[[Check, Outcomes], bool]:
    """Whether a check's outcome FAILs a MUST clause that is not an expected failure (--exitfirst)."""

    def stop(check: Check, found: Outcomes) -> bool:
        for outcome in found if isinstance(found, list) else [found]:
            if outcome.status != "fail":
                continue
            for clause in outcome.charged if outcome.charged is not None else check.clauses:
                if clause in results and results[clause].must and clause not in expected:
                    return True
        return False

    return stop


def _run_in_process(
    target: Target,
    checks: list[Check],
    todo: list[int],
    progress: Callable[[int, int, str], None] | None,
    stop: Callable[[Check, Outcomes], bool] | None = None,
) -> dict[int, tuple[Outcomes, float]]:
    found = {}
    for done, i in enumerate(todo, 1):
        began = time.perf_counter()
        found[i] = (run_check(checks[i], target), time.perf_counter() - began)
        if progress is not None:
            progress(done, len(todo), checks[i].name)
        if stop is not None and stop(checks[i], found[i][0]):
            break
    return found


def _run_isolated(
    name: str,
    checks: list[Check],
    todo: list[int],
    limits: Limits,
    helpers: str | None,
    profile: str,
    examples: int,
    seed: int | None,
    progress: Callable[[int, int, str], None] | None,
    stop: Callable[[Check, Outcomes], bool] | None = None,
) -> tuple[dict[int, tuple[Outcomes, float]], dict[str, Any]]:
    """Each check of ``todo`` in the worker, bounded; a lost worker is replaced and the run goes on."""
    # The worker sees the caller's sys.path (and the current directory, as `python -m` does),
    # so that a target importable here is importable there.
    env = {"PYTHONPATH": os.pathsep.join(p for p in [*sys.path, os.getcwd()] if p)}
    env.setdefault("XLA_FLAGS", os.environ.get("XLA_FLAGS", DEVICES_FLAG))
    # ... and the modules the caller blocked (None in sys.modules: "not installed").
    blocked = [module for module, value in sys.modules.items() if value is None]
    init = ("init", [*sys.path, os.getcwd()], blocked, name, helpers, profile, examples, seed)
    worker = Worker(limits, env)
    found: dict[int, tuple[Outcomes, float]] = {}
    try:
        info = _start(worker, init, name, limits)
        fresh = False
        for done, i in enumerate(todo, 1):
            check = checks[i]
            began = time.perf_counter()
            try:
                if fresh:
                    _start(worker, init, name, limits)
                    fresh = False
                outcome = worker.ask(("run", i, check.name), limits.seconds(check.family))[1]
            except WorkerLost as e:
                fresh = True
                outcome = Outcome(
                    "fail",
                    f"{e.kind}: {e.detail}",
                    {"case": check.name, "got": f"{e.kind}: {e.detail}"},
                )
            except TargetError as e:  # the target no longer loads: what is left did not run
                outcome = Outcome("not_run", f"the worker could not be restarted: {e}")
            found[i] = (outcome, time.perf_counter() - began)
            if progress is not None:
                progress(done, len(todo), check.name)
            if stop is not None and stop(check, outcome):
                break
    finally:
        worker.close()
    return found, info


def _start(worker: Worker, init: tuple[Any, ...], name: str, limits: Limits) -> dict[str, Any]:
    """Start the worker: import the target (bounded by IMPORT_TIMEOUT), then make it and call
    it on a tiny case (bounded by the per-check time limit); TargetError when either fails."""
    try:
        answer = worker.ask(init, IMPORT_TIMEOUT)
    except WorkerLost as e:
        raise TargetError(f"cannot import target {name!r}: {e.kind}: {e.detail}") from None
    if answer[0] == "error":
        raise TargetError(answer[2])
    try:
        answer = worker.ask(("preflight",), limits.timeout)
    except WorkerLost as e:
        how = (
            f"did not return within {limits.timeout:g} s (--timeout)"
            if e.kind == "TIMEOUT"
            else f"crashed the process ({e.detail})"
        )
        raise TargetError(f"`{name}` {how} at construction: make(identity, 2)(np.zeros((2, 3, 4)))") from None
    if answer[0] == "error":
        raise TargetError(answer[2])
    return dict(answer[1])


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


def render(report: Report, *, failures_only: bool = False, max_cases: int = 3) -> str:
    """The human-readable table and summary line.

    Each row shows the clause's title; a row that is not PASS is followed by its detail
    in full (for a FAIL, up to ``max_cases`` failing cases; the JSON report keeps more).
    With ``failures_only``, only FAIL, XPASS and NOT RUN rows (not those skipped on request).
    """
    lines = [
        f"batchapply-conformance: {report.target} against SPEC.md "
        f"(profile {report.profile}, {report.max_examples} examples per property"
        f"{', seed ' + str(report.seed) if report.seed is not None else ', derandomized'})",
        f"{'clause':<8} {'level':<6} {'status':<7} {'checks':>6}  title",
    ]
    for r in report.clauses:
        if failures_only and not (r.status in ("FAIL", "XPASS") or (r.status == "NOT RUN" and r.not_run)):
            continue
        level = "MUST" if r.must else "-"
        lines.append(f"{r.clause:<8} {level:<6} {r.status:<7} {r.checks:>6}  {r.title}".rstrip())
        if r.status == "FAIL" and r.failures:
            for failure in r.failures[:max_cases]:
                lines.append(f"{'':<8} - {failure['case']}: {failure['detail']}")
            if r.failed > max_cases:
                lines.append(f"{'':<8}   ({r.failed - max_cases} more failing cases in the JSON report)")
        elif r.status != "PASS" and r.detail:
            lines.append(f"{'':<8} - {r.detail}")
    for note in report.notes:
        lines.append(f"note: {note}")
    counts = report.counts()
    if report.failing_musts:
        verdict = f"does not conform: MUST clauses fail: {', '.join(report.failing_musts)}"
    elif report.not_run_musts and not report.allow_not_run:
        verdict = f"not checked: MUST clauses NOT RUN: {', '.join(report.not_run_musts)}"
    else:
        verdict = "conforms"
        if report.counts()["XFAIL"]:
            verdict += f" except {report.counts()['XFAIL']} expected failures"
        narrowed = [f"--skip {f}" for f in report.skipped_families]
        narrowed += [f"--exclude {e}" for e in report.excluded]
        if report.not_run_musts:
            narrowed.append(f"--allow-not-run: {len(report.not_run_musts)} MUST clauses NOT RUN")
        if narrowed:
            verdict += f" (narrowed: {', '.join(narrowed)})"
    lines.append(
        f"summary: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['NOT RUN']} NOT RUN, "
        f"{counts['N/A']} N/A"
        + (f", {counts['XFAIL']} XFAIL" if counts["XFAIL"] else "")
        + (f", {counts['XPASS']} XPASS" if counts["XPASS"] else "")
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
