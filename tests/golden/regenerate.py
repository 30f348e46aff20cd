"""Rewrite the golden corpus from the reference: ``python -m tests.golden.regenerate [--check]``.

Prints what changed (cases added, removed, changed; by clause). A changed expected
value is a behaviour change: record it in SPEC.md's Changelog. With ``--check`` it
writes nothing and exits 1 when the files on disk differ from the reference.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import sys

from batchapply_conformance import golden
from tests.golden import corpus

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "cases"
# Which version bump a changed or removed case needs, and what to record.
POLICY = "docs/compatibility.md#golden-drift"


def summarize(old: dict[str, golden.GoldenCase], new: dict[str, golden.GoldenCase]) -> list[str]:
    """One line per kind of change, with the clauses each touches."""
    kinds = {
        "added": [new[n] for n in new.keys() - old.keys()],
        "removed": [old[n] for n in old.keys() - new.keys()],
        "changed": [new[n] for n in new.keys() & old.keys() if new[n].to_json() != old[n].to_json()],
    }
    lines = []
    for kind, cases in kinds.items():
        if not cases:
            continue
        by_clause = collections.Counter(clause for case in cases for clause in case.clauses)
        clauses = ", ".join(f"{clause} ({count})" for clause, count in sorted(by_clause.items()))
        names = ", ".join(sorted(case.name for case in cases)[:10]) + (", ..." if len(cases) > 10 else "")
        lines.append(f"{len(cases)} {kind}: {names}\n    by clause: {clauses}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on any difference")
    args = parser.parse_args(argv)

    fresh = corpus.build()
    on_disk = {p.stem: golden.loads(p.read_text()) for p in sorted(GOLDEN_DIR.glob("*.jsonl"))}
    old = {case.name: case for cases in on_disk.values() for case in cases}
    new = {case.name: case for cases in fresh.values() for case in cases}
    changes = summarize(old, new)
    stale_files = sorted(set(on_disk) - set(fresh))
    texts = {stem: golden.dumps(cases) for stem, cases in fresh.items()}
    differs = stale_files or any(
        not (GOLDEN_DIR / f"{stem}.jsonl").exists() or (GOLDEN_DIR / f"{stem}.jsonl").read_text() != text
        for stem, text in texts.items()
    )
    if not args.check:  # write first: the report below may go to a closed pipe
        for stem in stale_files:
            (GOLDEN_DIR / f"{stem}.jsonl").unlink()
        for stem, text in texts.items():
            (GOLDEN_DIR / f"{stem}.jsonl").write_text(text)
    print(f"golden corpus: {len(new)} cases in {len(texts)} files")
    for line in changes:
        print("  " + line)
    if any(" changed:" in line or " removed:" in line for line in changes):
        print(
            "  Expected values changed or removed: this is a behaviour change; add an entry to SPEC.md's "
            f"Changelog and CHANGELOG.md, and check that the version bump allows it ({POLICY})."
        )
    if args.check:
        return 1 if differs else 0
    print("written." if differs else "unchanged.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
