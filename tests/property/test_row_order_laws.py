"""Properties of the shard-major order (SPEC BA-14.2, BA-14.3), in both packages.

Expected rows come from np.unravel_index over (s_1..s_n, m_1..m_n), written here from
the SPEC text; neither package's code is used to compute them.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given
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
