"""Regression gating: expectation files (``--expect``), baselines (``--baseline``) and ``diff``.

An expectation file lists the clauses (or cases) a target is known to fail, one per
line, each with its reason::

    # flax.linen.BatchApply: deviations from SPEC.md
    BA-3.2: leaves with different leading shapes are merged anyway
    golden errors:E9-transposed-leading: the same, on one case

The ID ends at the first ``": "``. Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from batchapply_conformance import _spec
from batchapply_conformance._run import SKIPPED


class GateError(ValueError):
    """An expectation file or report that cannot be used (a usage error: exit status 2)."""


SHIPPED = pathlib.Path(__file__).resolve().parent / "expectations"
"""Expectation files that ship with the kit: ``--expect flax.linen`` reads ``flax.linen.txt``."""


def expectation_file(given: pathlib.Path) -> pathlib.Path:
    """``given``, or the shipped file of that name when no such path exists."""
    shipped = SHIPPED / f"{given}.txt"
    return shipped if not given.exists() and shipped.is_file() else given


def read_expectations(path: pathlib.Path, case_names: set[str]) -> dict[str, str]:
    """ID -> reason, from an expectation file; GateError on an unknown ID or a missing reason.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "x.txt")
    ...     _ = p.write_text("# known\\nBA-3.2: merged anyway\\n")
    ...     read_expectations(p, set())
    {'BA-3.2': 'merged anyway'}
    """
    path = expectation_file(path)
    try:
        text = path.read_text()
    except OSError as e:
        shipped = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.txt")))
        raise GateError(
            f"argument --expect: cannot read {str(path)!r}: {e.strerror} (shipped files: {shipped})"
        ) from None
    clauses = {c.id for c in _spec.clauses() if not c.withdrawn}
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        ident, sep, reason = line.partition(": ")
        ident, reason = ident.strip(), reason.strip()
        where = f"argument --expect: {path}:{number}"
        if not sep or not reason:
            raise GateError(f"{where}: expected `ID: reason`, got {line!r}")
        if ident not in clauses and ident not in case_names:
            raise GateError(
                f"{where}: unknown ID {ident!r}: name a SPEC clause (BA-3.2) or a case as the "
                "JSON report's `cases` list names it (golden errors:E9-transposed-leading)"
            )
        found[ident] = reason
    return found


@dataclasses.dataclass
class Expectations:
    """What an expectation file found in a report: expected FAILs, XPASSes and new FAILs."""

    xfail: list[str]
    xpass: list[str]
    unexpected: list[str]
    unchecked: list[str]
    strict: bool

    @property
    def exit_code(self) -> int:
        return 1 if self.unexpected or (self.strict and self.xpass) else 0

    def lines(self) -> list[str]:
        out = []
        if self.unexpected:
            out.append(f"unexpected FAIL (not in --expect): {', '.join(self.unexpected)}")
        if self.xpass:
            how = "fails the run (strict; --expect-nonstrict accepts it)" if self.strict else "accepted"
            out.append(f"XPASS (listed in --expect, now passes; remove it): {', '.join(self.xpass)}: {how}")
        if self.unchecked:
            out.append(
                f"listed in --expect but not checked here (N/A or NOT RUN): {', '.join(self.unchecked)}"
            )
        out.append(f"expected FAIL (XFAIL): {len(self.xfail)}")
        return out


def apply_expectations(report: Any, expected: dict[str, str], *, strict: bool = True) -> Expectations:
    """Mark the listed clauses XFAIL or XPASS in ``report``; which MUST FAILs nothing explains.

    A clause FAIL is expected when the clause is listed, or when every failing case
    charged to it is listed.
    """
    cases = {c.case: c for c in report.cases}
    xfail, xpass, unchecked = [], [], []
    for ident in expected:
        if ident in cases:
            status = cases[ident].status
        else:
            status = next((r.status for r in report.clauses if r.clause == ident), "not run here")
        if status == "FAIL":
            xfail.append(ident)
        elif status == "PASS":
            xpass.append(ident)
        else:
            unchecked.append(ident)
    unexpected = []
    for result in report.clauses:
        if result.status == "PASS" and result.clause in expected:
            result.status, result.detail = (
                "XPASS",
                f"listed in --expect ({expected[result.clause]}), but passes",
            )
        if result.status != "FAIL":
            continue
        failing = [c.case for c in report.cases if c.status == "FAIL" and result.clause in c.charged]
        if result.clause in expected or (failing and all(name in expected for name in failing)):
            reason = expected.get(result.clause) or "; ".join(dict.fromkeys(expected[n] for n in failing))
            result.status, result.detail = "XFAIL", f"expected failure ({reason}): {result.detail}"
        elif result.must:
            unexpected.append(result.clause)
    return Expectations(xfail=xfail, xpass=xpass, unexpected=unexpected, unchecked=unchecked, strict=strict)


# ---- baselines and diffs -----------------------------------------------------------------


def load_report(path: pathlib.Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise GateError(f"{what}: cannot read a report from {str(path)!r}: {e}") from None
    if not isinstance(data, dict) or "clauses" not in data or "cases" not in data:
        raise GateError(
            f"{what}: {str(path)!r} is not a batchapply-conformance report with per-case results "
            "(schema batchapply-conformance-report/3 or later; write one with --json)"
        )
    return data


FAILING = ("FAIL", "XFAIL")
"""A clause that fails, listed in an expectation file or not (cases have no XFAIL)."""


def _unchecked_clause(c: dict[str, Any] | None) -> bool:
    """NOT RUN, and not (only) on request: ``not_run`` counts the checks that could not run."""
    return c is not None and c["status"] == "NOT RUN" and c["not_run"] > 0


def _unchecked_case(c: dict[str, Any] | None) -> bool:
    """NOT RUN, not on request (--skip, --exclude, --exitfirst say so in the detail)."""
    return c is not None and c["status"] == "NOT RUN" and not c["detail"].startswith(SKIPPED)


CASES_SHOWN = 10
"""Per clause and section, the cases a diff lists unless asked for all (``diff --all``)."""


@dataclasses.dataclass
class Diff:
    """How NEW differs from OLD: regressions (exit 1), improvements, other changes.

    ``clause_of`` maps a case's line to the clauses it is charged to (or cites), so that one
    fault that fails a hundred cases reads as one clause and its first few cases.
    """

    regressions: list[str]
    improvements: list[str]
    changes: list[str]
    warnings: list[str]
    clause_of: dict[str, str] = dataclasses.field(default_factory=dict)
    gone: list[str] = dataclasses.field(default_factory=list)
    """Clauses and cases of OLD that NEW does not have (a run narrowed by --clause, or renamed)."""

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def render(self, shown: int | None = CASES_SHOWN) -> str:
        """The diff, readable: every clause, and up to ``shown`` cases per clause and section."""
        lines = [*(f"warning: {w}" for w in self.warnings)]
        for title, items in (
            ("regressions", self.regressions),
            ("improvements", self.improvements),
            ("other changes", self.changes),
        ):
            lines.append(f"{title}: {len(items) + (len(self.gone) if items is self.changes else 0)}")
            count: dict[str, int] = {}
            for item in items:
                group = self.clause_of.get(item)
                if group is not None:
                    count[group] = count.get(group, 0) + 1
                    if shown is not None and count[group] > shown:
                        continue
                lines.append(f"  {item}")
            lines += [
                f"  ... and {n - shown} more {'case' if n - shown == 1 else 'cases'} of {group} "
                "(`batchapply-conformance diff OLD NEW --all` lists every one)"
                for group, n in count.items()
                if shown is not None and n > shown
            ]
        if shown is None:
            lines += [f"  {item}" for item in self.gone]
        elif self.gone:
            lines.append(
                f"  ... and {len(self.gone)} clauses or cases of OLD that NEW does not have (--clause "
                "narrows a run; `batchapply-conformance diff OLD NEW --all` lists them)"
            )
        verdict = "REGRESSED" if self.regressions else "no regression"
        lines.append(
            f"diff: {len(self.regressions)} regressions, {len(self.improvements)} improvements; {verdict}"
        )
        return "\n".join(lines)


def diff(old: dict[str, Any], new: dict[str, Any]) -> Diff:
    """Compare two reports clause by clause and case by case.

    A regression: a clause or case that did not fail and now does (FAIL, or XFAIL: an
    expectation file does not make a new failure old), or a new NOT RUN: a clause or case
    whose check now could not run, not on request, where it ran before or did not exist. An
    improvement: a FAIL (or XFAIL) that now passes (PASS or XPASS).
    """
    warnings = [
        f"{key} differs: {old.get(key)!r} then {new.get(key)!r}"
        for key in ("target", "profile", "max_examples", "seed")
        if old.get(key) != new.get(key)
    ]
    regressions, improvements, changes = [], [], []
    clause_of: dict[str, str] = {}
    old_clauses = {c["clause"]: c for c in old["clauses"]}
    for c in new["clauses"]:
        before = old_clauses.get(c["clause"])
        was = before["status"] if before else "absent"
        now = c["status"]
        new_not_run = _unchecked_clause(c) and not _unchecked_clause(before)
        if was == now and not new_not_run:
            continue
        line = f"{c['clause']}: {was} -> {now}"
        if (now in FAILING and was not in FAILING) or new_not_run:
            regressions.append(f"{line}: {c['detail']}")
        elif was in FAILING and now in ("PASS", "XPASS"):
            improvements.append(line)
        else:
            changes.append(line)
    old_cases = {c["case"]: c for c in old["cases"]}
    new_cases = {c["case"]: c for c in new["cases"]}
    for name, c in new_cases.items():
        before = old_cases.get(name)
        was = before["status"] if before else "absent"
        now = c["status"]
        new_not_run = _unchecked_case(c) and not _unchecked_case(before)
        if was == now and not new_not_run:
            continue
        line = f"case {name}: {was} -> {now}"
        if now == "FAIL":
            line = f"{line} (charged to {', '.join(c['charged'])}): {c['detail']}"
            regressions.append(line)
        elif new_not_run:
            line = f"{line}: {c['detail']}"
            regressions.append(line)
        elif was == "FAIL" and now == "PASS":
            improvements.append(line)
        else:
            changes.append(line)
        clause_of[line] = ", ".join(c["charged"] if now == "FAIL" else c.get("clauses", [])) or "no clause"
    new_clauses = {c["clause"] for c in new["clauses"]}
    gone = [
        f"{c['clause']}: {c['status']} -> absent" for c in old["clauses"] if c["clause"] not in new_clauses
    ]
    gone += [f"case {c['case']}: {c['status']} -> absent" for c in old["cases"] if c["case"] not in new_cases]
    return Diff(regressions, improvements, changes, warnings, clause_of, gone)
