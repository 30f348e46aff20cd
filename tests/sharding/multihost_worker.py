"""One process of the multi-process checks of SPEC section 14 (tests/test_multihost.py starts them).

    XLA_FLAGS=--xla_force_host_platform_device_count=4 \\
        python -m tests.sharding.multihost_worker PROCESS_ID NUM_PROCESSES PORT DUMP_DIR

Every process runs the same checks in the same order on global arrays that no process can
address whole (JAX's multi-controller model): a mesh (hosts, local) of NUM_PROCESSES x
8 / NUM_PROCESSES CPU devices (tests/test_multihost.py runs 2 x 4; 4 x 2 passes too), gloo
collectives between the processes. A failing check is reported on stderr and the run goes
on, so that the processes stay in step; the exit code is 1 if any check failed, and SKIP (77)
when this platform cannot run multi-process CPU jax at all.

Collectives are counted in the compiled HLO: under jax.jit that of the jitted call; eagerly
that of every module XLA compiles during the call (XLA dumps them into DUMP_DIR). A module
that an earlier eager call compiled is served from jax's cache and was checked then: nothing
else here compiles the reshapes, slices and transposes of an eager BatchApply call.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

SKIP = 77
T, B = 8, 16


def main(argv: list[str]) -> int:
    process_id, num_processes, port, dump = int(argv[0]), int(argv[1]), argv[2], pathlib.Path(argv[3])
    dump = dump / f"process{process_id}"
    # Before jax starts its backend: XLA reads the flags once.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={dump} --xla_dump_hlo_as_text"
    ).strip()
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception as e:  # a jax built without gloo: the platform cannot run these checks
        print(f"SKIP: this jax cannot run CPU collectives between processes (gloo): {e!r}")
        return SKIP
    jax.distributed.initialize(
        f"localhost:{port}", num_processes=num_processes, process_id=process_id, initialization_timeout=60
    )
    failures = []
    try:
        if jax.process_count() != num_processes or jax.device_count() != 8:
            raise RuntimeError(
                f"expected {num_processes} processes and 8 devices in all, jax sees {jax.process_count()} "
                f"x {jax.local_device_count()}: run with XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{8 // num_processes}"
            )
        for name, check in checks(dump):
            start = time.perf_counter()
            try:
                check()
            except Exception:
                failures.append(name)
                print(f"FAIL {name}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            else:
                print(f"ok {name} ({time.perf_counter() - start:.1f} s)", flush=True)
    finally:
        jax.distributed.shutdown()
    print(f"{len(failures)} failed: {failures}" if failures else "all passed", flush=True)
    return 1 if failures else 0


def checks(dump: pathlib.Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """(name, check) pairs, in the same order in every process."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import batchapply
    import batchapply_reference
    from tests.sharding.common import W1, W2, F, count_collectives, mlp, mlp_numpy

    hosts = jax.process_count()
    devices = jax.device_count()
    data = np.random.default_rng(1).normal(size=(T, B, F)).astype(np.float32)
    target = np.random.default_rng(2).normal(size=(T, B, F)).astype(np.float32)

    def mesh(axis_type: AxisType) -> jax.sharding.Mesh:
        # jax.make_mesh keeps each process's devices together: row h of the mesh is process h.
        return jax.make_mesh((hosts, devices // hosts), ("hosts", "local"), axis_types=(axis_type,) * 2)

    def from_callback(values: np.ndarray, m: jax.sharding.Mesh, spec: P) -> jax.Array:
        return jax.make_array_from_callback(values.shape, NamedSharding(m, spec), lambda index: values[index])

    def from_local(values: np.ndarray, m: jax.sharding.Mesh, spec: P) -> jax.Array:
        # Each process holds its own block of T (the hosts axis cuts T).
        rows = T // hosts
        local = values[jax.process_index() * rows : (jax.process_index() + 1) * rows]
        return jax.make_array_from_process_local_data(NamedSharding(m, spec), local, values.shape)

    # name -> (leading-dim spec, shard counts of (T, B), how the global array is built)
    layouts = {
        "[T, B@all, F]": (P(None, ("hosts", "local")), (1, devices), from_callback),
        "[T@hosts, B@local, F]": (P("hosts", "local"), (hosts, devices // hosts), from_local),
    }
    axis_types = {"explicit": AxisType.Explicit, "auto": AxisType.Auto}

    def tagged(rows: Any) -> Any:
        """Row-independent, but output row r carries r: the values show the order f saw."""
        return mlp(rows) + jnp.arange(rows.shape[0], dtype=rows.dtype)[:, None]

    def tagged_numpy(rows: np.ndarray) -> np.ndarray:
        return mlp_numpy(rows) + np.arange(rows.shape[0], dtype=rows.dtype)[:, None]

    def dumped() -> set[pathlib.Path]:
        return set(dump.glob("*after_optimizations.txt"))

    def gathered(x: jax.Array) -> np.ndarray:
        assert not x.is_fully_addressable
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    def merge_split(
        layout: str, axes: str, mode: str, order: str, chunk_size: int | None = None
    ) -> Callable[[], None]:
        def check() -> None:
            spec, counts, build = layouts[layout]
            m = mesh(axis_types[axes])
            row_order: Any = counts if order == "counts" else "shard_major"
            apply = batchapply.BatchApply(tagged, row_order=row_order, chunk_size=chunk_size)
            with jax.set_mesh(m):
                x = build(data, m, P(*spec, None))
                assert not x.is_fully_addressable
                if mode == "jit":
                    jitted = jax.jit(apply)
                    hlo = [jitted.lower(x).compile().as_text()]
                    out = jitted(x)
                else:
                    before = dumped()
                    out = jax.block_until_ready(apply(x))
                    hlo = [path.read_text() for path in sorted(dumped() - before)]
                    assert dumped(), f"XLA dumped no module into {dump}: the eager checks would see nothing"
                found: dict[str, int] = {}
                for text in hlo:
                    for name, n in count_collectives(text).items():
                        found[name] = found.get(name, 0) + n
                assert found == {}, f"collectives in the compiled merge, f and split: {found}"
                assert out.sharding.is_equivalent_to(x.sharding, 3), (out.sharding, x.sharding)
                got = gathered(out)
            want = batchapply_reference.BatchApply(tagged_numpy, row_order=counts, chunk_size=chunk_size)(
                data
            )
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

        return check

    for layout in layouts:
        for axes in axis_types:
            for mode in ("eager", "jit"):
                for order in ("shard_major", "counts"):
                    if (axes, mode, order) == ("auto", "jit", "shard_major"):
                        continue  # tracers hide Auto shardings: E22, checked below
                    yield (
                        f"merge-split {layout} {axes} {mode} {order}",
                        merge_split(layout, axes, mode, order),
                    )

    # Local chunks (BA-14.9, BA-14.10): 24 global rows per call of f, 3 local rows of each of
    # the 8 shards; 16 local rows per shard make 5 chunks and a last one of 1 row per shard.
    for layout in layouts:
        for axes in axis_types:
            for mode in ("eager", "jit"):
                order = "counts" if (axes, mode) == ("auto", "jit") else "shard_major"
                yield f"chunked {layout} {axes} {mode} {order}", merge_split(layout, axes, mode, order, 24)

    def chunk_memory(layout: str, axes: str) -> Callable[[], None]:
        def check() -> None:  # BA-14.10: 2^20 rows, chunks of 4096 (512 per device); compiled only
            spec, counts, _ = layouts[layout]
            m = mesh(axis_types[axes])
            w1, w2 = jnp.ones((F, 256)), jnp.ones((256, F))
            temp = {}
            with jax.set_mesh(m):
                big = jax.ShapeDtypeStruct(
                    (T, 2**20 // T, F), jnp.float32, sharding=NamedSharding(m, P(*spec, None))
                )
                for chunk_size in (None, 4096):
                    apply = batchapply.BatchApply(
                        lambda r: jnp.tanh(r @ w1) @ w2,
                        row_order=counts if axes == "auto" else "shard_major",
                        chunk_size=chunk_size,
                    )
                    compiled = jax.jit(apply).lower(big).compile()
                    assert count_collectives(compiled) == {}, count_collectives(compiled)
                    assert compiled.output_shardings.is_equivalent_to(big.sharding, 3)
                    memory = compiled.memory_analysis()
                    assert memory is not None
                    temp[chunk_size] = memory.temp_size_in_bytes
            assert temp[None] >= 50 * temp[4096], temp

        return check

    for layout in layouts:
        for axes in axis_types:
            yield f"chunked temp memory per device {layout} {axes}", chunk_memory(layout, axes)

    def c_order_chunks(layout: str, axes: str) -> Callable[[], None]:
        def check() -> None:  # BA-14.11: E25 before f is called, with the way out
            spec, counts, build = layouts[layout]
            m = mesh(axis_types[axes])
            with jax.set_mesh(m):
                x = build(data, m, P(*spec, None))
                try:
                    batchapply.BatchApply(tagged, chunk_size=24)(x)
                except ValueError as e:
                    assert str(e).startswith("BatchApply: chunk_size on a sharded batch needs row_order"), e
                    assert f"shard counts {counts}" in str(e) and "row_order='shard_major'" in str(e), e
                else:
                    raise AssertionError("chunk_size with the C order on a sharded batch did not raise E25")

        return check

    for layout in layouts:
        for axes in axis_types:
            yield f"C-order chunks raise E25 {layout} {axes} eager", c_order_chunks(layout, axes)

    def hidden_sharding() -> None:
        spec, _, build = layouts["[T, B@all, F]"]
        m = mesh(AxisType.Auto)
        with jax.set_mesh(m):
            x = build(data, m, P(*spec, None))
            try:
                jax.jit(batchapply.BatchApply(tagged, row_order="shard_major"))(x)
            except ValueError as e:
                assert str(e).startswith("BatchApply: row_order='shard_major' cannot see the sharding"), e
            else:
                raise AssertionError("row_order='shard_major' under jit with Auto axes did not raise E22")

    yield "shard_major under jit with auto axes raises E22", hidden_sharding

    def training_step(layout: str, axes: str) -> Callable[[], None]:
        """Data parallelism: the gradient of a loss over a sharded batch, replicated weights."""

        def check() -> None:
            spec, counts, build = layouts[layout]
            m = mesh(axis_types[axes])
            apply = batchapply.BatchApply(
                lambda rows, w1, w2: jnp.tanh(rows @ w1) @ w2,
                in_axes=(0, None, None),
                row_order=counts if axes == "auto" else "shard_major",
            )

            def loss(params: tuple[Any, Any], x: Any, y: Any) -> Any:
                return jnp.mean((apply(x, *params) - y) ** 2)

            with jax.set_mesh(m):
                x, y = build(data, m, P(*spec, None)), build(target, m, P(*spec, None))
                params = (from_callback(W1, m, P()), from_callback(W2, m, P()))
                grad = jax.jit(jax.grad(loss))
                found = count_collectives(grad.lower(params, x, y).compile())
                assert found == {"all-reduce": 1}, f"expected one all-reduce (the gradients), got {found}"
                grads = [
                    gathered(g) if not g.is_fully_addressable else np.asarray(g) for g in grad(params, x, y)
                ]
            # By hand, in NumPy: rows in C order (a mean over rows does not depend on their order).
            rows, want_y = data.reshape(T * B, F), target.reshape(T * B, F)
            hidden = np.tanh(rows @ W1)
            d_out = 2 * (hidden @ W2 - want_y) / want_y.size
            d_hidden = (d_out @ W2.T) * (1 - hidden**2)
            np.testing.assert_allclose(grads[0], rows.T @ d_hidden, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(grads[1], hidden.T @ d_out, rtol=1e-4, atol=1e-6)

        return check

    for layout in layouts:
        for axes in axis_types:
            yield f"training step {layout} {axes}", training_step(layout, axes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
