"""SPEC section 14 on one device: the `row_order` option and the shard-major order, in both packages.

Sharded inputs (several devices) are tested in tests/sharding/, run by tests/test_sharding.py.
"""

from __future__ import annotations

import re
import types
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def recording() -> tuple[list[Any], Any]:
    """A function that records its first argument and returns it."""
    seen: list[Any] = []

    def f(x: Any, *rest: Any) -> Any:
        seen.append(np.asarray(x))
        return x

    return seen, f


def index_grid(leading: tuple[int, ...]) -> np.ndarray:
    """An array whose row at leading index j is j itself: shape leading + (len(leading),)."""
    return np.stack(np.meshgrid(*(np.arange(d) for d in leading), indexing="ij"), axis=-1).astype(np.int32)


@pytest.mark.spec("BA-14.1")
@pytest.mark.parametrize(
    "row_order", ["C", "shard_major", (1, 2), [2, 1], (np.int64(1), np.uint8(2))], ids=repr
)
def test_row_order_values_that_are_accepted(lib: types.ModuleType, row_order: Any) -> None:
    out = lib.BatchApply(lambda x: x * 2, row_order=row_order)(np.ones((2, 4, 3)))
    np.testing.assert_array_equal(out, np.full((2, 4, 3), 2.0))


@pytest.mark.spec("BA-14.1", "BA-10.1")
@pytest.mark.parametrize(
    "row_order",
    ["F", "c", None, 2, (1,), (1, 2, 3), (0, 2), (-1, 1), (1.0, 2), (True, 2), ("1", 2), {"a": 1}],
    ids=repr,
)
def test_other_row_orders_are_rejected_at_construction(lib: types.ModuleType, row_order: Any) -> None:
    with pytest.raises(ValueError, match=r"^BatchApply: `row_order` must be"):
        lib.BatchApply(lambda x: x, row_order=row_order)


@pytest.mark.spec("BA-14.2")
def test_shard_major_rows_of_the_spec_example(lib: types.ModuleType) -> None:
    # SPEC's example: leading shape (2, 4), counts (1, 2): the first half of B comes first.
    seen, f = recording()
    lib.BatchApply(f, row_order=(1, 2))(index_grid((2, 4)))
    expected = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    assert seen[0].tolist() == [list(e) for e in expected]


@pytest.mark.spec("BA-14.2")
@pytest.mark.parametrize(
    ("leading", "counts"),
    [
        ((4, 6), (2, 3)),
        ((2, 3, 4), (1, 3, 2)),
        ((6,), (3,)),
        ((3, 4), (3, 1)),
        ((2, 0), (2, 1)),
        ((4, 6), (2, 2)),
    ],
    ids=str,
)
def test_shard_major_rows_and_split_follow_the_formula(
    lib: types.ModuleType, leading: tuple[int, ...], counts: tuple[int, ...]
) -> None:
    # Expected rows written out with np.unravel_index over (s_1..s_n, m_1..m_n), as BA-14.2 reads.
    n = len(leading)
    local = [d // s for d, s in zip(leading, counts, strict=True)]
    expected = []
    for r in range(int(np.prod(leading))):
        ks = np.unravel_index(r, tuple(counts) + tuple(local))
        expected.append([int(ks[i]) * local[i] + int(ks[n + i]) for i in range(n)])
    seen, f = recording()
    x = index_grid(leading)
    out = lib.BatchApply(f, num_dims=n, row_order=counts)(x)
    assert seen[0].tolist() == expected
    np.testing.assert_array_equal(out, x)  # the split is the inverse pairing


@pytest.mark.spec("BA-14.2", "BA-14.3")
def test_row_mixing_f_sees_the_shard_major_order(lib: types.ModuleType) -> None:
    # A cumulative sum over rows depends on the order: this is what README warns about.
    x = np.arange(8, dtype=np.int64).reshape(2, 4, 1)
    out = lib.BatchApply(lambda y: np.cumsum(y, axis=0), row_order=(1, 2))(x)
    # rows in order: x[0,0] x[0,1] x[1,0] x[1,1] x[0,2] x[0,3] x[1,2] x[1,3] = 0 1 4 5 2 3 6 7
    running = {(0, 0): 0, (0, 1): 1, (1, 0): 5, (1, 1): 10, (0, 2): 12, (0, 3): 15, (1, 2): 21, (1, 3): 28}
    expected = np.zeros((2, 4, 1), dtype=np.int64)
    for j, v in running.items():
        expected[j] = v
    np.testing.assert_array_equal(out, expected)
    c_order = lib.BatchApply(lambda y: np.cumsum(y, axis=0))(x)
    np.testing.assert_array_equal(c_order, np.cumsum(x.reshape(8, 1), axis=0).reshape(2, 4, 1))


@pytest.mark.spec("BA-14.2")
@pytest.mark.parametrize("counts", [(1, 1), (2, 1)], ids=str)
def test_counts_of_one_or_only_on_the_first_dim_give_the_c_order(
    lib: types.ModuleType, counts: tuple[int, int]
) -> None:
    seen, f = recording()
    x = index_grid((4, 3))
    lib.BatchApply(f, row_order=counts)(x)
    assert seen[0].tolist() == [[t, b] for t in range(4) for b in range(3)]


@pytest.mark.spec("BA-14.3")
def test_every_leaf_and_output_uses_the_same_order(lib: types.ModuleType) -> None:
    x = index_grid((2, 4))
    y = index_grid((2, 4)) * 10
    seen: list[Any] = []

    def f(a: Any, b: Any) -> Any:
        seen.append((np.asarray(a), np.asarray(b)))
        return {"a": a, "diff": b - 10 * a}

    out = lib.BatchApply(f, row_order=(1, 2))(x, y)
    np.testing.assert_array_equal(seen[0][1], 10 * seen[0][0])
    np.testing.assert_array_equal(out["a"], x)
    np.testing.assert_array_equal(out["diff"], np.zeros_like(x))


@pytest.mark.spec("BA-14.3", "BA-10.1")
def test_counts_that_do_not_divide_raise_before_f(lib: types.ModuleType) -> None:
    seen, f = recording()
    with pytest.raises(ValueError, match=r"^BatchApply: `row_order` shard counts do not divide.*\(2, 3\)"):
        lib.BatchApply(f, row_order=(1, 2))(np.zeros((2, 3, 4)))
    assert seen == []


@pytest.mark.spec("BA-14.4")
def test_shard_major_on_numpy_is_the_c_order(lib: types.ModuleType) -> None:
    seen, f = recording()
    x = index_grid((3, 4))
    out = lib.BatchApply(f, row_order="shard_major")(x)
    assert seen[0].tolist() == [[t, b] for t in range(3) for b in range(4)]
    assert isinstance(out, np.ndarray)


@pytest.mark.spec("BA-14.4")
def test_shard_major_on_a_single_device_array_is_the_c_order(lib: types.ModuleType) -> None:
    seen, f = recording()
    x = jnp.asarray(index_grid((3, 4)))
    lib.BatchApply(f, row_order="shard_major")(x)
    assert seen[0].tolist() == [[t, b] for t in range(3) for b in range(4)]


@pytest.mark.spec("BA-14.4", "BA-8.1")
def test_shard_major_under_jit_with_an_auto_axis_refuses_to_guess() -> None:
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    calls: list[Any] = []

    def f(x: Any) -> Any:
        calls.append(x)
        return x

    apply = batchapply.BatchApply(f, row_order="shard_major")
    # An Auto axis of size 8 could shard the tracer without its type showing it (traced
    # abstractly: no 8 devices needed). With no mesh there is nothing to hide (below).
    mesh = AbstractMesh((8,), ("x",), axis_types=(AxisType.Auto,))
    hidden = jax.ShapeDtypeStruct((2, 4, 3), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    with pytest.raises(ValueError, match=r"^BatchApply: row_order='shard_major' cannot see .* args\[0\]"):
        jax.jit(apply).trace(hidden)
    assert calls == []
    x = jnp.asarray(index_grid((2, 4)))
    np.testing.assert_array_equal(jax.jit(apply)(x), x)  # no mesh: the counts are all 1
    # With the counts given, jit works and matches the eager call.
    counted = batchapply.BatchApply(lambda x: jnp.cumsum(x, axis=0), row_order=(1, 2))
    x = jnp.asarray(index_grid((2, 4)))
    np.testing.assert_array_equal(jax.jit(counted)(x), counted(x))


@pytest.mark.spec("BA-14.2", "BA-8.2")
def test_grad_through_the_shard_major_order_matches_the_c_order() -> None:
    import batchapply

    w = jnp.arange(6.0).reshape(3, 2) / 10
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32))

    def loss(x: Any, row_order: Any) -> Any:
        return jnp.sum(batchapply.BatchApply(lambda r: jnp.tanh(r @ w), row_order=row_order)(x) ** 2)

    np.testing.assert_allclose(jax.grad(loss)(x, (1, 2)), jax.grad(loss)(x, "C"), rtol=1e-6)


@pytest.mark.spec("BA-14.4")
@pytest.mark.parametrize(
    ("sizes", "types", "hidden"),
    [
        ((8,), ("Auto",), "'x' (Auto, size 8)"),
        ((1,), ("Auto",), None),  # an axis of size 1 shards nothing
        ((2,), ("Auto",), "'x' (Auto, size 2)"),  # the smallest that can (kills `> 1 -> > 2`)
        ((8,), ("Explicit",), None),  # Explicit axes show in the type: unsharded here
        ((2, 4), ("Explicit", "Auto"), "'y' (Auto, size 4)"),
        ((4, 1), ("Auto", "Auto"), "'x' (Auto, size 4)"),
    ],
)
def test_a_tracer_hides_its_counts_only_behind_an_auto_axis_above_size_one(
    sizes: tuple[int, ...], types: tuple[str, ...], hidden: str | None
) -> None:
    # Traced abstractly (no devices needed): which mesh axes could shard the tracer unseen (E22).
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    names = ("x", "y")[: len(sizes)]
    mesh = AbstractMesh(sizes, names, axis_types=tuple(getattr(AxisType, t) for t in types))
    x = jax.ShapeDtypeStruct((2, 4, 3), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    apply = jax.jit(batchapply.BatchApply(lambda r: r, row_order="shard_major"))
    if hidden is None:
        assert apply.trace(x).out_info.shape == (2, 4, 3)
        return
    with pytest.raises(ValueError, match=r"^BatchApply: row_order='shard_major' cannot see") as info:
        apply.trace(x)
    assert f"the mesh axes {hidden} can shard" in str(info.value)


@pytest.mark.spec("BA-14.4", "BA-14.9")
@pytest.mark.parametrize(
    ("sizes", "names", "entry"),
    [((8,), ("x",), "x"), ((8,), ("batch",), "batch"), ((2, 4), ("x", "y"), ("x", "y"))],
    ids=["one-letter-axis", "named-axis", "two-axes"],
)
def test_a_tracer_on_explicit_axes_shows_its_counts(
    sizes: tuple[int, ...], names: tuple[str, ...], entry: Any
) -> None:
    # Traced abstractly: B is cut over Explicit axes of 8 devices in all, which the tracer's type
    # shows, so the call's counts are (1, 8) and a chunk_size of 4 is not a multiple of them (E24).
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    mesh = AbstractMesh(sizes, names, axis_types=(AxisType.Explicit,) * len(sizes))
    x = jax.ShapeDtypeStruct((2, 8, 3), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec(None, entry)))
    apply = jax.jit(batchapply.BatchApply(lambda r: r, row_order="shard_major", chunk_size=4))
    e24 = r"^BatchApply: `chunk_size` must be a multiple of the shard count 8 "
    with pytest.raises(ValueError, match=e24):
        apply.trace(x)


@pytest.mark.spec("BA-14.6")
@pytest.mark.parametrize("row_order", ["C", (2, 1), (1, 2)])
def test_a_tracer_cut_on_every_leading_dim_is_not_merged_in_another_order(row_order: Any) -> None:
    # Traced abstractly: (4, 4) rows cut (2, 2) over Explicit axes; in any order but shard_major
    # some device's rows are not one block of the merged batch, so E23, not a silent reshard.
    # Kills `all(c == 1 ...) -> all(c == 2 ...)` in impl/batchapply/_sharding.py's is_local
    # (mutation run of 2026-12-07: jax then merged the rows over ('a', 'b') by communicating).
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply
    from batchapply import _sharding

    mesh = AbstractMesh((2, 2), ("a", "b"), axis_types=(AxisType.Explicit,) * 2)
    x = jax.ShapeDtypeStruct((4, 4, 3), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec("a", "b")))
    with pytest.raises(ValueError, match=re.escape(_sharding.COMMUNICATION_PREFIX)):
        jax.jit(batchapply.BatchApply(lambda r: r * 2, row_order=row_order)).trace(x)
    shard_major = jax.jit(batchapply.BatchApply(lambda r: r * 2, row_order="shard_major")).trace(x)
    assert shard_major.out_info.shape == (4, 4, 3)


@pytest.mark.spec("BA-14.2", "BA-14.6")
@pytest.mark.parametrize("row_order", ["C", (2, 1), (4, 1)])
def test_counts_on_the_first_dim_only_are_the_c_order_of_a_leaf_cut_there(row_order: Any) -> None:
    # Traced abstractly: rows cut 2 ways on the first leading dim only (Explicit axis). Counts
    # above 1 on the first dim only are the C order (BA-14.2), which keeps each device's rows one
    # block: no E23, whatever the first count (written for is_local's `call[1:] -> call[0:]`,
    # which turned out equivalent: the plan passes such counts on as the C order).
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    mesh = AbstractMesh((2,), ("a",), axis_types=(AxisType.Explicit,))
    x = jax.ShapeDtypeStruct((8, 2, 3), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec("a")))
    traced = jax.jit(batchapply.BatchApply(lambda r: r * 2, row_order=row_order)).trace(x)
    assert traced.out_info.shape == (8, 2, 3)


@pytest.mark.spec("BA-14.4", "BA-14.9")
def test_shard_major_counts_of_two_are_counts() -> None:
    # Traced abstractly: the last leading dim cut 2 ways over an Explicit axis gives counts (1, 2),
    # so a chunk_size of 3 is not a multiple of them (E24). Kills `any(s > 1 ...) -> any(s > 2 ...)`
    # in call_counts (mutation run of 2026-12-07: counts of 2 were read as the C order).
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    mesh = AbstractMesh((2,), ("a",), axis_types=(AxisType.Explicit,))
    x = jax.ShapeDtypeStruct((2, 4, 3), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec(None, "a")))
    apply = jax.jit(batchapply.BatchApply(lambda r: r, row_order="shard_major", chunk_size=3))
    with pytest.raises(
        ValueError, match=r"^BatchApply: `chunk_size` must be a multiple of the shard count 2 "
    ):
        apply.trace(x)


@pytest.mark.spec("BA-14.4", "BA-14.9")
def test_a_zero_size_leading_dim_is_one_shard(lib: types.ModuleType) -> None:
    # A jax.Array with no rows has shard shape 0 there: one piece, not 0 // 0 (audit finding A7),
    # so shard_major reads counts of 1 and any chunk_size is a multiple of them (no E24). Kills
    # `d // s if s else 1 -> else 2` in impl/batchapply/_sharding.py's leaf_counts.
    out = lib.BatchApply(lambda r: r * 2, row_order="shard_major", chunk_size=1)(jnp.zeros((0, 3, 2)))
    assert out.shape == (0, 3, 2)


@pytest.mark.spec("BA-14.12", "BA-14.6")
@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("row_order", ["C", "shard_major"])
def test_a_zero_size_leading_dim_over_an_explicit_axis_has_no_rows_to_move(
    row_order: Literal["C", "shard_major"], chunk_size: int | None
) -> None:
    # Traced abstractly: B = 0 cut over an Explicit axis. No row has a device to stay on, so the
    # count is 1 and the call gives the empty result; it used to raise E23, because jax's
    # reshape refuses that dim (the finding of the CLI's _sharding.py mutation run, 2026-12-07).
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    mesh = AbstractMesh((2,), ("b",), axis_types=(AxisType.Explicit,))
    x = jax.ShapeDtypeStruct((2, 0, 1), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec(None, "b")))
    apply = jax.jit(batchapply.BatchApply(lambda r: r * 2, row_order=row_order, chunk_size=chunk_size))
    assert apply.trace(x).out_info.shape == (2, 0, 1)


@pytest.mark.spec("BA-14.12", "BA-14.3")
def test_a_zero_size_dim_beside_a_cut_one_counts_as_one_shard() -> None:
    # Traced abstractly: T cut over an Explicit axis, B = 0 cut over another. B's count is 1
    # (BA-14.12), so the counts (2, 1) divide the leading shape (4, 0) and the call gives the
    # empty result. Kills leaf_counts' `1 if d == 0 -> 0 if d == 0` (the full _sharding.py
    # mutation run, 2026-12-07), whose count 0 divided by zero.
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    mesh = AbstractMesh((2, 2), ("a", "b"), axis_types=(AxisType.Explicit,) * 2)
    x = jax.ShapeDtypeStruct((4, 0, 1), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec("a", "b")))
    apply = jax.jit(batchapply.BatchApply(lambda r: r * 2, row_order="shard_major"))
    assert apply.trace(x).out_info.shape == (4, 0, 1)


@pytest.mark.spec("BA-14.9", "BA-14.10")
def test_local_chunks_whose_full_chunks_match_another_dim_trace() -> None:
    # Traced abstractly: B = 16 cut over 8 devices (2 local rows each, per row of T = 5: 10 local
    # rows), chunk_size 32 (4 local rows of every shard): 2 full chunks, then 2 rows. The full
    # chunks' 8 local rows equal both the shard count and the feature size. Kills stack_chunks'
    # `blocks.shape[1] -> [0]` and `-> [2]` (the full _sharding.py mutation run, 2026-12-07),
    # which left the short chunk's rows in the stack.
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    import batchapply

    mesh = AbstractMesh((8,), ("x",), axis_types=(AxisType.Explicit,))
    x = jax.ShapeDtypeStruct((5, 16, 8), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec(None, "x")))
    apply = jax.jit(batchapply.BatchApply(lambda r: r * 2, row_order="shard_major", chunk_size=32))
    assert apply.trace(x).out_info.shape == (5, 16, 8)
