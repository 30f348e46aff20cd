"""Property: chunked calls (SPEC section 13) agree across packages and with a per-chunk oracle."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import batchapply
import batchapply_reference


def row_mixing(x: Any) -> Any:
    """Each row becomes the running sum of the rows before it in its batch (exact on ints)."""
    return x.cumsum(axis=0) * 2 + 1


def per_chunk_oracle(x: np.ndarray, num_dims: int, chunk_size: int) -> np.ndarray:
    """BA-13.2, BA-13.3, BA-13.5 written out: f on consecutive slices of the merged rows."""
    merged = x.reshape((int(np.prod(x.shape[:num_dims])),) + x.shape[num_dims:])
    size = merged.shape[0]
    bounds = [(0, size)] if size <= chunk_size else [(a, a + chunk_size) for a in range(0, size, chunk_size)]
    out = np.concatenate([row_mixing(merged[a:b]) for a, b in bounds])
    return out.reshape(x.shape)


cases = st.tuples(
    hnp.array_shapes(min_dims=2, max_dims=4, min_side=0, max_side=5),
    st.integers(1, 3),
    st.integers(1, 40),
)


@pytest.mark.spec("BA-13.3", "BA-13.5")
@given(case=cases)
def test_numpy_chunking_matches_the_oracle_in_both_packages(case: tuple[tuple[int, ...], int, int]) -> None:
    shape, num_dims, chunk_size = case
    num_dims = min(num_dims, len(shape) - 1)
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    want = per_chunk_oracle(x, num_dims, chunk_size)
    for lib in (batchapply, batchapply_reference):
        got = lib.BatchApply(row_mixing, num_dims, chunk_size=chunk_size)(x)
        assert type(got) is np.ndarray and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.spec("BA-13.4", "BA-13.5")
@given(case=cases)
def test_lax_map_chunking_matches_the_oracle(case: tuple[tuple[int, ...], int, int]) -> None:
    shape, num_dims, chunk_size = case
    num_dims = min(num_dims, len(shape) - 1)
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    got = batchapply.BatchApply(row_mixing, num_dims, chunk_size=chunk_size)(jnp.asarray(x))
    np.testing.assert_array_equal(got, per_chunk_oracle(x, num_dims, chunk_size))
