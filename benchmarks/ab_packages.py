"""A/B of small eager calls: two copies of the ``batchapply`` package, in alternating fresh processes.

Issue 25 restructured the core (plan, then executors) and asks that eager calls be no slower.
Each round starts one process per package (old, new; then new, old), each times every case
(best of ``--repeat`` timeit runs of ``--number`` calls, after 20 warm-up calls and the
background compiles) and prints microseconds per call; the result is the median over rounds
of new / old per case. Ratios, not times: both packages run on the same machine in the same
minutes::

    git archive 976349a impl | tar -x -C /tmp/pre25     # the package before issue 25 (63a5505)
    python benchmarks/ab_packages.py /tmp/pre25/impl impl --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

CHILD = r"""
import json, timeit
import numpy as np, jax, jax.numpy as jnp
import batchapply
from batchapply import BatchApply
a = np.ones((4, 8, 16), np.float32); b = np.ones((4, 8, 16), np.float32); w = np.ones((16, 16), np.float32)
xs = {str(i): jnp.ones((4, 8, 16)) for i in range(10)}
cases = {
    "2 NumPy leaves": (BatchApply(lambda x, y: x + y), (a, b)),
    "in_axes (x, None)": (BatchApply(lambda x, w: x @ w, in_axes=(0, None)), (a, w)),
    "10 jax.Array leaves": (BatchApply(lambda t: t), (xs,)),
    "chunked NumPy": (BatchApply(lambda x: x * 2, chunk_size=16), (a,)),
}
out = {"__file__": batchapply.__file__}
for name, (f, args) in cases.items():
    for _ in range(20):
        jax.block_until_ready(f(*args))
    try:  # the package after issue 26 compiles repeated signatures' groups in the background
        from batchapply import _exec_fused
        _exec_fused.wait()
    except ImportError:
        pass
    out[name] = min(timeit.repeat(lambda: f(*args), number=NUMBER, repeat=REPEAT)) / NUMBER * 1e6
print(json.dumps(out))
"""


def once(impl: str, number: int, repeat: int) -> dict[str, float]:
    """Microseconds per call of every case, in a fresh process that imports ``impl``'s package."""
    env = {**os.environ, "PYTHONPATH": impl}
    code = CHILD.replace("NUMBER", str(number)).replace("REPEAT", str(repeat))
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    found = json.loads(done.stdout.splitlines()[-1])
    imported = pathlib.Path(found.pop("__file__")).resolve()
    if pathlib.Path(impl).resolve() not in imported.parents:  # an installed copy would shadow it
        raise SystemExit(f"{impl}: the child imported {imported} instead")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the directory that holds the old package (its impl/)")
    parser.add_argument("new", help="the directory that holds the new package")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    o = parser.parse_args()
    ratios: dict[str, list[float]] = {}
    for r in range(o.rounds):
        order = [o.old, o.new] if r % 2 == 0 else [o.new, o.old]
        got = {impl: once(impl, o.number, o.repeat) for impl in order}
        for case, old in got[o.old].items():
            ratios.setdefault(case, []).append(got[o.new][case] / old)
            print(f"round {r} {case}: old {old:.1f} us, new {got[o.new][case]:.1f} us", flush=True)
    for case, found in ratios.items():
        spread = f"min {min(found):.2f}, max {max(found):.2f}"
        print(f"{case}: new/old median {statistics.median(found):.2f} ({spread})")


if __name__ == "__main__":
    main()
