"""Runs the kit on every target of ``broken_targets.CORPUS`` (on its own clause) and of
``broken_targets.CORRECT`` (on every clause), in one process that sees 8 CPU devices, and prints
one JSON line per target: ``{"target", "clause", "exit", "failing", "fails", "seconds"}``
(``failing``: the MUST clauses that FAIL; ``fails``: every clause that does).

``python tests/corpus_worker.py [PROFILE] [--full] [NAME ...]``; tests/test_kit_corpus.py runs it,
and, with ``--full`` (every clause for every target), tests/test_conformance.py on the one-fault
targets whose exact FAIL sets it pins. Shrinking is off (the verdict, not the smallest
counterexample, is what the tests read).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import broken_targets  # type: ignore[import-not-found]

from batchapply_conformance import _properties, _run


def main(argv: list[str]) -> None:
    full = "--full" in argv
    argv = [a for a in argv if a != "--full"]
    profile = argv[0] if argv else "dev"
    names = argv[1:] or [*broken_targets.CORPUS, *broken_targets.CORRECT]
    _properties.SHRINK_SECONDS = 0
    _properties.SWEEP_AFTER_FAILURE_SECONDS = 0
    for name in names:
        clause = None if full else broken_targets.CORPUS.get(name)
        target = name if ":" in name else f"broken_targets:{name}"
        started = time.perf_counter()
        report = _run.run(target, profile=profile, clauses=[clause] if clause else None, isolate=False)
        print(
            json.dumps(
                {
                    "target": name,
                    "clause": clause,
                    "exit": report.exit_code,
                    "failing": report.failing_musts,
                    "fails": sorted(c.clause for c in report.clauses if c.status == "FAIL"),
                    "not_run": report.not_run_musts,
                    "seconds": round(time.perf_counter() - started, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
