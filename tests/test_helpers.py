"""SPEC section 9: the four helpers Haiku exposes, in both packages."""

from __future__ import annotations

import types

import numpy as np
import pytest


@pytest.mark.spec("BA-9.1")
def test_merge_leading_dims(lib: types.ModuleType) -> None:
    x = np.arange(24).reshape(2, 3, 4)
    merged = lib.merge_leading_dims(x, 2)
    assert merged.shape == (6, 4)
    np.testing.assert_array_equal(merged[4], x[1, 1])


@pytest.mark.spec("BA-9.1")
@pytest.mark.parametrize("value", [np.zeros(3), "abc", 2.0, None], ids=repr)
def test_merge_leading_dims_returns_other_leaves_as_is(lib: types.ModuleType, value: object) -> None:
    assert lib.merge_leading_dims(value, 2) is value


@pytest.mark.spec("BA-9.2")
def test_split_leading_dim(lib: types.ModuleType) -> None:
    rows = np.arange(24).reshape(6, 4)
    split = lib.split_leading_dim(rows, (2, 3))
    assert split.shape == (2, 3, 4)
    np.testing.assert_array_equal(split[1, 1], rows[4])


@pytest.mark.spec("BA-9.2")
def test_split_leading_dim_errors(lib: types.ModuleType) -> None:
    with pytest.raises(TypeError, match="must be an array"):
        lib.split_leading_dim([1, 2, 3], (3,))
    with pytest.raises(ValueError, match="leading size of 6"):
        lib.split_leading_dim(np.zeros(5), (2, 3))
    with pytest.raises(ValueError, match="rank >= 1"):
        lib.split_leading_dim(np.float32(0), (1,))


@pytest.mark.spec("BA-9.3")
@pytest.mark.parametrize(
    "value", [np.zeros((2, 3)), np.zeros(()), "abc", b"b", 1, [1, 2], {"a": 1}, None, object()]
)
def test_ndim_at_least_never_raises(lib: types.ModuleType, value: object) -> None:
    expected = isinstance(value, np.ndarray) and value.ndim >= 1
    assert lib.ndim_at_least(value, 1) is expected


@pytest.mark.spec("BA-9.4")
def test_arbitrary_mergeable_leaf(lib: types.ModuleType) -> None:
    a, b = np.zeros((2, 3)), np.zeros((4, 5))
    assert lib.arbitrary_mergeable_leaf(2, ("s", np.zeros(2), {"k": a}), {"b": b}) is a
    assert lib.arbitrary_mergeable_leaf(2, ("s",), {"z": np.zeros(2), "b": b}) is b
    assert lib.arbitrary_mergeable_leaf(3, (a,), {"b": b}) is None
