"""Eager chunk_size against eager unchunked, interleaved in one process (issue 17).

    PYTHONPATH=impl:reference:conformance python benchmarks/chunk_eager.py [--rounds 15] [--steady 20]

The workload of issue 17: ``f = BatchApply(lambda x: jnp.tanh(x @ w), chunk_size=4096)`` on
``x = jnp.ones((64, 1024, 64))`` (65,536 rows, 16 chunks), next to the same ``f`` unchunked
to ``jax.jit`` of the chunked one, and to the chunked one with its CPU host path switched off
(``eager_chunked_device_slices``: the jitted slices and concatenation that other devices get,
see ``on_host`` in impl/batchapply/_leaves.py). Each round runs every variant, in an order that
alternates between rounds: ``jax.clear_caches()``, one timed first call (it compiles all it
runs: for eager code, jax's per-primitive programs), then ``--steady`` timed calls (their
minimum is the round's steady time). The ratios are per round, so that load from other
processes that changes between rounds cancels out; the script prints their median and
quartiles. The pytest-benchmark rows of the same workload (groups ``eager_chunk_4096`` and
``eager_chunk_4096_first`` in benchmarks/test_benchmarks.py) feed the gate; this script is
the finer measurement. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from batchapply import BatchApply, _leaves


def variants() -> tuple[dict[str, Callable[[], Any]], Any]:
    x = jnp.ones((64, 1024, 64))
    w = jnp.ones((64, 64)) / 64

    def f(rows: jax.Array) -> jax.Array:
        return jnp.tanh(rows @ w)

    chunked = BatchApply(f, chunk_size=4096)
    host_states = _leaves._HOST_STATES

    def on_host(x: Any) -> Any:
        _leaves._HOST_STATES = host_states
        return chunked(x)

    def device_slices(x: Any) -> Any:
        """The chunks of a non-CPU array: jitted slices and concatenation (``on_host`` off)."""
        _leaves._HOST_STATES = ()
        try:
            return chunked(x)
        finally:
            _leaves._HOST_STATES = host_states

    fns: dict[str, Callable[[Any], Any]] = {
        "eager_unchunked": BatchApply(f),
        "eager_chunked": on_host,
        "eager_chunked_device_slices": device_slices,
        "jit_chunked": jax.jit(chunked),
    }

    def bound(fn: Callable[[Any], Any]) -> Callable[[], Any]:
        return lambda: fn(x)

    return {name: bound(fn) for name, fn in fns.items()}, x


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{q[1]:.2f} (quartiles {q[0]:.2f} to {q[2]:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steady", type=int, default=20, help="timed steady calls per variant and round")
    args = parser.parse_args()
    fns, _ = variants()
    first: dict[str, list[float]] = {name: [] for name in fns}
    steady: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(args.rounds):
        names = list(fns) if r % 2 == 0 else list(reversed(fns))
        for name in names:
            jax.clear_caches()
            first[name].append(timed(fns[name]))
            steady[name].append(min(timed(fns[name]) for _ in range(args.steady)))
    print(f"{args.rounds} rounds; per-round ratios, median (quartiles) over rounds")
    for name in fns:
        print(
            f"{name}: first call median {statistics.median(first[name]) * 1e3:.1f} ms, "
            f"steady median {statistics.median(steady[name]) * 1e3:.2f} ms"
        )
    for name in ("eager_chunked", "eager_chunked_device_slices", "jit_chunked"):
        for label, times, target in (("steady", steady, 1.5), ("first call", first, 1.2)):
            ratios = [c / u for c, u in zip(times[name], times["eager_unchunked"], strict=True)]
            bound = f" (issue 17: <= {target})" if name == "eager_chunked" else ""
            print(f"{name} / eager_unchunked, {label}: {quartiles(ratios)}{bound}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
