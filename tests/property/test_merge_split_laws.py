"""Property: split_leading_dim undoes merge_leading_dims, in both packages (BA-9.1, BA-9.2)."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import batchapply
import batchapply_reference

shapes = hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=4)


@pytest.mark.spec("BA-9.1", "BA-9.2", "BA-5.1")
@pytest.mark.parametrize("lib", [batchapply, batchapply_reference], ids=lambda m: m.__name__)
@given(data=st.data(), shape=shapes)
def test_split_undoes_merge(lib: types.ModuleType, data: st.DataObject, shape: tuple[int, ...]) -> None:
    num_dims = data.draw(st.integers(1, len(shape)), label="num_dims")
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    merged = lib.merge_leading_dims(x, num_dims)
    assert merged.shape == (int(np.prod(shape[:num_dims])),) + shape[num_dims:]
    back = lib.split_leading_dim(merged, shape[:num_dims])
    assert back.shape == shape and back.dtype == x.dtype
    np.testing.assert_array_equal(back, x)
