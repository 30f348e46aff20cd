"""The exact FAIL set of every one-fault target of ``broken_targets.CORPUS``, through the CLI.

``tests/test_kit_corpus.py`` asks each target to FAIL its own clause, on that clause alone
(fast). Issue 23 asks more: that each fault is charged to its clauses and no others. This
runs the CLI (default profile, every clause, one target at a time, as a user would) and
writes ``tests/corpus_fail_sets.md``: per target, its clause, the other clauses that FAIL,
and the seconds. About 40 minutes on the 2-core machine, so not part of the test command::

    python -m tests.corpus_fail_sets            # every target
    python -m tests.corpus_fail_sets fortran_order numpy_to_jax
    python -m tests.corpus_fail_sets --reports DIR   # from saved reports DIR/NAME.json
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "corpus_fail_sets.md"
ERRORS = {"BA-10.1", "BA-10.2"}
"""The cross-cutting error clauses: a fault in an error row is also a fault of BA-10.1 (type and
prefix) and often of BA-10.2 (no bare errors)."""


def fail_set(name: str) -> tuple[int, list[str], float]:
    """(exit status, the clauses that FAIL, seconds) of the CLI on one corpus target."""
    target = name if ":" in name else f"broken_targets:{name}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    with tempfile.TemporaryDirectory() as tmp:
        report = pathlib.Path(tmp) / "report.json"
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "batchapply_conformance", target, "--json", str(report)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        seconds = time.perf_counter() - began
        clauses = json.loads(report.read_text())["clauses"] if report.exists() else []
    return done.returncode, sorted(c["clause"] for c in clauses if c["status"] == "FAIL"), seconds


def from_report(path: pathlib.Path) -> tuple[int, list[str], float]:
    """(exit status, the clauses that FAIL, seconds) from a saved ``--json`` report."""
    report = json.loads(path.read_text())
    fails = sorted(c["clause"] for c in report["clauses"] if c["status"] == "FAIL")
    return report["exit_code"], fails, report["seconds"]


def main(argv: list[str]) -> int:
    sys.path[:0] = [str(ROOT / "tests")]
    import broken_targets  # type: ignore[import-not-found]

    reports = None
    if argv[:1] == ["--reports"]:  # the CLI's JSON reports of an earlier run, one per target
        reports, argv = pathlib.Path(argv[1]), argv[2:]
    names = argv or sorted(broken_targets.CORPUS)
    rows = []
    for name in names:
        saved = reports / f"{name.replace(':', '_')}.json" if reports is not None else None
        code, fails, seconds = from_report(saved) if saved is not None else fail_set(name)
        own = broken_targets.CORPUS[name]
        others = [c for c in fails if c != own]
        verdict = (
            "exactly its clause"
            if fails == [own]
            else "its clause and BA-10.x"
            if own in fails and set(others) <= ERRORS
            else "its clause and others"
            if own in fails
            else "NOT its clause"
        )
        rows.append(f"| `{name}` | {own} | {verdict} | {', '.join(others) or '-'} | {code} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    header = (
        f"# Exact FAIL sets of the one-fault corpus\n\n{datetime.date.today().isoformat()}, "
        f"`python -m tests.corpus_fail_sets{' ' + ' '.join(argv) if argv else ''}` "
        "(the CLI, default profile, every clause, one target at a time"
        f"{'; tabled from saved `batchapply-conformance TARGET --json` reports' if reports else ''}).\n\n"
        "| target | its clause | verdict | other clauses that FAIL | exit | s |\n|---|---|---|---|---|---|\n"
    )
    OUT.write_text(header + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
