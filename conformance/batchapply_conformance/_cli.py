"""``batchapply-conformance TARGET``: check a BatchApply implementation against SPEC.md."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any

from batchapply_conformance import _gate, _spec
from batchapply_conformance._checks import FAMILIES, TargetError
from batchapply_conformance._run import DEVICES_FLAG, PROFILES, all_checks, render, run, write_progress
from batchapply_conformance._worker import DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT, SLOW_FAMILIES, Limits

DEFAULT_TARGET = "batchapply:BatchApply"

EXIT_CODES = """exit status:
  0  conforms: every applicable MUST clause passes (and its checks ran); with --expect,
     exactly the listed clauses/cases FAIL; with --baseline, nothing regressed
  1  a MUST clause FAILs (a crash or timeout of a case is its FAIL); with --expect, a FAIL
     not listed, or a listed one that passes (XPASS; --expect-nonstrict accepts it); with
     --baseline (and for `diff`), a clause or case that did not fail and now does, or a
     new NOT RUN
  2  nothing was checked: a usage error (unknown option, --clause or --exclude ID, an
     unreadable --expect file or an unknown ID in it, a --baseline file that is not a
     report, an unwritable --json path), or the target cannot be checked: importing it
     raised or exited, it is not a factory make(f, num_dims), or it raised, crashed or
     hung on make(identity, 2)(zeros((2, 3, 4)))
  3  no MUST clause fails, but a check of one did NOT RUN (e.g. hypothesis is missing:
     install batchapply[conformance]); --skip, --exclude and --allow-not-run accept that on
     purpose

`batchapply-conformance diff OLD.json NEW.json` compares two --json reports: exit 0,
or 1 when NEW regressed, or 2 when a file is not a report."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="batchapply-conformance",
        description="Check a BatchApply implementation against SPEC.md, clause by clause. "
        "Exit status 0 only when every applicable MUST clause passes. Each check runs in a "
        "worker process under a time and memory limit: a crash, abort, out-of-memory or hang "
        "is that case's FAIL (CRASH or TIMEOUT), and the run goes on.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        default=DEFAULT_TARGET,
        help="`module:attr` naming a factory make(f, num_dims) -> callable, e.g. "
        "flax.linen:BatchApply or haiku:BatchApply, or `path/to/adapter.py:attr` for a local "
        f"file (modules in the current directory are found too) (default: {DEFAULT_TARGET})",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci", help="examples per property check")
    p.add_argument("--max-examples", type=_positive, help="examples per property check (overrides --profile)")
    p.add_argument("--clause", action="append", help="run only this clause (repeatable), e.g. BA-3.2")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="CLAUSE|CASE",
        help="do not run this clause (BA-3.2) or case (`golden errors:E9-transposed-leading`, as "
        "the JSON report's `cases` name it) (repeatable); it is NOT RUN, on request",
    )
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
    p.add_argument(
        "-x",
        "--exitfirst",
        action="store_true",
        help="stop at the first check that FAILs a MUST clause (the rest are NOT RUN); the exit "
        "status is 1 exactly when a full run's is (without --expect)",
    )
    p.add_argument("--seed", type=int, help="a random run from this seed (default: derandomized)")
    p.add_argument("--json", type=pathlib.Path, metavar="PATH", help="also write the report as JSON")
    p.add_argument("--failures-only", action="store_true", help="print only FAIL, XPASS and NOT RUN rows")
    p.add_argument(
        "--helpers",
        metavar="MODULE",
        help="find SPEC section 9's helpers (merge_leading_dims, ...) in MODULE (default: the "
        "target's module, then the module that defines the factory)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"time limit per check (default {DEFAULT_TIMEOUT:g}; "
        + ", ".join(f"{f} checks get {k:g}x" for f, k in SLOW_FAMILIES.items())
        + "); also bounds the factory's first call",
    )
    p.add_argument(
        "--memory-limit",
        type=_positive,
        default=DEFAULT_MEMORY_MIB,
        metavar="MIB",
        help=f"resident memory the worker may use, in MiB (default {DEFAULT_MEMORY_MIB})",
    )
    p.add_argument(
        "--expect",
        type=pathlib.Path,
        metavar="FILE",
        help="clauses or cases known to FAIL, one `ID: reason` per line; exit 0 when exactly "
        "those fail; a name such as flax.linen, haiku or sonnet2 reads the file shipped with the kit",
    )
    p.add_argument(
        "--expect-nonstrict",
        action="store_true",
        help="with --expect, a listed clause that passes (XPASS) does not fail the run",
    )
    p.add_argument(
        "--baseline",
        type=pathlib.Path,
        metavar="REPORT",
        help="a previous --json report: exit 1 only on a regression, and list the improvements",
    )
    return p


def diff_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="batchapply-conformance diff",
        description="Compare two --json reports of batchapply-conformance: exit 1 when NEW regressed.",
    )
    p.add_argument("old", type=pathlib.Path)
    p.add_argument("new", type=pathlib.Path)
    p.add_argument(
        "--all",
        action="store_true",
        help=f"list every case that changed (default: the first {_gate.CASES_SHOWN} of each clause "
        "in each section)",
    )
    args = p.parse_args(argv)
    try:
        old = _gate.load_report(args.old, "OLD")
        new = _gate.load_report(args.new, "NEW")
    except _gate.GateError as e:
        p.error(str(e))
    found = _gate.diff(old, new)
    print(found.render(None if args.all else _gate.CASES_SHOWN))
    return found.exit_code


def _json_path_error(path: pathlib.Path) -> str | None:
    if path.is_dir():
        return f"{str(path)!r} is a directory; give a file name, e.g. {str(path / 'report.json')!r}"
    folder = path.resolve().parent
    if not folder.is_dir():
        return f"directory {str(folder)!r} does not exist"
    existed = path.exists()
    try:  # os.access answers yes to root; opening is the test that holds
        with path.open("a"):
            pass
    except OSError as e:
        return f"{str(path)!r} is not writable: {e.strerror}"
    if not existed:
        path.unlink()
    return None


def main(argv: list[str] | None = None) -> int:
    """The console script; returns the exit status (see ``--help``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["diff"]:
        return diff_main(argv[1:])
    # Eight CPU devices, so that the multi-device checks of SPEC section 14 run; XLA reads
    # the flag when jax starts its backends, so the worker starts with it.
    os.environ.setdefault("XLA_FLAGS", DEVICES_FLAG)
    p = parser()
    args = p.parse_args(argv)
    ids = sorted((c.id for c in _spec.clauses()), key=_spec.clause_key)
    unknown = sorted(set(args.clause or ()) - set(ids))
    if unknown:
        p.error(f"argument --clause: unknown clause {', '.join(unknown)}; SPEC.md has {ids[0]} to {ids[-1]}")
    case_names = {c.name for c in all_checks(args.profile, 1, None)}
    stray = sorted(set(args.exclude) - set(ids) - case_names)
    if stray:
        p.error(
            f"argument --exclude: unknown clause or case {', '.join(map(repr, stray))}; name a clause "
            "(BA-3.2) or a case as the JSON report's `cases` list names it"
        )
    if args.json is not None:
        problem = _json_path_error(args.json)
        if problem:
            p.error(f"argument --json: {problem}")
    expected: dict[str, str] = {}
    baseline: dict[str, Any] | None = None
    try:
        if args.expect is not None:
            expected = _gate.read_expectations(args.expect, case_names)
        if args.baseline is not None:
            baseline = _gate.load_report(args.baseline, "argument --baseline")
    except _gate.GateError as e:
        p.error(str(e))
    try:
        report = run(
            args.target,
            profile=args.profile,
            max_examples=args.max_examples,
            seed=args.seed,
            clauses=args.clause,
            progress=write_progress,
            skip=args.skip,
            allow_not_run=args.allow_not_run,
            exclude=args.exclude,
            isolate=True,
            limits=Limits(timeout=args.timeout, memory_mib=args.memory_limit),
            helpers=args.helpers,
            exitfirst=args.exitfirst,
        )
    except TargetError as e:
        print(f"batchapply-conformance: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    gate = _gate.apply_expectations(report, expected, strict=not args.expect_nonstrict) if expected else None
    print(render(report, failures_only=args.failures_only))
    code = report.exit_code
    if gate is not None:
        for line in gate.lines():
            print(f"expect: {line}")
        code = 1 if gate.exit_code else (code if code != 1 else 0)
    data = report.to_json()
    if gate is not None:
        data["expectations"] = {
            "file": str(args.expect),
            "strict": gate.strict,
            "xfail": gate.xfail,
            "xpass": gate.xpass,
            "unexpected": gate.unexpected,
            "unchecked": gate.unchecked,
        }
    if baseline is not None:
        found = _gate.diff(baseline, data)
        print(found.render())
        code = 1 if found.exit_code or (gate is not None and gate.exit_code) else 0
    data["exit_code"] = code
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if report.exit_code == 3 and code == 3:
        print(
            f"batchapply-conformance: MUST clauses NOT RUN ({', '.join(report.not_run_musts)}): "
            f"{report.not_run_reason()}; pass --allow-not-run to accept",
            file=sys.stderr,
        )
    return code
