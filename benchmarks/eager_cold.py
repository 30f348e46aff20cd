"""First eager call in a fresh process: batchapply, flax.linen.BatchApply and the floor (issue 12).

Each measurement is its own child process (nothing compiled before it), the implementations
interleaved, their order alternating from one repeat to the next; prints the medians and the
ratio to flax per repeat. The pytest-benchmark group ``eager_cold_*`` measures the same after
``jax.clear_caches()``; this script is for 10,000 leaves, where the floor takes minutes:

    PYTHONPATH=impl:reference:conformance:. python benchmarks/eager_cold.py --leaves 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, sys, time
import jax, jax.numpy as jnp
import flax.linen as nn
from batchapply import BatchApply
impl, n = sys.argv[1], int(sys.argv[2])
tree = {f"k{i:05d}": jnp.full((4, 8, 16), i, jnp.float32) for i in range(n)}
jax.block_until_ready(tree)
identity = lambda t: t
if impl == "batchapply":
    fn = BatchApply(identity)
elif impl == "flax":
    fn = nn.BatchApply(identity)
else:  # floor: one jitted reshape of the whole tree per direction
    merge = jax.jit(lambda t: jax.tree.map(lambda x: x.reshape((32,) + x.shape[2:]), t))
    split = jax.jit(lambda t: jax.tree.map(lambda x: x.reshape((4, 8) + x.shape[1:]), t))
    fn = lambda t: split(identity(merge(t)))
start = time.perf_counter()
jax.block_until_ready(fn(tree))
print(json.dumps(time.perf_counter() - start))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--floor-repeat", type=int, default=1, help="runs of the floor (slow)")
    args = parser.parse_args()
    impls = ["batchapply", "flax"]
    times: dict[str, list[float]] = {"batchapply": [], "flax": [], "floor": []}
    for r in range(args.repeat):
        order = impls + (["floor"] if r < args.floor_repeat else [])
        for impl in order if r % 2 == 0 else order[::-1]:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, impl, str(args.leaves)],
                capture_output=True,
                text=True,
                check=True,
            )
            times[impl].append(json.loads(done.stdout))
            print(f"repeat {r} {impl}: {times[impl][-1]:.3f} s", flush=True)
    for impl, ts in times.items():
        if ts:
            print(f"{impl}: median {statistics.median(ts):.3f} s over {len(ts)}")
    ratios = [b / f for b, f in zip(times["batchapply"], times["flax"], strict=True)]
    listed = ", ".join(f"{x:.2f}" for x in ratios)
    print(f"batchapply / flax per repeat: {listed}; median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
