"""Writes benchmarks/sharding.md: collectives in the compiled HLO of BatchApply on sharded inputs.

Not part of the pass/fail suite (tests/sharding/ is). Run from the repository root:

    python benchmarks/sharding_table.py            # rewrites benchmarks/sharding.md

It simulates 8 CPU devices (a 2x4 mesh) and compiles, for each case, flax.linen.BatchApply,
batchapply.BatchApply with the default C order, and batchapply.BatchApply with the
shard-major order (the counts under Auto axes, "shard_major" under Explicit axes).
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import collections
import pathlib
import re
from collections.abc import Callable
from typing import Any

import flax
import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import batchapply

OUT = pathlib.Path(__file__).resolve().parent / "sharding.md"
COLLECTIVE = re.compile(
    r"\b(all-gather|all-to-all|all-reduce|collective-permute|reduce-scatter)(?:-start)?\("
)
T, B, F, HIDDEN, IMG, CH = 8, 16, 4, 8, 6, 3
LAYOUTS = {
    "[T, B@(x,y), F]": (P(None, ("x", "y")), (1, 8)),
    "[T@(x,y), B, F]": (P(("x", "y"), None), (8, 1)),
    "[T@x, B@y, F]": (P("x", "y"), (2, 4)),
}
RNG = np.random.default_rng(0)
W = jnp.asarray(RNG.normal(size=(F, HIDDEN)).astype(np.float32))
KERNEL = jnp.asarray(RNG.normal(size=(3, 3, CH, 4)).astype(np.float32))


def mlp(x: Any) -> Any:
    return jnp.tanh(x @ W)


def conv(x: Any) -> Any:
    return jax.lax.conv_general_dilated(x, KERNEL, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


FUNCTIONS: dict[str, tuple[Callable[[Any], Any], tuple[int, ...]]] = {
    "MLP": (mlp, (T, B, F)),
    "conv": (conv, (T, B, IMG, IMG, CH)),
}


def describe(apply: Callable[[Any], Any], x: jax.Array) -> str:
    """Collectives in the compiled HLO and the output's leading sharding, or the error raised."""
    try:
        compiled = jax.jit(apply).lower(x).compile()
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:60]}..."
    counts = collections.Counter(COLLECTIVE.findall(compiled.as_text() or ""))
    found = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "none"
    spec = compiled.output_shardings.spec
    return f"{found}; out {tuple(spec)[:2]}"


def temp_bytes(apply: Callable[[Any], Any], x: Any) -> int:
    """Temporary bytes per device of the compiled program (XLA's memory_analysis)."""
    memory = jax.jit(apply).lower(x).compile().memory_analysis()
    return int(memory.temp_size_in_bytes) if memory is not None else -1


def chunked_rows() -> list[str]:
    """chunk_size on sharded inputs (SPEC BA-14.9 to BA-14.11): collectives, and memory per device."""
    wide_w1, wide_w2 = jnp.ones((F, 256)), jnp.ones((256, F))

    def wide(rows: Any) -> Any:
        return jnp.tanh(rows @ wide_w1) @ wide_w2

    rows = [
        '| input | axes | `chunk_size=32`, default `"C"` | `chunk_size=32`, shard-major '
        "| temp bytes per device, 2^20 rows: unchunked | `chunk_size=4096` | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for layout, (leading, counts) in LAYOUTS.items():
        for axis_type in (AxisType.Auto, AxisType.Explicit):
            mesh = jax.make_mesh((2, 4), ("x", "y"), axis_types=(axis_type, axis_type))
            order: Any = counts if axis_type == AxisType.Auto else "shard_major"
            with jax.set_mesh(mesh):
                sharding = NamedSharding(mesh, P(*leading, None))
                x = jax.device_put(np.ones((T, B, F), np.float32), sharding)
                cells = [
                    describe(batchapply.BatchApply(mlp, chunk_size=32), x),
                    describe(batchapply.BatchApply(mlp, row_order=order, chunk_size=32), x),
                ]
                big = jax.ShapeDtypeStruct((8, 2**17, F), jnp.float32, sharding=sharding)
                whole = temp_bytes(batchapply.BatchApply(wide, row_order=order), big)
                chunked = temp_bytes(batchapply.BatchApply(wide, row_order=order, chunk_size=4096), big)
            cells += [f"{whole:,}", f"{chunked:,}", f"{whole / chunked:.0f}x"]
            rows.append(f"| `{layout}` | {axis_type.name} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    rows = [
        '| f | input | axes | flax.linen.BatchApply | batchapply, default `"C"` | batchapply, shard-major |',
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for fn_name, (f, shape) in FUNCTIONS.items():
        for layout, (leading, counts) in LAYOUTS.items():
            for axis_type in (AxisType.Auto, AxisType.Explicit):
                mesh = jax.make_mesh((2, 4), ("x", "y"), axis_types=(axis_type, axis_type))
                with jax.set_mesh(mesh):
                    spec = P(*leading, *(None,) * (len(shape) - 2))
                    x = jax.device_put(np.ones(shape, np.float32), NamedSharding(mesh, spec))
                    order: Any = counts if axis_type == AxisType.Auto else "shard_major"
                    cells = [
                        describe(flax.linen.BatchApply(f), x),
                        describe(batchapply.BatchApply(f), x),
                        describe(batchapply.BatchApply(f, row_order=order), x),
                    ]
                shown = layout.replace(", F]", ", H, W, C]") if fn_name == "conv" else layout
                rows.append(f"| {fn_name} | `{shown}` | {axis_type.name} | " + " | ".join(cells) + " |")
    shard_major = '`row_order=` the counts (Auto) or `"shard_major"` (Explicit)'
    text = "\n".join(
        [
            "# BatchApply on sharded inputs: collectives in the compiled HLO",
            "",
            "Written by `python benchmarks/sharding_table.py` (8 simulated CPU devices, a 2x4 mesh",
            f"`(x, y)`; jax {jax.__version__}, flax {flax.__version__}). Each cell: the collective ops",
            "of the compiled program (merge, f, split under `jax.jit`) and the output's sharding on",
            "the two leading dims, or the error raised. f is row-independent, so the hand-written",
            f"per-device program has no collective. Shard-major: {shard_major}.",
            "",
            *rows,
            "",
            "## With `chunk_size` (SPEC BA-14.9 to BA-14.11)",
            "",
            "The MLP on `[8, 16, 4]` (128 rows, 16 per device) in chunks of 32 rows under `jax.jit`; then",
            "the temporary memory per device (`compiled.memory_analysis().temp_size_in_bytes`) of a",
            "256-wide MLP on `[8, 131072, 4]` (2^20 rows), unchunked and in chunks of 4096 rows",
            '(512 per device), shard-major. With the default `"C"` order, Explicit axes raise E25; under',
            "`jax.jit` with Auto axes the tracers hide their sharding and XLA communicates (BA-14.11).",
            "",
            *chunked_rows(),
            "",
        ]
    )
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
