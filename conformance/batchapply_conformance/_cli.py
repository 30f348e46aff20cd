"""``batchapply-conformance TARGET``: check a BatchApply implementation against SPEC.md."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from batchapply_conformance import _spec
from batchapply_conformance._run import PROFILES, render, run, write_progress

DEFAULT_TARGET = "batchapply:BatchApply"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="batchapply-conformance",
        description="Check a BatchApply implementation against SPEC.md, clause by clause. "
        "Exit status 0 only when every applicable MUST clause passes.",
    )
    p.add_argument(
        "target",
        nargs="?",
        default=DEFAULT_TARGET,
        help="`module:attr` naming a factory make(f, num_dims) -> callable, e.g. "
        f"flax.linen:BatchApply or haiku:BatchApply (default: {DEFAULT_TARGET})",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci", help="examples per property check")
    p.add_argument("--max-examples", type=int, help="examples per property check (overrides --profile)")
    p.add_argument("--clause", action="append", help="run only this clause (repeatable), e.g. BA-3.2")
    p.add_argument("--seed", type=int, help="a random run from this seed (default: derandomized)")
    p.add_argument("--json", type=pathlib.Path, metavar="PATH", help="also write the report as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    known = {c.id for c in _spec.clauses()}
    unknown = sorted(set(args.clause or ()) - known)
    if unknown:
        print(
            f"batchapply-conformance: unknown clause(s) {unknown}; SPEC.md has {min(known)} to {max(known)}.",
            file=sys.stderr,
        )
        return 2
    try:
        report = run(
            args.target,
            profile=args.profile,
            max_examples=args.max_examples,
            seed=args.seed,
            clauses=args.clause,
            progress=write_progress,
        )
    except (ImportError, AttributeError, ValueError) as e:
        print(f"batchapply-conformance: cannot load target {args.target!r}: {e}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.conforms else 1
