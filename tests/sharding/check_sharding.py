"""SPEC section 14 on 8 simulated CPU devices (a 2x4 mesh): compiled HLO, shardings, values.

Not collected by the plain test run (the name does not match test_*.py): jax must see 8
devices, which needs XLA_FLAGS before jax is imported. tests/test_sharding.py runs it:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest tests/sharding/check_sharding.py

Values are compared with batchapply_reference on NumPy copies (given the same shard counts),
collectives are counted in the compiled HLO text, and the expected count is that of the
hand-written per-device program: zero for a row-independent f.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import batchapply
import batchapply_reference
from tests.sharding.common import W1, F, count_collectives, mlp, mlp_numpy

if jax.device_count() != 8:
    raise RuntimeError(
        f"tests/sharding needs 8 devices, jax sees {jax.device_count()}: run it with "
        "XLA_FLAGS=--xla_force_host_platform_device_count=8 (tests/test_sharding.py does)."
    )

T, B = 8, 16
IMG, CH, OUT_CH = 6, 3, 4

# name -> (PartitionSpec of the leading dims, shard counts of (T, B)) on the 2x4 mesh (x, y).
LAYOUTS = {
    "T,B@xy": (P(None, ("x", "y")), (1, 8)),
    "T@xy,B": (P(("x", "y"), None), (8, 1)),
    "T@x,B@y": (P("x", "y"), (2, 4)),
}
AXIS_TYPES = {"auto": AxisType.Auto, "explicit": AxisType.Explicit}

RNG = np.random.default_rng(0)
KERNEL = RNG.normal(size=(3, 3, CH, OUT_CH)).astype(np.float32)


def conv(x: Any) -> Any:
    """A 3x3 SAME convolution on [rows, H, W, C]."""
    kernel = jnp.asarray(KERNEL)
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_numpy(x: np.ndarray) -> np.ndarray:
    """The same convolution, by explicit sums over the 3x3 window (NumPy only)."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros(x.shape[:3] + (OUT_CH,), dtype=np.float64)
    for di in range(3):
        for dj in range(3):
            window = padded[:, di : di + x.shape[1], dj : dj + x.shape[2], :]
            out += np.einsum("nhwc,co->nhwo", window, KERNEL[di, dj])
    return out.astype(np.float32)


FUNCTIONS = {
    "mlp": (mlp, mlp_numpy, (T, B, F)),
    "conv": (conv, conv_numpy, (T, B, IMG, IMG, CH)),
}


def mesh(axis_type: AxisType) -> jax.sharding.Mesh:
    return jax.make_mesh((2, 4), ("x", "y"), axis_types=(axis_type, axis_type))


def put(data: np.ndarray, m: jax.sharding.Mesh, leading: P) -> jax.Array:
    spec = P(*leading, *(None,) * (data.ndim - 2))
    return jax.device_put(data, NamedSharding(m, spec))


def cases() -> Iterator[Any]:
    """Shard-major from the counts under both axis types; "shard_major" under Explicit axes only
    (under jit, Auto-axis tracers hide their sharding: E22, tested below)."""
    for fn in FUNCTIONS:
        for layout in LAYOUTS:
            for axes, order in [("auto", "counts"), ("explicit", "counts"), ("explicit", "shard_major")]:
                yield pytest.param(fn, layout, axes, order, id=f"{fn}-{layout}-{axes}-{order}")


@pytest.mark.spec("BA-14.5", "BA-14.2", "BA-14.7")
@pytest.mark.parametrize(("fn", "layout", "axes", "order"), list(cases()))
def test_shard_major_compiles_without_collectives(fn: str, layout: str, axes: str, order: str) -> None:
    f, f_numpy, shape = FUNCTIONS[fn]
    leading_spec, counts = LAYOUTS[layout]
    m = mesh(AXIS_TYPES[axes])
    data = RNG.normal(size=shape).astype(np.float32)
    with jax.set_mesh(m):
        x = put(data, m, leading_spec)
        apply = jax.jit(batchapply.BatchApply(f, row_order=counts if order == "counts" else "shard_major"))
        compiled = apply.lower(x).compile()
        assert count_collectives(compiled) == {}, compiled.as_text()
        out_sharding = compiled.output_shardings
        assert out_sharding.is_equivalent_to(x.sharding, len(shape)), (out_sharding, x.sharding)
        got = apply(x)
    want = batchapply_reference.BatchApply(f_numpy, row_order=counts)(data)
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4)


@pytest.mark.spec("BA-14.7")
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_c_order_under_auto_axes_is_exact_and_communicates_only_when_it_must(layout: str) -> None:
    leading_spec, counts = LAYOUTS[layout]
    m = mesh(AxisType.Auto)
    data = RNG.normal(size=(T, B, F)).astype(np.float32)
    with jax.set_mesh(m):
        x = put(data, m, leading_spec)
        apply = jax.jit(batchapply.BatchApply(mlp))
        collectives = count_collectives(apply.lower(x).compile())
        got = apply(x)
    # Only a batch split on the first leading dim is already in C order (BA-14.2).
    assert (collectives == {}) == (counts[1] == 1), collectives
    np.testing.assert_allclose(np.asarray(got), batchapply_reference.BatchApply(mlp_numpy)(data), rtol=2e-4)


@pytest.mark.spec("BA-14.6", "BA-10.2")
@pytest.mark.parametrize("layout", ["T,B@xy", "T@x,B@y"])
def test_c_order_under_explicit_axes_raises_a_clear_error(layout: str) -> None:
    leading_spec, _ = LAYOUTS[layout]
    m = mesh(AxisType.Explicit)
    calls: list[int] = []

    def f(r: Any) -> Any:
        calls.append(1)
        return r

    with jax.set_mesh(m):
        x = put(np.zeros((T, B, F), np.float32), m, leading_spec)
        for wrap in (jax.jit, lambda g: g):  # traced and eager
            with pytest.raises(ValueError) as info:
                wrap(batchapply.BatchApply(f, in_axes=(0,)))(x)
            message = str(info.value)
            assert message.startswith("BatchApply: this row order needs communication: args[0] is float32[8")
            assert "@" in message and "row_order='shard_major'" in message and "reshard" in message
    assert calls == []


@pytest.mark.spec("BA-14.6")
def test_explicit_leaf_that_disagrees_with_the_call_order_raises() -> None:
    # The first sharded leaf (B split) decides the counts; a T-split leaf cannot follow them locally.
    m = mesh(AxisType.Explicit)
    with jax.set_mesh(m):
        a = put(np.zeros((T, B, F), np.float32), m, P(None, ("x", "y")))
        b = put(np.zeros((T, B, F), np.float32), m, P(("x", "y"), None))
        with pytest.raises(ValueError, match=r"^BatchApply: this row order needs communication: args\[1\]"):
            jax.jit(batchapply.BatchApply(lambda p, q: p + q, row_order="shard_major"))(a, b)


@pytest.mark.spec("BA-14.6", "BA-14.5")
@pytest.mark.parametrize(
    ("second", "local"),
    [(P("x", None), True), (P(None, None), True), (P(None, "y"), False), (P("y", "x"), False)],
    ids=["cut-on-T-only", "not-cut", "cut-on-B-only", "cut-the-other-way"],
)
def test_explicit_second_leaf_is_merged_only_when_its_rows_stay_local(second: P, local: bool) -> None:
    # The call's counts come from a (T@x, B@y) leaf: (2, 4). A second leaf cut (2, 1) keeps
    # each device's rows in one block (the x factor comes first); one cut (1, 4) does not.
    m = mesh(AxisType.Explicit)
    a_data = RNG.normal(size=(T, B, F)).astype(np.float32)
    b_data = RNG.normal(size=(T, B, F)).astype(np.float32)
    apply = jax.jit(batchapply.BatchApply(lambda p, q: (jnp.tanh(p), jnp.tanh(q)), row_order="shard_major"))
    with jax.set_mesh(m):
        a, b = put(a_data, m, P("x", "y")), put(b_data, m, second)
        if not local:
            with pytest.raises(
                ValueError, match=r"^BatchApply: this row order needs communication: args\[1\]"
            ):
                apply(a, b)
            return
        compiled = apply.lower(a, b).compile()
        got = apply(a, b)
    assert count_collectives(compiled) == {}
    assert got[1].sharding.is_equivalent_to(b.sharding, 3)
    np.testing.assert_allclose(np.asarray(got[0]), np.tanh(a_data), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got[1]), np.tanh(b_data), rtol=1e-5)


@pytest.mark.spec("BA-14.4", "BA-14.3")
@pytest.mark.parametrize("axes", list(AXIS_TYPES))
def test_shard_major_reads_counts_from_the_first_sharded_leaf_eagerly(axes: str) -> None:
    # Eager call, concrete arrays: the sharding is visible under both axis types. A replicated
    # leaf (a mask, say) comes first and is merged in the order of the sharded one.
    m = mesh(AXIS_TYPES[axes])
    data = RNG.normal(size=(T, B, F)).astype(np.float32)
    mask = RNG.normal(size=(T, B, 1)).astype(np.float32)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def f(r: Any, w: Any) -> Any:
        seen.append((np.asarray(r), np.asarray(w)))
        return r * w

    with jax.set_mesh(m):
        x = put(data, m, P("x", "y"))
        replicated = put(mask, m, P(None, None))
        got = batchapply.BatchApply(f, row_order="shard_major")(replicated, x)
    expected: list[tuple[np.ndarray, np.ndarray]] = []

    def f_numpy(r: np.ndarray, w: np.ndarray) -> np.ndarray:
        expected.append((r, w))
        return r * w

    want = batchapply_reference.BatchApply(f_numpy, row_order=(2, 4))(mask, data)
    np.testing.assert_array_equal(seen[0][0], expected[0][0])
    np.testing.assert_array_equal(seen[0][1], expected[0][1])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    assert got.sharding.is_equivalent_to(x.sharding, 3)


@pytest.mark.spec("BA-14.4")
def test_reference_reads_counts_from_a_concrete_sharded_array() -> None:
    # The reference reads x.sharding.shard_shape(x.shape) (BA-14.4) without importing jax.
    m = mesh(AxisType.Auto)
    data = np.arange(T * B, dtype=np.int32).reshape(T, B, 1)
    seen: list[np.ndarray] = []

    def f(rows: np.ndarray) -> np.ndarray:
        seen.append(rows)
        return rows

    batchapply_reference.BatchApply(f, row_order="shard_major")(put(data, m, P("x", "y")))
    # Device (0, 1) holds T rows 0..3 and B columns 4..7: its 16 rows are the second block.
    np.testing.assert_array_equal(np.asarray(seen[0])[16:32, 0], data[0:4, 4:8].reshape(-1))


@pytest.mark.spec("BA-14.4")
def test_shard_major_under_jit_with_auto_axes_raises() -> None:
    m = mesh(AxisType.Auto)
    with jax.set_mesh(m):
        x = put(np.zeros((T, B, F), np.float32), m, P(None, ("x", "y")))
        with pytest.raises(ValueError, match=r"^BatchApply: row_order='shard_major' cannot see the sharding"):
            jax.jit(batchapply.BatchApply(mlp, row_order="shard_major"))(x)


@pytest.mark.spec("BA-14.8")
@pytest.mark.parametrize("axes", list(AXIS_TYPES))
@pytest.mark.parametrize("row_order", ["C", "shard_major"])
def test_inside_shard_map_each_device_merges_its_local_rows(axes: str, row_order: Any) -> None:
    # The hand-written per-device program: a cumulative sum over each device's local rows in
    # C order. Values come from the reference applied block by block.
    m = mesh(AXIS_TYPES[axes])
    data = RNG.normal(size=(T, B, F)).astype(np.float32)
    apply = batchapply.BatchApply(lambda r: jnp.cumsum(jnp.tanh(r @ W1), axis=0), row_order=row_order)
    with jax.set_mesh(m):
        x = put(data, m, P("x", "y"))
        body = jax.shard_map(apply, mesh=m, in_specs=P("x", "y"), out_specs=P("x", "y"))
        compiled = jax.jit(body).lower(x).compile()
        assert count_collectives(compiled) == {}
        got = np.asarray(jax.jit(body)(x))
    reference = batchapply_reference.BatchApply(lambda r: np.cumsum(np.tanh(r @ W1), axis=0))
    for i in range(2):
        for j in range(4):
            block = (slice(i * T // 2, (i + 1) * T // 2), slice(j * B // 4, (j + 1) * B // 4))
            np.testing.assert_allclose(got[block], reference(data[block]), rtol=1e-4, atol=1e-4)


@pytest.mark.spec("BA-14.5", "BA-14.6")
def test_devices_page_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ```python block of docs/devices.md, in order, in one namespace (```py blocks need
    several processes: tests/sharding/multihost_worker.py runs what they show)."""
    page = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "devices.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks, "docs/devices.md has no python block"
    namespace: dict[str, Any] = {}
    for k, code in enumerate(blocks):
        exec(compile(code, f"docs/devices.md (python block {k})", "exec"), namespace)
    out = capsys.readouterr().out
    assert "BatchApply: this row order needs communication: args[0]" in out
    assert "BatchApply: chunk_size on a sharded batch needs row_order: args[0]" in out


def _error_trigger(row: str) -> Callable[[Any], Any]:
    from tests.test_errors import TRIGGERS

    return TRIGGERS[row]


@pytest.mark.spec("BA-10.1", "BA-14.6", "BA-14.11")
@pytest.mark.parametrize("row", ["E23", "E25"])
def test_multi_device_error_rows(row: str) -> None:
    """The TRIGGERS entries of tests/test_errors.py that need several devices."""
    from tests.test_errors import MULTI_DEVICE, error_table

    assert row in MULTI_DEVICE
    type_name, prefix = error_table()[row]
    with pytest.raises(ValueError) as info:
        _error_trigger(row)(batchapply)
    assert type(info.value).__name__ == type_name and str(info.value).startswith(prefix)


@pytest.mark.spec("BA-13.9", "BA-14.11")
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_chunking_under_jit_with_auto_axes_is_exact(layout: str) -> None:
    """Under jit, Auto-axis tracers hide their sharding: C-order chunks, exact values (BA-14.11)."""
    leading, _ = LAYOUTS[layout]
    m = mesh(AxisType.Auto)
    data = RNG.normal(size=(T, B, F)).astype(np.float32)
    with jax.set_mesh(m):
        x = put(data, m, leading)
        out = jax.jit(batchapply.BatchApply(lambda r: r * 2 + 1, chunk_size=24))(x)
    np.testing.assert_array_equal(np.asarray(out), data * 2 + 1)


# Chunking on sharded inputs (SPEC BA-14.9 to BA-14.11).
CHUNK = (
    24  # global rows per call of f: 3 local rows of each of the 8 shards; 16 local rows -> 5 chunks + 1 row
)


def tagged(rows: Any) -> Any:
    """Row-independent, but each output row carries its position in the chunk f saw."""
    return mlp(rows) + jnp.arange(rows.shape[0], dtype=rows.dtype)[:, None]


def tagged_numpy(rows: np.ndarray) -> np.ndarray:
    return mlp_numpy(rows) + np.arange(rows.shape[0], dtype=rows.dtype)[:, None]


@pytest.mark.spec("BA-14.9", "BA-14.10", "BA-13.4")
@pytest.mark.parametrize("mode", ["jit", "eager"])
@pytest.mark.parametrize("axes", list(AXIS_TYPES))
@pytest.mark.parametrize("layout", ["T,B@xy", "T@x,B@y"])
def test_chunked_shard_major_stays_local(layout: str, axes: str, mode: str) -> None:
    leading_spec, counts = LAYOUTS[layout]
    m = mesh(AXIS_TYPES[axes])
    data = RNG.normal(size=(T, B, F)).astype(np.float32)
    # Under jit, Auto-axis tracers hide their sharding (E22): pass the counts there.
    order: Any = counts if (axes, mode) == ("auto", "jit") else "shard_major"
    apply = batchapply.BatchApply(tagged, row_order=order, chunk_size=CHUNK)
    with jax.set_mesh(m):
        x = put(data, m, leading_spec)
        if mode == "jit":
            compiled = jax.jit(apply).lower(x).compile()
            assert count_collectives(compiled) == {}, compiled.as_text()
            got = jax.jit(apply)(x)
        else:
            got = apply(x)
    assert got.sharding.is_equivalent_to(x.sharding, 3), (got.sharding, x.sharding)
    want = batchapply_reference.BatchApply(tagged_numpy, row_order=counts, chunk_size=CHUNK)(data)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-14.10", "BA-13.9")
@pytest.mark.parametrize("axes", list(AXIS_TYPES))
@pytest.mark.parametrize("layout", ["T,B@xy", "T@x,B@y"])
def test_chunked_temp_memory_per_device_follows_the_chunk(layout: str, axes: str) -> None:
    # 2^20 rows of 4 features; f's hidden layer (256 wide) dominates the temporaries.
    leading_spec, counts = LAYOUTS[layout]
    m = mesh(AXIS_TYPES[axes])
    w1, w2 = jnp.ones((F, 256)), jnp.ones((256, F))
    order: Any = counts if axes == "auto" else "shard_major"
    temp = {}
    with jax.set_mesh(m):
        x = jax.ShapeDtypeStruct(
            (8, 2**17, F), jnp.float32, sharding=NamedSharding(m, P(*leading_spec, None))
        )
        for chunk_size in (None, 4096):
            apply = batchapply.BatchApply(
                lambda r: jnp.tanh(r @ w1) @ w2, row_order=order, chunk_size=chunk_size
            )
            compiled = jax.jit(apply).lower(x).compile()
            assert count_collectives(compiled) == {}
            assert compiled.output_shardings.is_equivalent_to(x.sharding, 3)
            memory = compiled.memory_analysis()
            assert memory is not None, "this backend reports no memory analysis"
            temp[chunk_size] = memory.temp_size_in_bytes
    assert temp[None] >= 50 * temp[4096], temp


@pytest.mark.spec("BA-14.11", "BA-10.2")
@pytest.mark.parametrize("axes", list(AXIS_TYPES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_c_order_chunks_of_a_sharded_batch_raise(layout: str, axes: str) -> None:
    leading_spec, counts = LAYOUTS[layout]
    m = mesh(AXIS_TYPES[axes])
    calls: list[int] = []

    def f(r: Any) -> Any:
        calls.append(1)
        return r

    with jax.set_mesh(m):
        x = put(np.zeros((T, B, F), np.float32), m, leading_spec)
        wraps = [("eager", lambda g: g)] + ([("jit", jax.jit)] if axes == "explicit" else [])
        for _, wrap in wraps:  # under jit, Auto-axis tracers hide their sharding (BA-14.11)
            with pytest.raises(ValueError) as info:
                wrap(batchapply.BatchApply(f, chunk_size=CHUNK))(x)
            message = str(info.value)
            assert message.startswith(
                "BatchApply: chunk_size on a sharded batch needs row_order: args[0] is "
            ), message
            assert f"shard counts {counts}" in message and "row_order='shard_major'" in message
        # N <= chunk_size: one call, no chunk to cut (BA-13.2), the C order as without chunk_size.
        if axes == "auto" or counts[1] == 1:
            batchapply.BatchApply(f, chunk_size=T * B)(x)
    assert calls == ([1] if axes == "auto" or counts[1] == 1 else [])


@pytest.mark.spec("BA-14.6", "BA-10.1")
@pytest.mark.parametrize("options", [{}, {"chunk_size": 8}], ids=["unchunked", "chunked"])
def test_eager_output_whose_split_would_move_rows_raises_e23(options: dict[str, Any]) -> None:
    # f reshards its 24 output rows over the 8 devices (3 each); split into (6, 4) in C order,
    # device 1's rows 3 to 5 straddle two rows of T. Eager calls used to let jax's own
    # ShardingTypeError escape the fused split (the mutation run's `raise _NotLocal -> pass`
    # survivor led to it); a repeated signature takes the steady-state path, so call twice.
    m = mesh(AxisType.Explicit)
    with jax.set_mesh(m):
        x = put(np.zeros((6, 4, F), np.float32), m, P(None, None))
        apply = batchapply.BatchApply(lambda r: jax.sharding.reshard(r, P(("x", "y"), None)), **options)
        for _ in range(2):
            with pytest.raises(ValueError, match=r"^BatchApply: this row order needs communication: output "):
                apply(x)


@pytest.mark.spec("BA-3.2", "BA-14.11")
def test_leading_shapes_are_checked_before_the_chunks_shardings() -> None:
    # E9 (the leaves disagree on their leading shape) comes before E25 (C-order chunks of a
    # sharded leaf), so the error names the real mistake (kills the deletion of the early E9
    # check in BatchApply.__call__, which let E25 through first).
    m = mesh(AxisType.Explicit)
    with jax.set_mesh(m):
        a = put(np.zeros((T, B, F), np.float32), m, P(None, None))
        b = put(np.zeros((T, B // 2, F), np.float32), m, P("x", "y"))
        with pytest.raises(ValueError, match=r"^BatchApply: inputs disagree on their leading shape"):
            batchapply.BatchApply(lambda p, q: p, chunk_size=8)(a, b)


def _kit_checks() -> list[str]:
    from batchapply_conformance._sharding import sharding_checks

    return [check.name for check in sharding_checks()]


@pytest.mark.spec("BA-14.3", "BA-14.4", "BA-14.5", "BA-14.6", "BA-14.7", "BA-14.8", "BA-14.9", "BA-14.10")
@pytest.mark.parametrize("name", _kit_checks())
def test_the_kits_section_14_checks_pass_on_batchapply(name: str) -> None:
    """The conformance kit's own checks of section 14, on batchapply, here on 8 devices: what
    the kit asks of any target (every layout of a 2 x 4 mesh, abstract meshes), we ask of ours."""
    from batchapply_conformance._checks import Outcome, Target
    from batchapply_conformance._sharding import sharding_checks

    (check,) = [c for c in sharding_checks() if c.name == name]
    found = check.run(Target.load("batchapply:BatchApply"))
    outcomes = found if isinstance(found, list) else [found]
    assert [o.status for o in outcomes] == ["pass"], [o.detail for o in outcomes if isinstance(o, Outcome)]
