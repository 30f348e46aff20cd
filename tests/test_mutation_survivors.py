"""Tests for what the mutation run (``python -m tests.mutation.run``, issue 18) found untested.

Each test names the mutant it kills; the eager fast path's are in ``tests/test_eager_paths.py``.
"""

from __future__ import annotations

import re
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batchapply
from batchapply import _core


@pytest.mark.spec("BA-4.3")
def test_in_axes_prefix_error_states_both_structures(lib: types.ModuleType) -> None:
    # Kills `_structures` -> `return None` in impl/batchapply/_core.py (the message said "None").
    with pytest.raises(ValueError, match="`in_axes` is not a pytree prefix") as info:
        lib.BatchApply(lambda a: a, in_axes=({"k": 0},))(np.ones((2, 3)))
    message = str(info.value)
    if lib is batchapply:
        assert "the axes have structure PyTreeDef({'k': *}), the value has structure PyTreeDef(*)" in message
    else:
        assert "the axes are a dict, the value is a leaf" in message


@pytest.mark.spec("BA-7.5")
def test_out_axes_prefix_error_states_both_structures(lib: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="`out_axes` is not a pytree prefix") as info:
        lib.BatchApply(lambda a: a, out_axes=(0, None))(np.ones((2, 3)))
    message = str(info.value)
    if lib is batchapply:
        assert "the axes have structure PyTreeDef((*, *)), the value has structure PyTreeDef(*)" in message
    else:
        assert "the axes are a tuple, the value is a leaf" in message


@pytest.mark.spec("BA-13.7")
def test_traced_last_partial_chunk_that_disagrees_is_e17() -> None:
    # Kills deleting `last.check_agrees(...)` in BatchApply._call_mapped: under a trace the full
    # chunks go through one jax.lax.map and the last, partial chunk is called on its own; its
    # output must still be checked against chunk 0's (here: another dtype, which
    # jnp.concatenate would otherwise promote silently).
    def f(x: jax.Array) -> jax.Array:
        return x if x.shape[0] == 2 else x.astype(jnp.int32)

    apply = batchapply.BatchApply(f, chunk_size=2)
    with pytest.raises(ValueError, match="^" + re.escape(_core.CHUNK_DISAGREE_PREFIX)) as info:
        jax.jit(apply)(jnp.ones((1, 5, 3)))
    assert "chunk 2 (rows 4 to 4) returned output with dtype int32" in str(info.value)


@pytest.mark.spec("BA-9.2")
def test_split_leading_dim_rejects_a_negative_entry_that_is_not_an_int_minus_one(
    lib: types.ModuleType,
) -> None:
    # A -1.0 is no hole to infer (not an int). Since SPEC draft 3 (BA-9.2, audit G5) it is not an
    # integer entry at all, rejected before _split_shape; there `d < 0` -> `d < -1` is now an
    # equivalent mutant (integer entries only, and every -1 is a hole).
    with pytest.raises(ValueError, match="^" + re.escape("split_leading_dim: cannot split")) as info:
        lib.split_leading_dim(np.zeros((6, 2)), (-1.0, 6))
    assert "to_dim must be a tuple or list of integers" in str(info.value)


@pytest.mark.spec("BA-13.7", "BA-14.9")
def test_local_chunks_that_disagree_name_the_local_rows_of_every_shard(lib: types.ModuleType) -> None:
    # Kills `_describe_chunk` -> `return None` (the local chunks' E17 message) in the reference.
    # Leading (8,) over 2 shards, chunks of 4 rows: 2 local rows of each shard per chunk, so
    # chunk 1 holds the local rows 2 and 3 of both shards (BA-14.9's text).
    calls: list[int] = []

    def f(rows: np.ndarray) -> np.ndarray:
        calls.append(1)
        return rows if len(calls) == 1 else rows[:, :1]

    with pytest.raises(ValueError) as info:
        lib.BatchApply(f, num_dims=1, row_order=(2,), chunk_size=4)(np.arange(16).reshape(8, 2))
    assert str(info.value).startswith(
        "BatchApply: chunk outputs disagree: chunk 1 (local rows 2 to 3 of each of the 2 shards) returned "
    ), str(info.value)


@pytest.mark.spec("BA-14.4", "BA-10.1")
@pytest.mark.parametrize(("num_dims", "example"), [(1, "(8,)"), (2, "(1, 8)"), (3, "(1, 1, 8)")])
def test_invisible_sharding_error_shows_counts_of_the_right_length(num_dims: int, example: str) -> None:
    # Kills the constants of E22's example (impl/batchapply/_errors.py, `(1,) * (n - 1) + (8,)`):
    # the counts it suggests must be a valid row_order for this num_dims (BA-14.1: one per dim).
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    apply = batchapply.BatchApply(lambda rows: rows, num_dims=num_dims, row_order="shard_major")
    mesh = AbstractMesh((8,), ("x",), axis_types=(AxisType.Auto,))  # an Auto axis hides the counts
    x = jax.ShapeDtypeStruct((2, 3, 4, 1), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    with pytest.raises(
        ValueError, match=r"^BatchApply: row_order='shard_major' cannot see the sharding of args"
    ) as info:
        jax.jit(apply).trace(x)
    assert f"e.g. row_order={example} for a last leading dim split over 8 devices" in str(info.value)


@pytest.mark.spec("BA-1.3", "BA-10.1")
def test_unsortable_keys_after_array_leaves_name_their_dict(lib: types.ModuleType) -> None:
    # Kills `_unsortable_dict`'s leaf test mutants in impl/batchapply/_core.py (`len(children) == 0`,
    # `children[0][-1] == ()`): the walk passes array leaves before it reaches the dict (E27).
    x = np.ones((2, 3))
    with pytest.raises(
        TypeError, match=r"^BatchApply: dict keys cannot be sorted: the dict at args\[1\]\[1\] "
    ):
        lib.BatchApply(lambda *a: a[0])(x, [x, {1: x, "a": x}])


@pytest.mark.spec("BA-13.2")
def test_chunk_size_equal_to_the_rows_traces_the_unchunked_program() -> None:
    # Kills `plan.size <= c` -> `plan.size < c` in impl/batchapply/_plan.py (_plan_chunks): with
    # exactly `chunk_size` merged rows, f is called once on the merged inputs, as without
    # chunk_size, so the traced program is the unchunked one (no jax.lax.map of one chunk).
    def f(x: jax.Array) -> jax.Array:
        return jnp.tanh(x) * 2

    x = jnp.ones((2, 3, 4))
    chunked = jax.make_jaxpr(batchapply.BatchApply(f, chunk_size=6))(x)
    unchunked = jax.make_jaxpr(batchapply.BatchApply(f))(x)
    assert str(chunked) == str(unchunked)


@pytest.mark.spec("BA-13.4", "BA-14.4")
@pytest.mark.parametrize("row_order", ["C", "shard_major", (1, 1)], ids=str)
def test_counts_of_one_chunk_lazily_as_the_c_order_does(
    monkeypatch: pytest.MonkeyPatch, row_order: Any
) -> None:
    """Counts that are all 1 (an unsharded jax.Array with "shard_major", or 1s given) are the C
    order: eager chunks take their rows from the input itself, which is never merged whole
    (BA-13.11's peak memory). Kills ``call_counts``' ``all(s == 1 ...) -> all(s == 0 ...)``
    (the full _sharding.py run, 2026-12-07), which merged the whole input first."""
    from batchapply import _exec_fused, _sharding

    merged: list[str] = []
    for module, name in ((_sharding, "merge"), (_exec_fused, "_merge_fused")):
        program = getattr(module, name)

        def counted(*args: Any, program: Any = program, name: str = name, **kwargs: Any) -> Any:
            merged.append(name)
            return program(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    x = jnp.arange(96.0).reshape(4, 6, 4)
    out = batchapply.BatchApply(lambda rows: rows * 2, chunk_size=5, row_order=row_order)(x)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x) * 2)
    assert merged == []


@pytest.mark.spec("BA-5.4", "BA-8.1")
@pytest.mark.parametrize("row_order", ["C", "shard_major", (1, 1)])
def test_a_traced_jax_array_without_rows_on_one_device(row_order: Any) -> None:
    # jax.jit of a call on a jax.Array with N = 0: the tracer's sharding has an empty mesh, so
    # _exec_reshape._without_rows must not reshard it. Kills its `and` -> `or` (the core pool's
    # mutation run, 2026-12-07: "Reshard should only be used with ... a non-empty mesh").
    out = jax.jit(batchapply.BatchApply(lambda r: r * 2, row_order=row_order))(jnp.zeros((0, 3, 2)))
    assert out.shape == (0, 3, 2)


@pytest.mark.spec("BA-1.5", "BA-1.7")
def test_e27_gives_back_exactly_the_recursion_budget_jax_took() -> None:
    # jaxlib's flatten, failing to sort a dict's keys, keeps one level of the recursion budget per
    # container above the dict; _trees gives it back. Off by one either way, 50 errors move the
    # headroom by 50. Kills the core pool's survivors in _trees.py (2026-12-07): `above` and the
    # axes' 0 made -1 or flipped, `roots[0] is tree` negated, `[0]` -> `[-1]`, `leaked == 1` negated.
    from batchapply import _trees

    x = np.zeros((2, 3))
    unsortable = {1: x, "a": x}
    calls = [
        lambda: batchapply.BatchApply(lambda *a: a)(unsortable),  # a root itself
        lambda: batchapply.BatchApply(lambda *a: a)([[unsortable]], x),  # two containers above it
        lambda: batchapply.BatchApply(lambda *a, **k: a)(x, k=[unsortable]),  # in the keywords
        lambda: batchapply.BatchApply(lambda y: {1: y, "a": y})(x),  # in f's output
        lambda: batchapply.BatchApply(lambda y: y, in_axes=({1: 0, "a": 0},)),  # in in_axes
    ]
    before = _trees._recursion_headroom()
    for call in calls:
        for _ in range(50):
            with pytest.raises(TypeError, match=r"^BatchApply: dict keys cannot be sorted"):
                call()
        assert _trees._recursion_headroom() == before
