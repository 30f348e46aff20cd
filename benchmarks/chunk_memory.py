"""Peak memory of an eager chunked call against the unchunked one (issue 17, SPEC BA-13.4).

    PYTHONPATH=impl:reference:conformance python benchmarks/chunk_memory.py [--rows-log2 20] [--repeat 3]
        [--chunk-sizes 4096 none] [--json benchmarks/results/chunk_memory.json]

The workload is the MLP of tests/workloads.py, ``tanh(x @ w1) @ w2``, over ``2**rows_log2``
merged rows (``x`` is ``[1024, 2**rows_log2 / 1024, 16]`` float32, hidden 512), eager, with
``chunk_size=4096`` and without. Each variant runs in its own child process (so that one
variant's freed memory is not the next one's): the child makes the inputs, calls once to
compile, then calls again while a thread samples the process's resident memory
(/proc/self/statm) every 0.2 ms, and also, inside ``f``, the bytes of every live jax.Array
(``jax.live_arrays()``). It reports the peak of each above what was live before the second
call (the inputs and weights): the RSS peak includes the allocator's slack, the live-array
peak misses what is only live between two calls of ``f`` (the concatenation), so the two
bracket the truth. Linux only (reads /proc). Nothing here asserts a size: this is a measurement.

``--chunk-sizes`` picks the variants (``none``: unchunked); ``--json`` writes every process's
numbers, and the compiled program's temporaries for each chunk size (``compiled_temp_bytes``:
``jax.jit(...).lower(...).compile().memory_analysis()``, no run, deterministic), which
benchmarks/plots.py draws and tests/test_release.py recomputes.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

CHILD = "--child"
MB = 2**20


def compiled_temp_bytes(rows_log2: int, chunk_size: int | None) -> int | None:
    """The temporaries of the jitted MLP over ``2**rows_log2`` rows (compiled, never run)."""
    import jax
    import jax.numpy as jnp

    from batchapply import BatchApply

    def mlp(rows: jax.Array, w1: jax.Array, w2: jax.Array) -> jax.Array:
        return jnp.tanh(rows @ w1) @ w2

    shapes = [(1024, 2**rows_log2 // 1024, 16), (16, 512), (512, 16)]
    args = [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in shapes]
    apply = BatchApply(mlp, in_axes=(0, None, None), chunk_size=chunk_size)
    stats = jax.jit(apply).lower(*args).compile().memory_analysis()
    return None if stats is None else int(stats.temp_size_in_bytes)


def _chunk_size(variant: str) -> int | None:
    """``"4096"`` or ``"eager_chunked"`` -> 4096; ``"none"`` or ``"eager_unchunked"`` -> None."""
    legacy = {"eager_chunked": "4096", "eager_unchunked": "none"}
    variant = legacy.get(variant, variant)
    return None if variant == "none" else int(variant)


def child(variant: str, rows_log2: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    from batchapply import BatchApply

    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    key = jax.random.key(0)
    x = jax.random.normal(key, (1024, 2**rows_log2 // 1024, 16), jnp.float32)
    w1 = jax.random.normal(jax.random.fold_in(key, 1), (16, 512), jnp.float32) / 4
    w2 = jax.random.normal(jax.random.fold_in(key, 2), (512, 16), jnp.float32) / 20
    live_peak = [0]

    def live() -> int:
        return sum(a.nbytes for a in jax.live_arrays())

    def mlp(rows: jax.Array, w1: jax.Array, w2: jax.Array) -> jax.Array:
        hidden = jnp.tanh(rows @ w1)
        jax.block_until_ready(hidden)
        live_peak[0] = max(live_peak[0], live())  # the chunk's intermediates, and every output so far
        out = hidden @ w2
        jax.block_until_ready(out)
        live_peak[0] = max(live_peak[0], live())
        return out

    chunk_size = _chunk_size(variant)
    apply = BatchApply(mlp, in_axes=(0, None, None), chunk_size=chunk_size)
    jax.block_until_ready(apply(x, w1, w2))  # compile every program first
    jax.block_until_ready(x)
    before_rss, before_live = rss(), live()
    live_peak[0] = before_live
    peak = [before_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.0002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = apply(x, w1, w2)
    jax.block_until_ready(out)
    live_peak[0] = max(live_peak[0], live())
    done.set()
    sampler.join()
    return {
        "rss_peak_above_inputs_mb": (peak[0] - before_rss) / MB,
        "live_peak_above_inputs_mb": (live_peak[0] - before_live) / MB,
        "output_mb": out.nbytes / MB,
        # x @ w1 and its tanh, one chunk
        "chunk_intermediates_mb": (chunk_size or 2**rows_log2) * 512 * 4 * 2 / MB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows-log2", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="child processes per variant (alternating)")
    parser.add_argument("--chunk-sizes", nargs="+", default=["4096", "none"], help="ints, or none")
    parser.add_argument("--json", type=pathlib.Path, help="write the results here")
    parser.add_argument(CHILD, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows_log2)))
        return 0
    results: dict[str, list[dict[str, float]]] = {variant: [] for variant in args.chunk_sizes}
    for _ in range(args.repeat):
        for variant in results:
            command = [sys.executable, __file__, CHILD, variant, "--rows-log2", str(args.rows_log2)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            results[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    what = f"MLP over 2**{args.rows_log2} rows, hidden 512, eager"
    print(f"{what}; MB above the inputs, min/max over {args.repeat} processes")
    for variant, runs in results.items():
        cells = ", ".join(
            f"{name} {min(r[name] for r in runs):.1f}/{max(r[name] for r in runs):.1f}"
            for name in ("rss_peak_above_inputs_mb", "live_peak_above_inputs_mb")
        )
        print(
            f"{variant}: {cells}; output {runs[0]['output_mb']:.1f}, one chunk's hidden "
            f"{runs[0]['chunk_intermediates_mb']:.1f}"
        )
    if "4096" in results and "none" in results:
        chunked = min(r["rss_peak_above_inputs_mb"] for r in results["4096"])
        unchunked = min(r["rss_peak_above_inputs_mb"] for r in results["none"])
        print(f"eager chunked / eager unchunked (RSS peak above inputs): {chunked / unchunked:.3f}")
    if args.json:
        compiled = {v: compiled_temp_bytes(args.rows_log2, _chunk_size(v)) for v in args.chunk_sizes}
        record = {
            "command": " ".join(["python", "benchmarks/chunk_memory.py", *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "rows_log2": args.rows_log2,
            "eager": results,
            "compiled_temp_bytes": compiled,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
