"""Every eager call, counted from the first, in fresh processes: batchapply, flax.linen and the floor.

Issue 26's measurement. Each (implementation, leaves) runs in its own child process (nothing
compiled before it): an identity ``f`` on a dict of N leaves of shape ``(4, 8, 16)``, calls
1 to ``--calls`` timed one by one, then the steady state (the median of ``--steady`` more
calls). ``floor`` is what a careful user writes by hand: one jitted merge of the whole tree,
``f``, one jitted split. The implementations alternate their order from one repeat to the
next; the medians over the repeats are printed, with batchapply's ratio to flax at every call
index and its steady state against the floor:

    PYTHONPATH=impl:reference:conformance:. python benchmarks/eager_calls.py --leaves 10 100 1000 --repeat 3

``--json FILE`` writes every measurement (``benchmarks/gate.py --calls`` gates on it); the
floor's first call takes minutes at 10,000 leaves (``--no-floor-above``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import sys
from typing import Any

CHILD = """
import json, statistics, sys, time
import jax, jax.numpy as jnp
impl, n, calls, steady = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pin = sys.argv[5] == "1"
tree = {f"k{i:05d}": jnp.full((4, 8, 16), i, jnp.float32) for i in range(n)}
jax.block_until_ready(tree)
identity = lambda t: t
if impl == "batchapply":
    from batchapply import BatchApply
    fn = BatchApply(identity)
elif impl == "flax":
    import flax.linen as nn
    fn = nn.BatchApply(identity)
else:  # floor: one jitted reshape of the whole tree per direction
    merge = jax.jit(lambda t: jax.tree.map(lambda x: x.reshape((32,) + x.shape[2:]), t))
    split = jax.jit(lambda t: jax.tree.map(lambda x: x.reshape((4, 8) + x.shape[1:]), t))
    fn = lambda t: split(identity(merge(t)))
def timed():
    start = time.perf_counter()
    jax.block_until_ready(fn(tree))
    return time.perf_counter() - start
times = [timed() for _ in range(calls)]
if impl == "batchapply":  # the steady state: once the background thread has compiled the groups
    from batchapply import _exec_fused
    _exec_fused.wait()
if pin:  # every thread of the process on one CPU: see PIN_STEADY
    import os
    cpu = min(os.sched_getaffinity(0))
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass
print(json.dumps({"calls": times, "steady": statistics.median(timed() for _ in range(steady))}))
"""

PIN_STEADY = True
"""Measure the steady state with every thread of the child on one CPU (Linux). On the 2-core VM
of BENCHMARKS.md an eager dispatch costs either about 25 or about 90 microseconds, depending on
whether XLA's worker threads wake on the other core, and fresh processes land in either mode
(the floor's steady state at 10 leaves read 0.09 and 0.20 ms in four processes at 23:35 UTC on
2026-12-07). On one CPU every implementation pays the same; the calls before it stay free to
use both cores (batchapply's background compile needs the second one). ``--no-pin-steady``."""

IMPLS = ("batchapply", "flax", "floor")


def measure(impl: str, leaves: int, calls: int, steady: int, pin: bool = PIN_STEADY) -> dict[str, Any]:
    """One fresh process: the times of calls 1 to ``calls`` and the steady state, in seconds."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, impl, str(leaves), str(calls), str(steady), str(int(pin))],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over repeats of every call index and of the steady state."""
    calls = [statistics.median(run["calls"][k] for run in runs) for k in range(len(runs[0]["calls"]))]
    return {"calls": calls, "steady": statistics.median(run["steady"] for run in runs)}


def summary(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, float]:
    """The gated ratios: ``N:call<k>:batchapply/flax`` and ``N:steady:batchapply/floor``.

    A ratio at a call index is the median over repeats of that call's time (batchapply's
    median over flax's median), so that one stalled call in one process does not decide it.
    """
    out: dict[str, float] = {}
    for leaves, by_impl in results.items():
        mine = medians(by_impl["batchapply"])
        if by_impl.get("flax"):
            theirs = medians(by_impl["flax"])
            for k, (a, b) in enumerate(zip(mine["calls"], theirs["calls"], strict=True), start=1):
                out[f"{leaves}:call{k}:batchapply/flax"] = a / b
            out[f"{leaves}:steady:batchapply/flax"] = mine["steady"] / theirs["steady"]
        if by_impl.get("floor"):
            out[f"{leaves}:steady:batchapply/floor"] = mine["steady"] / medians(by_impl["floor"])["steady"]
    return out


def table(results: dict[str, dict[str, list[dict[str, Any]]]], shown: int = 5) -> str:
    """Milliseconds per call index (medians over repeats), and batchapply's ratios."""
    shown = min(shown, *(len(runs[0]["calls"]) for by in results.values() for runs in by.values() if runs))
    lines = [
        "| leaves | impl | " + " | ".join(f"call {k}" for k in range(1, shown + 1)) + " | steady |",
        "| ---: | --- | " + " | ".join("---:" for _ in range(shown)) + " | ---: |",
    ]
    for leaves, by_impl in results.items():
        for impl, runs in by_impl.items():
            if runs:
                m = medians(runs)
                cells = [f"{t * 1e3:.2f}" for t in m["calls"][:shown]] + [f"{m['steady'] * 1e3:.3f}"]
                lines.append(f"| {leaves} | {impl} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=12, help="calls timed one by one")
    parser.add_argument("--steady", type=int, default=30, help="more calls: their median is the steady state")
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument(
        "--no-floor-above", type=int, default=1000, help="no floor above this many leaves (minutes each)"
    )
    parser.add_argument("--json", type=pathlib.Path, help="write every measurement to this file")
    parser.add_argument(
        "--no-pin-steady", dest="pin", action="store_false", help="the steady state on all CPUs (PIN_STEADY)"
    )
    args = parser.parse_args(argv)

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for leaves in args.leaves:
        impls = [i for i in args.impls if not (i == "floor" and leaves > args.no_floor_above)]
        results[str(leaves)] = {impl: [] for impl in impls}
        for r in range(args.repeat):
            for impl in impls if r % 2 == 0 else impls[::-1]:
                results[str(leaves)][impl].append(measure(impl, leaves, args.calls, args.steady, args.pin))
                print(f"leaves {leaves} repeat {r} {impl}: done", file=sys.stderr, flush=True)
    ratios = summary(results)
    print(table(results))
    for name, ratio in ratios.items():
        print(f"{name} {ratio:.2f}")
    if args.json:
        command = "python benchmarks/eager_calls.py " + " ".join(argv if argv is not None else sys.argv[1:])
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        record = {"command": command, "date": when, "results": results, "ratios": ratios}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
