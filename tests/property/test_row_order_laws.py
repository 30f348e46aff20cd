"""Properties of the shard-major order (SPEC BA-14.2, BA-14.3), in both packages.

Expected rows come from np.unravel_index over (s_1..s_n, m_1..m_n), written here from
the SPEC text; neither package's code is used to compute them.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from comparisons import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import batchapply
import batchapply_reference

LIBS = [batchapply, batchapply_reference]


@st.composite
def leading_and_counts(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A leading shape of 1 to 4 dims and shard counts that divide it."""
    n = draw(st.integers(1, 4), label="num_dims")
    counts = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n), label="counts"))
    local = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n), label="local sizes")
    return tuple(s * m for s, m in zip(counts, local, strict=True)), counts


def expected_rows(leading: tuple[int, ...], counts: tuple[int, ...]) -> list[tuple[int, ...]]:
    n = len(leading)
    local = [d // s for d, s in zip(leading, counts, strict=True)]
    rows = []
    for r in range(int(np.prod(leading))):
        parts = np.unravel_index(r, counts + tuple(local))
        rows.append(tuple(int(parts[i]) * local[i] + int(parts[n + i]) for i in range(n)))
    return rows


@pytest.mark.spec("BA-14.2")
@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@given(case=leading_and_counts(), trailing=st.sampled_from([(), (2,), (1, 3)]))
def test_rows_follow_the_formula_and_split_restores_them(
    lib: types.ModuleType, case: tuple[tuple[int, ...], tuple[int, ...]], trailing: tuple[int, ...]
) -> None:
    leading, counts = case
    x = np.arange(int(np.prod(leading + trailing)), dtype=np.int32).reshape(leading + trailing)
    seen: list[np.ndarray] = []

    def f(rows: np.ndarray) -> np.ndarray:
        seen.append(np.asarray(rows))
        return rows

    out = lib.BatchApply(f, num_dims=len(leading), row_order=counts)(x)
    want = [x[index] for index in expected_rows(leading, counts)]
    assert seen[0].shape == (len(want),) + trailing
    for got_row, want_row in zip(seen[0], want, strict=True):
        np.testing.assert_array_equal(got_row, want_row)
    np.testing.assert_array_equal(np.asarray(out), x)


@pytest.mark.spec("BA-14.2", "BA-14.3")
@given(case=leading_and_counts())
def test_implementation_agrees_with_the_reference_on_a_row_mixing_f(
    case: tuple[tuple[int, ...], tuple[int, ...]],
) -> None:
    leading, counts = case
    x = np.arange(int(np.prod(leading)) * 2, dtype=np.int64).reshape(leading + (2,))
    mask = (x[..., :1] % 3).astype(np.int64)

    def f(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:  # position-dependent: a reversed cumsum
        return np.cumsum((rows * weights)[::-1], axis=0)

    got = batchapply.BatchApply(f, num_dims=len(leading), row_order=counts)(x, mask)
    want = batchapply_reference.BatchApply(f, num_dims=len(leading), row_order=counts)(x, mask)
    np.testing.assert_array_equal(np.asarray(got), want)


@st.composite
def chunked_case(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Leading shape, shard counts, and a chunk size that is a multiple of their product."""
    leading, counts = draw(leading_and_counts())
    return leading, counts, int(np.prod(counts)) * draw(st.integers(1, 4), label="rows per shard per chunk")


def position_in_chunk(m: int, size: int, counts: tuple[int, ...], c: int) -> int:
    """Where merged row ``m`` sits in its chunk, from BA-14.9's text (not from either package).

    Row m is local row j = m % M of block k = m // M; its chunk takes p = c / S rows of every
    block (fewer in the last chunk), block after block.
    """
    if size <= c:
        return m  # BA-13.2: one call with every row
    shards = int(np.prod(counts))
    block, per_shard = size // shards, c // shards
    k, j = divmod(m, block)
    chunk_start = j - j % per_shard
    width = min(per_shard, block - chunk_start)  # the last chunk may be narrower
    return k * width + (j - chunk_start)


@pytest.mark.spec("BA-14.9", "BA-13.4", "BA-13.5")
@pytest.mark.parametrize("kind", ["batchapply-numpy", "reference"])
@given(case=chunked_case())
def test_local_chunks_take_the_same_rows_of_every_shard(
    kind: str, case: tuple[tuple[int, ...], tuple[int, ...], int]
) -> None:
    check_local_chunks(kind, case)


@pytest.mark.spec("BA-14.9", "BA-13.4", "BA-13.5")
@settings(max_examples=examples(0.1))  # eager jax: every chunk shape compiles (~1 s an example)
@given(case=chunked_case())
def test_local_chunks_of_jax_inputs_take_the_same_rows_of_every_shard(
    case: tuple[tuple[int, ...], tuple[int, ...], int],
) -> None:
    check_local_chunks("batchapply-jax", case)


def check_local_chunks(kind: str, case: tuple[tuple[int, ...], tuple[int, ...], int]) -> None:
    """Every chunk of ``kind``'s call has each row at the position BA-14.9 puts it."""
    import jax.numpy as jnp

    leading, counts, c = case
    size = int(np.prod(leading))
    lib, xp = {
        "batchapply-numpy": (batchapply, np),
        "batchapply-jax": (batchapply, jnp),
        "reference": (batchapply_reference, np),
    }[kind]
    x = np.arange(size, dtype=np.int32).reshape(leading + (1,))

    def f(rows: np.ndarray) -> np.ndarray:  # each row tagged with its position in the chunk
        return rows * 1000 + xp.arange(rows.shape[0], dtype=np.int32)[:, None]

    got = np.asarray(lib.BatchApply(f, num_dims=len(leading), row_order=counts, chunk_size=c)(xp.asarray(x)))
    want = np.empty_like(x)
    for m, index in enumerate(expected_rows(leading, counts)):
        want[index] = x[index] * 1000 + position_in_chunk(m, size, counts, c)
    np.testing.assert_array_equal(got, want)


@pytest.mark.spec("BA-14.9")
@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@given(case=leading_and_counts(), extra=st.integers(1, 5))
def test_chunk_size_must_be_a_multiple_of_the_shards_whatever_n_is(
    lib: types.ModuleType, case: tuple[tuple[int, ...], tuple[int, ...]], extra: int
) -> None:
    leading, counts = case
    shards = int(np.prod(counts))
    if shards == 1:
        return  # every chunk_size is a multiple of 1
    c = shards * extra + 1 + extra % (shards - 1)  # never a multiple of shards
    calls: list[int] = []

    def f(rows: np.ndarray) -> np.ndarray:
        calls.append(1)
        return rows

    apply = lib.BatchApply(f, num_dims=len(leading), row_order=counts, chunk_size=c)
    with pytest.raises(ValueError, match=r"^BatchApply: `chunk_size` must be a multiple of the shard count"):
        apply(np.zeros(leading + (1,), np.int32))
    assert calls == []
