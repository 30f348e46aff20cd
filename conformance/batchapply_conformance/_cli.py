"""``batchapply-conformance TARGET``: check a BatchApply implementation against SPEC.md."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from batchapply_conformance import _spec
from batchapply_conformance._checks import FAMILIES, Target, TargetError
from batchapply_conformance._run import PROFILES, render, run, write_progress

DEFAULT_TARGET = "batchapply:BatchApply"
DEVICES_FLAG = "--xla_force_host_platform_device_count=8"

EXIT_CODES = """exit status:
  0  conforms: every applicable MUST clause passes (and its checks ran)
  1  a MUST clause FAILs
  2  usage error, or the target is not a BatchApply factory (nothing was checked)
  3  no MUST clause fails, but a check of one did NOT RUN (e.g. hypothesis is missing:
     install batchapply[conformance]); --skip and --allow-not-run accept that on purpose"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="batchapply-conformance",
        description="Check a BatchApply implementation against SPEC.md, clause by clause. "
        "Exit status 0 only when every applicable MUST clause passes.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        default=DEFAULT_TARGET,
        help="`module:attr` naming a factory make(f, num_dims) -> callable, e.g. "
        f"flax.linen:BatchApply or haiku:BatchApply (default: {DEFAULT_TARGET})",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci", help="examples per property check")
    p.add_argument("--max-examples", type=_positive, help="examples per property check (overrides --profile)")
    p.add_argument("--clause", action="append", help="run only this clause (repeatable), e.g. BA-3.2")
    p.add_argument(
        "--skip",
        action="append",
        choices=FAMILIES,
        default=[],
        help="do not run this family of checks (repeatable); its clauses are NOT RUN, on request",
    )
    p.add_argument(
        "--allow-not-run",
        action="store_true",
        help="exit 0 even when a MUST clause's check could not run (its status stays NOT RUN)",
    )
    p.add_argument("--seed", type=int, help="a random run from this seed (default: derandomized)")
    p.add_argument("--json", type=pathlib.Path, metavar="PATH", help="also write the report as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """The console script; returns the exit status (see ``--help``)."""
    # Eight CPU devices, so that the multi-device checks of SPEC section 14 run; XLA reads
    # the flag when jax starts its backends, so it must be set before any check runs.
    os.environ.setdefault("XLA_FLAGS", DEVICES_FLAG)
    p = parser()
    args = p.parse_args(argv)
    ids = sorted((c.id for c in _spec.clauses()), key=_spec.clause_key)
    unknown = sorted(set(args.clause or ()) - set(ids))
    if unknown:
        p.error(f"argument --clause: unknown clause {', '.join(unknown)}; SPEC.md has {ids[0]} to {ids[-1]}")
    if args.json is not None:
        folder = args.json.resolve().parent
        if not folder.is_dir():
            p.error(f"argument --json: directory {str(folder)!r} does not exist")
        if not os.access(folder, os.W_OK):
            p.error(f"argument --json: directory {str(folder)!r} is not writable")
    try:
        target = Target.load(args.target)
        target.preflight()
    except TargetError as e:
        print(f"batchapply-conformance: error: {e}", file=sys.stderr)
        return 2
    except (ImportError, AttributeError, ValueError) as e:
        message = " ".join(str(e).split())
        print(
            f"batchapply-conformance: error: cannot load target {args.target!r}: {message}", file=sys.stderr
        )
        return 2
    report = run(
        target,
        profile=args.profile,
        max_examples=args.max_examples,
        seed=args.seed,
        clauses=args.clause,
        progress=write_progress,
        skip=args.skip,
        allow_not_run=args.allow_not_run,
    )
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    if report.exit_code == 3:
        print(
            f"batchapply-conformance: MUST clauses NOT RUN ({', '.join(report.not_run_musts)}): "
            f"{report.not_run_reason()}; pass --allow-not-run to accept",
            file=sys.stderr,
        )
    return report.exit_code
