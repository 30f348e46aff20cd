"""Run the benchmarks, print ratios, and fail on a regression against benchmarks/baseline.json.

    python benchmarks/gate.py                      # 4 runs, compare to the baseline, exit 1 on a regression
    python benchmarks/gate.py --update             # 4 runs, write them as the new baseline
    python benchmarks/gate.py --json run*.json     # use saved pytest-benchmark JSON files instead of running
    python benchmarks/gate.py --calls              # also every eager call in fresh processes (issue 26)
    python benchmarks/gate.py --calls-only         # only those (--update: only their baseline entries)

Only ratios measured within one run are compared (never absolute times, which depend on
the machine and its load): each implementation's time (the median of its rounds, or the
minimum with --stat min) divided by the hand-written reshape's (`by_hand`) in the same
group, and for the eager groups batchapply's time divided by the two-dispatch floor's.
The gated numbers are batchapply's; a gated ratio regresses when the median over the runs
(which alternate the benchmark order) exceeds the baseline's by more than --threshold
(default 50%: on the shared 2-core machine of BENCHMARKS.md, the ratio of two identical
programs swings between 0.55 and 1.6 from one run to the next; the regressions this gate
is for, such as eager merging going back to one dispatch per leaf, are 5x and more).
flax.linen.BatchApply and jax.vmap are reported for comparison but not gated.

``--calls`` adds ``benchmarks/eager_calls.py`` (fresh processes, 10 to 10,000 leaves):
batchapply's time at every call index against flax.linen's same call, and its steady state
against the floor at 10,000 leaves, gated against the baseline as the rest and printed
against issue 26's goals (every call at most flax's; the steady state at most 1.15x the floor).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASELINE = ROOT / "benchmarks" / "baseline.json"
GATED_IMPLS = ("batchapply", "batchapply_chunk4096")
COLUMNS = ["batchapply", "batchapply_chunk4096", "jit_chunk4096", "flax", "vmap", "floor", "by_hand"]


def times(path: pathlib.Path, stat: str) -> dict[str, dict[str, float]]:
    """group -> impl -> seconds (the ``stat`` of its rounds), from one pytest-benchmark JSON file."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in json.loads(path.read_text())["benchmarks"]:
        found[bench["group"]][bench["extra_info"]["impl"]] = bench["stats"][stat]
    return found


def ratios(run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Metric name -> ratio, for one run: "group:impl/by_hand", and "group:batchapply/floor"."""
    out: dict[str, float] = {}
    for group, times in run.items():
        for impl, seconds in times.items():
            out[f"{group}:{impl}/by_hand"] = seconds / times["by_hand"]
        if "floor" in times:
            out[f"{group}:batchapply/floor"] = times["batchapply"] / times["floor"]
            out[f"{group}:flax/batchapply"] = times["flax"] / times["batchapply"]
        if group.startswith(("eager_cold", "eager_new_shapes")):  # issue 12: against flax.linen
            out[f"{group}:batchapply/flax"] = times["batchapply"] / times["flax"]
        if group.startswith("eager_chunk"):  # issue 17: eager chunked against eager unchunked
            out[f"{group}:batchapply_chunk4096/batchapply"] = (
                times["batchapply_chunk4096"] / times["batchapply"]
            )
    return out


def median_ratios(runs: list[dict[str, dict[str, float]]]) -> dict[str, float]:
    per_run = [ratios(run) for run in runs]
    return {name: statistics.median(r[name] for r in per_run if name in r) for name in sorted(per_run[0])}


def table(runs: list[dict[str, dict[str, float]]], summary: dict[str, float]) -> str:
    """A markdown table: one row per group, each implementation's ratio to by_hand (median over runs)."""
    groups = sorted(runs[0], key=lambda g: (g.startswith(("eager", "trace")), g))
    lines = [
        "| workload | by_hand time | "
        + " | ".join(COLUMNS)
        + " | batchapply / floor | flax / batchapply | chunked / unchunked |",
        "| --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " | ---: | ---: | ---: |",
    ]
    for group in groups:
        by_hand = statistics.median(run[group]["by_hand"] for run in runs)
        cells = [
            f"{summary[f'{group}:{impl}/by_hand']:.2f}" if f"{group}:{impl}/by_hand" in summary else ""
            for impl in COLUMNS
        ]
        floor = summary.get(f"{group}:batchapply/floor")
        speedup = summary.get(f"{group}:flax/batchapply")
        chunked = summary.get(f"{group}:batchapply_chunk4096/batchapply")
        cells.append("" if floor is None else f"{floor:.2f}")
        cells.append("" if speedup is None else f"{speedup:.1f}x")
        cells.append("" if chunked is None or not group.startswith("eager_chunk") else f"{chunked:.2f}")
        lines.append(f"| {group} | {by_hand * 1e3:.3f} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gated(name: str) -> bool:
    if name.startswith("calls:"):  # issue 26: every call index against flax, the steady state at 10,000
        per_call = name.endswith(":batchapply/flax") and ":steady:" not in name
        return per_call or name == "calls:10000:steady:batchapply/floor"
    impl = name.split(":", 1)[1]
    return impl.split("/")[0] in GATED_IMPLS and not impl.startswith("flax")


def _eager_calls() -> Any:
    """benchmarks/eager_calls.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("eager_calls", ROOT / "benchmarks" / "eager_calls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call_ratios(path: pathlib.Path | None, repeat: int, out_dir: pathlib.Path) -> dict[str, float]:
    """``calls:N:call<k>:batchapply/flax`` and ``calls:N:steady:batchapply/floor`` (issue 26)."""
    eager_calls = _eager_calls()
    if path is None:
        path = out_dir / "calls.json"
        argv = ["--leaves", "10", "100", "1000", "10000", "--repeat", str(repeat)]
        argv += ["--no-floor-above", "10000", "--json", str(path)]
        print("$ python benchmarks/eager_calls.py", " ".join(argv), flush=True)
        eager_calls.main(argv)
    record = json.loads(path.read_text())
    ratios = eager_calls.summary(record["results"])
    for name, ratio in sorted(ratios.items(), key=lambda item: (int(item[0].split(":")[0]), item[0])):
        goal = 1.15 if name.endswith("batchapply/floor") else 1.0
        verdict = "meets" if ratio <= goal else "MISSES"
        print(f"calls {name}: {ratio:.2f} ({verdict} issue 26's goal of <= {goal})")
    return {f"calls:{name}": value for name, value in ratios.items()}


def run_benchmarks(
    n_runs: int, scale: int, max_time: float, out_dir: pathlib.Path, select: str | None
) -> list[pathlib.Path]:
    """Run the benchmarks ``n_runs`` times, alternating the order (forward, reverse, ...)."""
    paths = []
    for i in range(n_runs):
        env = {**os.environ, "BATCHAPPLY_BENCH_ORDER": "reverse" if i % 2 else "forward"}
        path = out_dir / f"run{i}.json"
        command = [
            sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "-q", "-p", "no:randomly",
            f"--scale={scale}", f"--benchmark-max-time={max_time}", f"--benchmark-json={path}",
        ] + (["-k", select] if select else [])  # fmt: skip
        print(f"$ BATCHAPPLY_BENCH_ORDER={env['BATCHAPPLY_BENCH_ORDER']}", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", nargs="+", type=pathlib.Path, help="saved pytest-benchmark JSON files")
    parser.add_argument(
        "--runs", type=int, default=4, help="benchmark runs (alternating order); ratios are medians over them"
    )
    parser.add_argument("--scale", type=int, default=1, help="passed to the benchmarks (e.g. 16 on a GPU)")
    parser.add_argument("--max-time", type=float, default=0.5, help="--benchmark-max-time per benchmark")
    parser.add_argument("--threshold", type=float, default=0.5, help="allowed relative regression")
    parser.add_argument(
        "--stat", choices=["median", "min"], default="min", help="statistic of each benchmark's rounds"
    )
    parser.add_argument("--baseline", type=pathlib.Path, default=BASELINE)
    parser.add_argument("--update", action="store_true", help="write the measured ratios as the baseline")
    parser.add_argument("--keep", type=pathlib.Path, help="keep the runs' JSON files in this folder")
    parser.add_argument("-k", dest="select", help="run only these benchmarks (pytest -k); gate only what ran")
    parser.add_argument(
        "--calls", action="store_true", help="also time every eager call in fresh processes (eager_calls.py)"
    )
    parser.add_argument("--calls-json", type=pathlib.Path, help="a saved eager_calls.py --json file instead")
    parser.add_argument("--calls-repeat", type=int, default=3, help="fresh processes per implementation")
    parser.add_argument(
        "--calls-only", action="store_true", help="only the eager calls (no pytest-benchmark runs)"
    )
    args = parser.parse_args(argv)
    args.calls = args.calls or args.calls_only or args.calls_json is not None

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or pathlib.Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        runs = []
        summary: dict[str, float] = {}
        if not args.calls_only:
            paths = args.json or run_benchmarks(args.runs, args.scale, args.max_time, out_dir, args.select)
            runs = [times(path, args.stat) for path in paths]
            summary = median_ratios(runs)
            print(table(runs, summary))
        if args.calls:
            summary.update(call_ratios(args.calls_json, args.calls_repeat, out_dir))
    report(summary)
    return update(args, summary, len(runs)) if args.update else compare(args, summary)


def report(summary: dict[str, float]) -> None:
    """The summary against the targets of issues 12 and 17."""
    for group, target in (("eager_chunk_4096", 1.5), ("eager_chunk_4096_first", 1.2)):
        ratio = summary.get(f"{group}:batchapply_chunk4096/batchapply")
        if ratio is not None:
            print(f"{group}: eager chunk_size=4096 is {ratio:.2f}x eager unchunked (issue 17: <= {target}x)")
    for name, ratio in summary.items():  # issue 12's targets
        if name.startswith("calls:"):
            continue  # issue 26's, printed by call_ratios
        group, metric = name.split(":")
        if metric == "batchapply/flax":
            target = 1.2 if group.startswith("eager_cold") else 1.1
            print(
                f"{group}: batchapply takes {ratio:.2f}x flax.linen.BatchApply's time (issue 12: <= {target})"
            )
    nnx_ratio = summary.get("nnx_jit_linear:batchapply/by_hand")
    if nnx_ratio is not None:
        print(f"nnx_jit_linear: the nnx wrapper under nnx.jit is {nnx_ratio:.2f}x by hand (issue 26: <=1.02)")
    for leaves in (10, 100, 1000):
        group = f"eager_identity_{leaves}"
        if f"{group}:batchapply/floor" in summary:
            print(
                f"{group}: batchapply is {summary[f'{group}:flax/batchapply']:.1f}x faster than "
                f"flax.linen.BatchApply and {summary[f'{group}:batchapply/floor']:.2f}x the 2-dispatch floor"
            )


def update(args: argparse.Namespace, summary: dict[str, float], n_runs: int) -> int:
    """Write the gated ratios as the baseline; with --calls-only, only the calls' ones change."""
    measured = {name: round(value, 4) for name, value in summary.items() if gated(name)}
    if args.calls_only:
        baseline = json.loads(args.baseline.read_text())
        kept = {name: value for name, value in baseline["ratios"].items() if not name.startswith("calls:")}
        baseline["ratios"] = {**kept, **measured}
    else:
        baseline = {"scale": args.scale, "stat": args.stat, "runs": n_runs, "ratios": measured}
    args.baseline.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.baseline}")
    return 0


def compare(args: argparse.Namespace, summary: dict[str, float]) -> int:
    """Exit 1 when a gated ratio regressed past the threshold."""
    saved = json.loads(args.baseline.read_text())
    if (saved["scale"], saved["stat"]) != (args.scale, args.stat):
        print(f"baseline was measured with --scale {saved['scale']} --stat {saved['stat']}")
        return 2
    failures = []
    for name, before in sorted(saved["ratios"].items()):
        now = summary.get(name)
        calls = name.startswith("calls:")
        if now is None and ((args.select and not calls) or (calls and not args.calls) or args.calls_only):
            continue  # not selected by -k, or --calls not asked for, or only the calls asked for
        if now is None:
            failures.append(f"{name}: missing from this run")
        elif now > before * (1 + args.threshold):
            failures.append(f"{name}: {now:.3f} vs baseline {before:.3f} (+{now / before - 1:.0%})")
    print(f"\n{len(saved['ratios'])} gated ratios, threshold +{args.threshold:.0%}")
    for failure in failures:
        print("REGRESSION", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
