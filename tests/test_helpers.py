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
    with pytest.raises(ValueError, match="its product is 6, not 5"):
        lib.split_leading_dim(np.zeros(5), (2, 3))
    with pytest.raises(ValueError, match="rank >= 1"):
        lib.split_leading_dim(np.float32(0), (1,))


@pytest.mark.spec("BA-9.2")
def test_split_leading_dim_infers_one_minus_one(lib: types.ModuleType) -> None:
    assert lib.split_leading_dim(np.zeros((6, 4)), (-1, 3)).shape == (2, 3, 4)
    rows = np.arange(24).reshape(6, 4)
    split = lib.split_leading_dim(rows, [2, np.int64(-1)])
    np.testing.assert_array_equal(split, rows.reshape(2, 3, 4))


@pytest.mark.spec("BA-9.2", "BA-10.1")
@pytest.mark.parametrize(
    ("to_dim", "why"),
    [
        ((-1, 4), "the -1 cannot be inferred: 6 is not a multiple of 4"),
        ((-1, 0), "the other entries multiply to 0"),
        ((-1, -1), "at most one -1"),
        ((3, -2), "sizes >= 0"),
        ((4, 2), "its product is 8, not 6"),
    ],
    ids=repr,
)
def test_split_leading_dim_error_states_the_leading_size_and_to_dim(
    lib: types.ModuleType, to_dim: tuple[int, ...], why: str
) -> None:
    x = np.zeros((6, 4))
    with pytest.raises(ValueError) as info:
        lib.split_leading_dim(x, to_dim)
    message = str(info.value)
    assert message.startswith(
        f"split_leading_dim: cannot split shape (6, 4) (leading size 6) into to_dim {to_dim}: "
    )
    assert why in message
    np.testing.assert_array_equal(x, np.zeros((6, 4)))  # untouched


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


# ---- Haiku's helpers, in their array-leaf domain ------------------------------------
# dm-haiku's merge_leading_dims / split_leading_dim / ndim_at_least / arbitrary_mergeable_leaf
# (haiku/_src/basic.py; Stoix, Mava and Acme ship copies) are thin wrappers around reshape,
# ndim and tree_leaves. On array leaves, both packages must give what those give; below each
# is restated with numpy, which is what they compute.


def haiku_merge(x: np.ndarray, num_dims: int) -> np.ndarray:
    if x.ndim < num_dims:
        return x
    return np.reshape(x, (int(np.prod(x.shape[:num_dims])),) + x.shape[num_dims:])


def haiku_split(x: np.ndarray, to_dim: tuple[int, ...]) -> np.ndarray:
    return np.reshape(x, to_dim + x.shape[1:])


@pytest.mark.spec("BA-9.1")
@pytest.mark.parametrize("num_dims", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 3, 4), (0, 3, 2), (5,), (2, 1, 0)], ids=repr)
def test_merge_leading_dims_as_haiku(lib: types.ModuleType, shape: tuple[int, ...], num_dims: int) -> None:
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    got, want = lib.merge_leading_dims(x, num_dims), haiku_merge(x, num_dims)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.spec("BA-9.2")
@pytest.mark.parametrize(
    ("shape", "to_dim"),
    [
        ((6, 4), (2, 3)),
        ((6, 4), (-1, 3)),
        ((6, 4), (2, -1)),
        ((6,), (-1,)),
        ((24, 1), (2, -1, 4)),
        ((0, 4), (-1, 3)),
        ((0, 4), (0, 5)),
        ((6, 4, 5), (6, 1, -1)),
    ],
    ids=repr,
)
def test_split_leading_dim_as_haiku(
    lib: types.ModuleType, shape: tuple[int, ...], to_dim: tuple[int, ...]
) -> None:
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    got, want = lib.split_leading_dim(x, to_dim), haiku_split(x, to_dim)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.spec("BA-9.2")
def test_split_leading_dim_refuses_haikus_regrouping_of_empty_rows(lib: types.ModuleType) -> None:
    # With zero-size trailing dims, Haiku's reshape accepts any to_dim (0 elements either way)
    # and silently changes the leading size; a split keeps it (E13).
    x = np.zeros((6, 0))
    assert haiku_split(x, (2, 2)).shape == (2, 2, 0)
    with pytest.raises(ValueError, match="its product is 4, not 6"):
        lib.split_leading_dim(x, (2, 2))


@pytest.mark.spec("BA-9.3")
@pytest.mark.parametrize("num_dims", [0, 1, 2, 3])
@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_ndim_at_least_as_haiku(lib: types.ModuleType, rank: int, num_dims: int) -> None:
    x = np.zeros((2,) * rank)
    assert lib.ndim_at_least(x, num_dims) is (x.ndim >= num_dims)
    if rank == 0:  # a NumPy scalar is an array leaf of rank 0
        assert lib.ndim_at_least(x[()], num_dims) is (num_dims == 0)


@pytest.mark.spec("BA-9.4")
@pytest.mark.parametrize("num_dims", [1, 2, 3])
def test_arbitrary_mergeable_leaf_as_haiku(lib: types.ModuleType, num_dims: int) -> None:
    a, b, c, y, z = np.zeros(2), np.zeros((5, 6)), np.zeros((2, 3, 4)), np.zeros((1, 1)), np.zeros((7, 8, 9))
    args, kwargs = (a, {"c": c, "b": [b]}), {"z": z, "y": y}
    # Haiku: the first leaf of tree_leaves(args), then of tree_leaves(kwargs), with ndim >= num_dims
    # (dicts in sorted key order).
    leaves = [a, b, c, y, z]
    want = next(leaf for leaf in leaves if leaf.ndim >= num_dims)
    assert lib.arbitrary_mergeable_leaf(num_dims, args, kwargs) is want
