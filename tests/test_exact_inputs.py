"""Inputs that must come back exactly as they went in (SPEC BA-5.6, BA-5.7): issue 11, findings 6 to 10.

Each test runs on both packages: the reference merges and splits a ``jax.Array``
with its own methods, and a masked array's data and mask alike.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

OPTIONS = [{}, {"chunk_size": 4}, {"row_order": (2, 1)}, {"row_order": (2, 1), "chunk_size": 2}]
OPTION_IDS = ["plain", "chunked", "row-order", "row-order-chunked"]


def x64_array(dtype: str) -> jax.Array:
    """A (2, 3, 2) array of ``dtype`` whose values need 64 bits, made under ``jax.enable_x64``."""
    with jax.enable_x64(True):
        values = jnp.arange(12, dtype=dtype).reshape(2, 3, 2)
        return values + (2**40 if dtype == "int64" else 1 / 3 + 2**30)


@pytest.mark.spec("BA-5.6", "BA-5.2")
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("dtype", ["int64", "float64", "complex128"])
def test_x64_arrays_outside_enable_x64_keep_their_dtype(
    lib: types.ModuleType, dtype: str, options: dict[str, Any]
) -> None:
    """Finding 6: ``2**40 + 5`` used to come back from the reference as ``5``."""
    x = x64_array(dtype)
    want = np.asarray(x)
    seen: list[Any] = []

    def f(a: jax.Array) -> jax.Array:
        seen.append(a.dtype)
        return a

    out = lib.BatchApply(f, **options)(x)
    assert isinstance(out, jax.Array) and out.dtype == dtype and set(seen) == {np.dtype(dtype)}
    np.testing.assert_array_equal(np.asarray(out), want)


@pytest.mark.spec("BA-5.6")
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_weak_type_is_kept(lib: types.ModuleType, options: dict[str, Any]) -> None:
    """Finding 7: a weak float32 plus bfloat16 is bfloat16, as in the hand-written reshape."""
    w = jax.lax.broadcast(1.5, (2, 3, 4))
    seen: list[bool] = []

    def f(a: jax.Array) -> jax.Array:
        seen.append(a.weak_type)
        return a + jnp.ones(4, jnp.bfloat16)

    out = lib.BatchApply(f, **options)(w)
    hand_written = f(w.reshape(6, 4)).reshape(2, 3, 4)
    assert seen[0] and all(seen)
    assert out.dtype == hand_written.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(hand_written, np.float32))
    assert lib.BatchApply(lambda a: a, **options)(w).weak_type


@pytest.mark.spec("BA-5.6", "BA-1.1")
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_typed_prng_keys(lib: types.ModuleType, options: dict[str, Any]) -> None:
    """Finding 8: typed key arrays are array leaves; the reference crashed converting them to NumPy."""
    keys = jax.random.split(jax.random.key(0), 6).reshape(2, 3)
    out = lib.BatchApply(lambda k: (k, jax.random.uniform(k[0], (k.shape[0],))), **options)(keys)
    assert jnp.issubdtype(out[0].dtype, jax.dtypes.prng_key) and out[0].shape == (2, 3)
    np.testing.assert_array_equal(jax.random.key_data(out[0]), jax.random.key_data(keys))
    assert out[1].shape == (2, 3)
    assert type(lib.merge_leading_dims(keys, 2)) is type(keys)
    np.testing.assert_array_equal(
        jax.random.key_data(lib.split_leading_dim(lib.merge_leading_dims(keys, 2), (3, 2))),
        jax.random.key_data(keys.reshape(3, 2)),
    )


def masked() -> np.ma.MaskedArray:
    data = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    return np.ma.MaskedArray(data, mask=data % 5 == 0, fill_value=-7)


@pytest.mark.spec("BA-5.7", "BA-7.2")
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_masked_values_are_not_computed_on(lib: types.ModuleType, options: dict[str, Any]) -> None:
    """Finding 9: the reference dropped the mask, so row sums included the masked values."""
    x = masked()
    seen: list[Any] = []

    def f(a: np.ma.MaskedArray) -> Any:
        seen.append(a)
        return a.sum(axis=1), a

    sums, same = lib.BatchApply(f, **options)(x)
    assert all(isinstance(a, np.ma.MaskedArray) for a in seen)
    assert sum(int(np.ma.getmaskarray(a).sum()) for a in seen) == int(x.mask.sum())
    np.testing.assert_array_equal(np.ma.getdata(sums), x.sum(axis=2).data)
    unmasked_row_sums = [sum(v for v in range(4 * row, 4 * row + 4) if v % 5) for row in range(6)]
    assert sums.ravel().tolist() == unmasked_row_sums  # [6, 17, 28, ...]: not [6, 22, 38, ...]
    assert isinstance(same, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(same), x.mask)


@pytest.mark.spec("BA-5.7", "BA-9.1", "BA-9.2")
def test_masked_helpers(lib: types.ModuleType) -> None:
    x = masked()
    merged = lib.merge_leading_dims(x, 2)
    assert isinstance(merged, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(merged), x.mask.reshape(6, 4))
    split = lib.split_leading_dim(merged, (2, 3))
    assert isinstance(split, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(split), x.mask)


@pytest.mark.spec("BA-5.7")
def test_masked_array_without_a_mask_keeps_none(lib: types.ModuleType) -> None:
    out = lib.BatchApply(lambda a: a)(np.ma.MaskedArray(np.zeros((2, 3, 4))))
    assert isinstance(out, np.ma.MaskedArray) and not np.ma.getmaskarray(out).any()


@pytest.mark.spec("BA-5.6", "BA-5.3")
def test_committed_device_is_kept() -> None:
    """Finding 10: an array committed to cpu:1 came back from the reference on device 0."""
    script = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax, jax.numpy as jnp
        import batchapply, batchapply_reference
        x = jax.device_put(jnp.arange(24.0).reshape(2, 3, 4), jax.devices()[1])
        for lib in (batchapply, batchapply_reference):
            for options in ({}, {"chunk_size": 4}, {"row_order": (2, 1)}):
                seen = []
                out = lib.BatchApply(lambda a: seen.append(a.devices()) or a * 2, **options)(x)
                assert out.devices() == {jax.devices()[1]}, (lib.__name__, options, out.devices())
                assert all(d == {jax.devices()[1]} for d in seen), (lib.__name__, options, seen)
                assert out.committed, (lib.__name__, options)
        # Uncommitted: on the default device, or made under jax.default_device(cpu:1); a chunked
        # call (CPU chunks go through host memory) places and commits like the unchunked one.
        with jax.default_device(jax.devices()[1]):
            elsewhere = jnp.arange(24.0).reshape(2, 3, 4)
        for y in (jnp.arange(24.0).reshape(2, 3, 4), elsewhere):
            for context in (None, jax.devices()[1]):
                with jax.default_device(context):
                    want = batchapply.BatchApply(lambda a: a * 2)(y)
                    for lib in (batchapply, batchapply_reference):
                        seen = []
                        out = lib.BatchApply(lambda a: seen.append(a) or a * 2, chunk_size=4)(y)
                        placed = {(a.devices() == want.devices(), a.committed) for a in seen}
                        got = (out.devices(), out.committed, placed)
                        want_placed = (want.devices(), want.committed, {(True, want.committed)})
                        assert got == want_placed, (lib.__name__, got)
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.spec("BA-5.6", "BA-14.2")
@pytest.mark.parametrize("counts", [(1, 1), (2, 1), (1, 3), (2, 3), (2, 6)])
@pytest.mark.parametrize("chunked", [False, True])
def test_jax_rows_are_in_the_order_of_numpy_rows(
    lib: types.ModuleType, counts: tuple[int, int], chunked: bool
) -> None:
    """The reference orders a jax.Array's rows by reshape/transpose, a NumPy array's row by row: the same."""
    x = np.arange(2 * 6 * 2, dtype=np.int32).reshape(2, 6, 2)
    merged: dict[str, list[np.ndarray]] = {"numpy": [], "jax": []}

    def f(kind: str) -> Any:
        def by_position(a: Any) -> Any:
            merged[kind].append(np.asarray(a))
            return a * (np.arange(a.shape[0], dtype=np.int32)[:, None] + 1)  # row i times i + 1

        return by_position

    options = {"row_order": counts, "chunk_size": counts[0] * counts[1] if chunked else None}  # 1 row a shard
    from_numpy = lib.BatchApply(f("numpy"), **options)(x)
    from_jax = lib.BatchApply(f("jax"), **options)(jnp.asarray(x))
    assert isinstance(from_jax, jax.Array)
    np.testing.assert_array_equal(np.asarray(from_jax), from_numpy)
    np.testing.assert_array_equal(np.concatenate(merged["jax"]), np.concatenate(merged["numpy"]))
