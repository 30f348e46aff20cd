"""Property: chunked calls (SPEC section 13) agree across packages and with a per-chunk oracle."""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from comparisons import examples
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import batchapply
import batchapply_reference
from batchapply_conformance import input_space


def row_mixing(x: Any) -> Any:
    """Each row becomes the running sum of the rows before it in its batch (exact on ints).

    No Python scalar: under ``jax.transfer_guard("disallow")`` one would be a transfer of f's own.
    """
    return x.cumsum(axis=0) + x


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


@pytest.mark.spec("BA-13.4", "BA-13.5", "BA-13.9")
@settings(max_examples=examples(0.25))  # jit: a compile per example
@given(case=cases)
def test_lax_map_chunking_matches_the_oracle(case: tuple[tuple[int, ...], int, int]) -> None:
    shape, num_dims, chunk_size = case
    num_dims = min(num_dims, len(shape) - 1)
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    got = jax.jit(batchapply.BatchApply(row_mixing, num_dims, chunk_size=chunk_size))(jnp.asarray(x))
    np.testing.assert_array_equal(got, per_chunk_oracle(x, num_dims, chunk_size))


@pytest.mark.spec("BA-13.4", "BA-13.5")
@settings(max_examples=examples(0.25))  # eager: compiles per new shape
@given(case=cases, guard=st.sampled_from([None, "log", "disallow", "disallow_explicit"]))
def test_eager_jax_chunking_matches_the_oracle(
    case: tuple[tuple[int, ...], int, int], guard: str | None
) -> None:
    """Also under a transfer guard: a chunked call transfers nothing that the unchunked one does not."""
    shape, num_dims, chunk_size = case
    num_dims = min(num_dims, len(shape) - 1)
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    on_device = jnp.asarray(x)
    with jax.transfer_guard(guard) if guard is not None else contextlib.nullcontext():
        got = batchapply.BatchApply(row_mixing, num_dims, chunk_size=chunk_size)(on_device)
    assert isinstance(got, jax.Array) and got.dtype == np.int32
    np.testing.assert_array_equal(got, per_chunk_oracle(x, num_dims, chunk_size))


# ---- mixed NumPy / jax.Array leaves per call (issue 11, findings 1, 2, 4, 5) ----------------
#
# Every leaf of a call is drawn on its own: a jax.Array, or a NumPy array of a dtype that jax
# holds exactly, of one it changes (64-bit values beyond 32 bits), of one it cannot hold (str,
# bytes, object, structured, datetime64, float0), or a masked array. Whatever f does with a
# merged input, its chunk rows must reach f exactly: identity returns them unchanged.

LEAF_KINDS = (
    "jax_float32",
    "jax_int32",
    "numpy_int32",
    "numpy_int64",
    "numpy_uint64",
    "numpy_float64",
    "numpy_complex128",
    "numpy_str",
    "numpy_bytes",
    "numpy_object",
    "numpy_structured",
    "numpy_datetime64",
    "numpy_float0",
    "numpy_masked",
)


def make_leaf(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
    """A leaf of ``kind`` and ``shape`` whose values a 32-bit copy would not keep."""
    size = int(np.prod(shape))
    ints = rng.integers(0, 2**20, size=size)
    if kind == "jax_float32":
        return jnp.asarray((ints / 7).astype(np.float32).reshape(shape))
    if kind == "jax_int32":
        return jnp.asarray(ints.astype(np.int32).reshape(shape))
    if kind == "numpy_int32":
        return ints.astype(np.int32).reshape(shape)
    if kind == "numpy_int64":
        return (ints.astype(np.int64) + 2**40).reshape(shape)
    if kind == "numpy_uint64":
        return (ints.astype(np.uint64) + np.uint64(2**63)).reshape(shape)
    if kind == "numpy_float64":
        return (ints / 3 + 2**30).reshape(shape)
    if kind == "numpy_complex128":
        return (ints / 3 + 1j * (ints + 2**40)).reshape(shape)
    if kind.removeprefix("numpy_") in input_space.NON_NUMERIC:  # str, bytes, object, ... float0
        return input_space._numpy_leaf(kind.replace("_", " "), shape, rng, dtype="")
    if kind == "numpy_masked":
        return np.ma.masked_array((ints / 3).reshape(shape), mask=(ints % 3 == 0).reshape(shape))
    raise ValueError(kind)


@st.composite
def mixed_chunk_calls(draw: st.DrawFn) -> tuple[int, int, list[Any], list[str]]:
    """(num_dims, chunk_size, leaves, kinds): every leaf mergeable, kinds drawn per leaf."""
    num_dims = draw(st.integers(1, 2))
    leading = tuple(draw(st.lists(st.integers(0, 5), min_size=num_dims, max_size=num_dims)))
    kinds = draw(st.lists(st.sampled_from(LEAF_KINDS), min_size=1, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    leaves = []
    for kind in kinds:
        event(f"chunk leaf: {kind}")
        trailing = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
        leaves.append(make_leaf(kind, leading + trailing, rng))
    if any(kind.startswith("jax") for kind in kinds) and any(kind.startswith("numpy") for kind in kinds):
        event("chunk call: NumPy and jax.Array leaves mixed")
    return num_dims, draw(st.integers(1, 12)), leaves, kinds


def assert_same_leaf(got: Any, want: Any) -> None:
    """Same array type, dtype, shape, mask and bytes (values of any dtype, float0 included)."""
    assert type(got) is type(want) or (isinstance(got, jax.Array) and isinstance(want, jax.Array)), (
        type(got),
        type(want),
    )
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    if isinstance(want, np.ma.MaskedArray):
        np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(want))
        got, want = got.data, want.data
    if want.dtype == object:
        assert got.tolist() == want.tolist()
    else:
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


def identity(*xs: Any) -> tuple[Any, ...]:
    return xs


@pytest.mark.spec("BA-13.3", "BA-13.4", "BA-13.8")
@given(case=mixed_chunk_calls())
def test_mixed_leaves_reach_f_exactly_and_come_back_unchanged(
    case: tuple[int, int, list[Any], list[str]],
) -> None:
    num_dims, chunk_size, leaves, _ = case
    got = batchapply.BatchApply(identity, num_dims, chunk_size=chunk_size)(*leaves)
    for g, x in zip(got, leaves, strict=True):
        assert_same_leaf(g, x)


@pytest.mark.spec("BA-13.4", "BA-13.8")
@given(case=mixed_chunk_calls())
def test_f_returning_numpy_gives_numpy_in_both_packages(case: tuple[int, int, list[Any], list[str]]) -> None:
    num_dims, chunk_size, leaves, kinds = case

    def to_numpy(*xs: Any) -> tuple[Any, ...]:
        return tuple(np.asarray(x) if isinstance(x, jax.Array) else x for x in xs)

    want = to_numpy(*leaves)
    libs = [batchapply] + ([] if "numpy_masked" in kinds else [batchapply_reference])  # masks: issue 11, 9
    for lib in libs:
        got = lib.BatchApply(to_numpy, num_dims, chunk_size=chunk_size)(*leaves)
        for g, w in zip(got, want, strict=True):
            assert_same_leaf(g, w)


@pytest.mark.spec("BA-13.4")
@given(case=mixed_chunk_calls())
def test_traced_numpy_leaves_that_jax_cannot_hold_reach_f_as_numpy(
    case: tuple[int, int, list[Any], list[str]],
) -> None:
    num_dims, chunk_size, leaves, kinds = case
    leaves = [*leaves, jnp.ones(leaves[0].shape[:num_dims])]  # at least one jax.Array: a traced input
    kinds = [*kinds, "jax_float32"]
    on_jax = [i for i, kind in enumerate(kinds) if kind.startswith("jax")]
    exotic = [i for i, kind in enumerate(kinds) if kind.startswith("numpy") and kind != "numpy_int32"]
    seen: dict[int, list[Any]] = {i: [] for i in exotic}

    def f(*xs: Any) -> tuple[Any, ...]:
        for i in exotic:
            seen[i].append(xs[i])
        return tuple(xs[i] for i in on_jax)

    def traced(*jax_leaves: Any) -> Any:
        call = list(leaves)
        for i, leaf in zip(on_jax, jax_leaves, strict=True):
            call[i] = leaf
        return batchapply.BatchApply(f, num_dims, chunk_size=chunk_size)(*call)

    got = jax.jit(traced)(*(leaves[i] for i in on_jax))
    for i, g in zip(on_jax, got, strict=True):
        assert_same_leaf(g, leaves[i])
    for i in exotic:
        x = leaves[i]
        merged = x.reshape((int(np.prod(x.shape[:num_dims])),) + x.shape[num_dims:])
        assert all(type(s) is type(x) and s.dtype == x.dtype for s in seen[i]), [type(s) for s in seen[i]]
        concatenate = np.ma.concatenate if isinstance(x, np.ma.MaskedArray) else np.concatenate
        assert_same_leaf(concatenate(seen[i]), merged)
