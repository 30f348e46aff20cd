"""The FAIL set of every one-fault target of ``broken_targets.CORPUS``, against its clause set.

Issue 23 asks that each fault be charged to its clauses and no others: a target's clause set is
its ``CORPUS`` clause and what ``broken_targets.ALSO`` lists (the other clauses the one fault
breaks, each with its reason). ``tests/test_conformance.py`` pins the exact set of every target
not ``OPEN``. This writes ``tests/corpus_fail_sets.md``: per target, its clause, the verdict,
the other clauses that FAIL, and the seconds. Through the CLI (default profile, every clause,
one target at a time, as a user would) it takes about 40 minutes on the 2-core machine; from
``tests/corpus_worker.py dev --full`` output (the kit in-process, dev profile) a few::

    python -m tests.corpus_fail_sets            # every target, through the CLI
    python -m tests.corpus_fail_sets fortran_order numpy_to_jax
    python -m tests.corpus_fail_sets --reports DIR   # from saved reports DIR/NAME.json
    python tests/corpus_worker.py dev --full > runs.jsonl
    python -m tests.corpus_fail_sets --worker runs.jsonl
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


def from_worker(path: pathlib.Path) -> dict[str, tuple[int, list[str], float]]:
    """(exit status, the clauses that FAIL, seconds) per target, from ``tests/corpus_worker.py
    dev --full`` output (one JSON line per target: the kit in-process, dev profile)."""
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return {
        run["target"].removeprefix("broken_targets:"): (run["exit"], run["fails"], run["seconds"])
        for run in runs
    }


def verdict(name: str, fails: list[str]) -> tuple[str, list[str]]:
    """How ``fails`` compares with the target's clause set (its clause and ``ALSO``); the others."""
    import broken_targets  # type: ignore[import-not-found]

    own = broken_targets.CORPUS[name]
    declared = {own, *broken_targets.ALSO.get(name, {})}
    others = [c for c in fails if c != own]
    if set(fails) == declared:
        return ("exactly its clause" if declared == {own} else "exactly its clause set"), others
    if name in broken_targets.OPEN:
        return f"open: {broken_targets.OPEN[name]}", others
    return ("NOT its clause set" if own in fails else "NOT its clause"), others


def main(argv: list[str]) -> int:
    sys.path[:0] = [str(ROOT / "tests")]
    import broken_targets

    reports = worker = None
    if argv[:1] == ["--reports"]:  # the CLI's JSON reports of an earlier run, one per target
        reports, argv = pathlib.Path(argv[1]), argv[2:]
    if argv[:1] == ["--worker"]:  # corpus_worker.py dev --full output, every target in one process
        worker, argv = from_worker(pathlib.Path(argv[1])), argv[2:]
    names = argv or sorted(broken_targets.CORPUS)
    rows = []
    for name in names:
        saved = reports / f"{name.replace(':', '_')}.json" if reports is not None else None
        if worker is not None:
            code, fails, seconds = worker[name]
        else:
            code, fails, seconds = from_report(saved) if saved is not None else fail_set(name)
        own = broken_targets.CORPUS[name]
        said, others = verdict(name, fails)
        rows.append(f"| `{name}` | {own} | {said} | {', '.join(others) or '-'} | {code} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    how = (
        "`tests/corpus_worker.py dev --full`: the kit in-process, dev profile, every clause"
        if worker is not None
        else "the CLI, default profile, every clause, one target at a time"
        + ("; tabled from saved `batchapply-conformance TARGET --json` reports" if reports else "")
    )
    header = (
        f"# Exact FAIL sets of the one-fault corpus\n\n{datetime.date.today().isoformat()}, "
        f"`python -m tests.corpus_fail_sets{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}` ({how}). "
        "A target's clause set is its clause and what `broken_targets.ALSO` lists (each with its "
        "reason); `broken_targets.OPEN` says why a target's set is not exact yet.\n\n"
        "| target | its clause | verdict | other clauses that FAIL | exit | s |\n|---|---|---|---|---|---|\n"
    )
    OUT.write_text(header + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
