"""SPEC section 13: `chunk_size`. Call-pattern tests run on both packages; JAX ones on batchapply."""

from __future__ import annotations

import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batchapply
from batchapply import BatchApply


def recording(fn: Any = None) -> tuple[list[tuple[tuple[Any, ...], dict[str, Any]]], Any]:
    """A function that records each call's arguments and returns ``fn(first argument)``."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def f(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return args[0] if fn is None else fn(args[0])

    return calls, f


def rows_of(x: Any) -> list[int]:
    """The merged-row numbers a chunk holds, for inputs built by ``numbered``."""
    return [int(v) for v in np.asarray(x)[:, 0]]


def numbered(t: int, b: int, features: int = 2, dtype: Any = np.int64) -> np.ndarray:
    """A [t, b, features] array whose row (i, j) starts with its merged row number i * b + j."""
    x = np.zeros((t, b, features), dtype=dtype)
    x[..., 0] = np.arange(t * b).reshape(t, b)
    x[..., 1:] = 7
    return x


# ---- BA-13.1: the option and its validation ---------------------------------------------


@pytest.mark.spec("BA-13.1")
@pytest.mark.parametrize("chunk_size", [1, 4, np.int64(3), None], ids=repr)
def test_chunk_size_accepts_integers_and_none(lib: types.ModuleType, chunk_size: Any) -> None:
    x = numbered(2, 5)
    out = lib.BatchApply(lambda y: y * 2, chunk_size=chunk_size)(x)
    np.testing.assert_array_equal(out, x * 2)


@pytest.mark.spec("BA-13.1")
@pytest.mark.parametrize(
    ("chunk_size", "error"),
    [
        (True, TypeError),
        (False, TypeError),
        (4.0, TypeError),
        ("4", TypeError),
        (0, ValueError),
        (-2, ValueError),
    ],
    ids=repr,
)
def test_chunk_size_is_checked_at_construction(lib: types.ModuleType, chunk_size: Any, error: type) -> None:
    with pytest.raises(error, match="chunk_size"):
        lib.BatchApply(lambda x: x, chunk_size=chunk_size)


@pytest.mark.spec("BA-13.1")
def test_chunk_size_is_keyword_only(lib: types.ModuleType) -> None:
    with pytest.raises(TypeError):
        lib.BatchApply(lambda x: x, 2, 4)


# ---- BA-13.2 to BA-13.4: how f is called --------------------------------------------------


@pytest.mark.spec("BA-13.2")
@pytest.mark.parametrize(("t", "b"), [(2, 5), (1, 4), (0, 3)], ids=["fewer-rows", "as-many-rows", "no-rows"])
def test_at_most_chunk_size_rows_is_one_call(lib: types.ModuleType, t: int, b: int) -> None:
    calls, f = recording()
    x = numbered(t, b)
    out = lib.BatchApply(f, chunk_size=t * b + 6 if t * b < 4 else t * b)(x)
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0][0][0], x.reshape((t * b,) + x.shape[2:]))
    np.testing.assert_array_equal(out, x)


@pytest.mark.spec("BA-13.3", "BA-13.4")
@pytest.mark.parametrize(
    ("chunk_size", "expected_rows"),
    [
        (4, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]),
        (5, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]),
        (1, [[i] for i in range(10)]),
    ],
    ids=["with-rest", "no-rest", "one-row-chunks"],
)
def test_numpy_inputs_one_call_per_chunk_in_order(
    lib: types.ModuleType, chunk_size: int, expected_rows: list[list[int]]
) -> None:
    calls, f = recording()
    x, weight, label = numbered(2, 5), np.ones((2, 3)), "tag"
    lib.BatchApply(f, in_axes=(0, None, None), chunk_size=chunk_size)(x, weight, label, scale=numbered(2, 5))
    assert [rows_of(args[0]) for args, _ in calls] == expected_rows
    assert [rows_of(kwargs["scale"]) for _, kwargs in calls] == expected_rows  # kwargs are merged too
    for args, _ in calls:
        assert type(args[0]) is np.ndarray and args[0].dtype == x.dtype
        assert args[1] is weight and args[2] is label  # BA-1.2, in every call


@pytest.mark.spec("BA-13.3")
def test_low_rank_leaves_reach_every_chunk_unchanged(lib: types.ModuleType) -> None:
    calls, f = recording()
    bias = np.ones(2)
    lib.BatchApply(f, chunk_size=3)(numbered(2, 4), bias)
    assert len(calls) == 3 and all(args[1] is bias for args, _ in calls)


@pytest.mark.spec("BA-13.4")
@pytest.mark.parametrize(("t", "b", "n_calls"), [(2, 5, 3), (2, 4, 2)], ids=["with-rest", "no-rest"])
def test_eager_jax_inputs_one_call_per_chunk(t: int, b: int, n_calls: int) -> None:
    calls, f = recording(lambda y: y * 2)
    x = jnp.asarray(numbered(t, b, dtype=np.int32))
    out = BatchApply(f, chunk_size=4)(x)
    assert len(calls) == n_calls  # once per chunk, outside any trace
    for k, (args, _) in enumerate(calls):
        assert isinstance(args[0], jax.Array) and not isinstance(args[0], jax.core.Tracer)
        assert rows_of(args[0]) == list(range(4 * k, min(4 * k + 4, t * b)))
    np.testing.assert_array_equal(out, np.asarray(x) * 2)


@pytest.mark.spec("BA-13.4")
@pytest.mark.parametrize(("t", "b", "n_calls"), [(2, 5, 2), (2, 4, 1)], ids=["with-rest", "no-rest"])
def test_traced_jax_inputs_trace_f_once_for_the_full_chunks(t: int, b: int, n_calls: int) -> None:
    calls, f = recording(lambda y: y * 2)
    x = jnp.asarray(numbered(t, b, dtype=np.int32))
    out = jax.jit(BatchApply(f, chunk_size=4))(x)
    assert len(calls) == n_calls
    first = calls[0][0][0]
    assert isinstance(first, jax.core.Tracer) and first.shape == (4, 2)  # inside jax.lax.map
    if n_calls == 2:
        assert calls[1][0][0].shape == (2, 2)  # the last 2 rows, after the loop
    np.testing.assert_array_equal(out, np.asarray(x) * 2)
    calls.clear()
    jax.jit(BatchApply(f, chunk_size=4))(x)  # a new BatchApply, a new trace: as many calls again
    assert len(calls) == n_calls


@pytest.mark.spec("BA-13.4")
def test_mixed_numpy_and_jax_inputs_are_mapped_together_under_a_trace() -> None:
    calls, f = recording(lambda y: y + 1)
    x, y = jnp.asarray(numbered(3, 3, dtype=np.int32)), numbered(3, 3, dtype=np.int32)
    out = jax.jit(BatchApply(lambda a, b: f(a + b), chunk_size=4))(x, y)
    assert len(calls) == 2  # one trace for the two full chunks, one call for row 8
    np.testing.assert_array_equal(out, np.asarray(x) + y + 1)


@pytest.mark.spec("BA-13.3", "BA-13.4")
def test_eager_mixed_inputs_keep_their_array_types_per_chunk() -> None:
    seen: list[tuple[type, type]] = []

    def f(a: Any, b: Any) -> Any:
        seen.append((type(a), type(b)))
        return a + b

    x, y = jnp.asarray(numbered(3, 3, dtype=np.int32)), numbered(3, 3, dtype=np.int32)
    out = BatchApply(f, chunk_size=4)(x, y)
    assert len(seen) == 3 and all(issubclass(a, jax.Array) and b is np.ndarray for a, b in seen)
    np.testing.assert_array_equal(out, np.asarray(x) + y)


@pytest.mark.spec("BA-13.4")
def test_eager_calls_never_reuse_a_stale_computation() -> None:
    state = {"w": jnp.ones((2, 3), jnp.float32)}
    scale = [jnp.float32(1)]
    apply = BatchApply(lambda y: (y @ state["w"]) * scale[0], chunk_size=4)
    x = jnp.asarray(numbered(2, 5, dtype=np.float32))
    first = apply(x)
    state["w"] = state["w"] * 3  # a closed-over array changes between two calls
    second = apply(x)
    np.testing.assert_array_equal(second, np.asarray(first) * 3)
    scale[0] = jnp.float32(-1)
    np.testing.assert_array_equal(apply(x), -np.asarray(second))


# ---- BA-13.3, BA-13.4: merged NumPy inputs stay exact (issue 11, findings 1, 2, 4, 5) ----------


BIG = np.arange(10) + 2**40  # not representable in 32 bits
EXOTIC = {
    "int64": BIG.astype(np.int64),
    "uint64": BIG.astype(np.uint64),
    "float64": BIG.astype(np.float64) + 0.25,
    "complex128": BIG.astype(np.complex128) * 1j,
    "str": np.array([f"row{i}" for i in range(10)]),
    "bytes": np.array([f"row{i}".encode() for i in range(10)]),
    "object": np.array([("row", i) for i in range(10)] + [None], dtype=object)[:10],
    "structured": np.array([(i, 2.5 * i) for i in range(10)], dtype=[("a", np.int64), ("b", np.float64)]),
    "datetime64": np.arange(10).astype("datetime64[D]"),
    "float0": np.zeros(10, dtype=jax.dtypes.float0),
}


@pytest.mark.spec("BA-13.3", "BA-13.4", "BA-13.8")
@pytest.mark.parametrize("chunk_size", [5, 3], ids=["no-rest", "with-rest"])
@pytest.mark.parametrize("kind", sorted(EXOTIC))
def test_eager_merged_numpy_leaf_keeps_dtype_and_type_next_to_a_jax_input(
    lib: types.ModuleType, kind: str, chunk_size: int
) -> None:
    values = EXOTIC[kind]
    x, s = jnp.zeros((2, 5, 1), jnp.float32), values.reshape(2, 5)
    out = lib.BatchApply(lambda a, s: s, chunk_size=chunk_size)(x, s)
    assert type(out) is np.ndarray and out.dtype == s.dtype  # f returned NumPy: so does the call
    np.testing.assert_array_equal(out, s)


@pytest.mark.spec("BA-13.4")
@pytest.mark.parametrize("chunk_size", [5, 3], ids=["no-rest", "with-rest"])
@pytest.mark.parametrize("kind", sorted(EXOTIC))
def test_traced_merged_numpy_leaf_that_jax_cannot_hold_stays_numpy(kind: str, chunk_size: int) -> None:
    values = EXOTIC[kind]
    x, s = jnp.arange(10, dtype=jnp.float32).reshape(2, 5, 1), values.reshape(2, 5)
    seen: list[Any] = []

    def f(a: Any, s: Any) -> Any:
        seen.append(s)
        return a * 2

    out = jax.jit(lambda x: BatchApply(f, chunk_size=chunk_size)(x, s))(x)  # s: a constant of the trace
    merged = s.reshape(10)
    bounds = [(a, min(a + chunk_size, 10)) for a in range(0, 10, chunk_size)]
    assert len(seen) == len(bounds)  # one call per chunk: an unrolled loop
    for got, (a, b) in zip(seen, bounds, strict=True):
        assert type(got) is np.ndarray and got.dtype == s.dtype
        np.testing.assert_array_equal(got, merged[a:b])
    np.testing.assert_array_equal(out, np.asarray(x) * 2)


@pytest.mark.spec("BA-13.4")
def test_traced_64bit_numpy_leaf_is_exact() -> None:
    x, s = jnp.zeros((2, 5, 1), jnp.float32), (np.arange(10, dtype=np.int64) + 2**40).reshape(2, 5)
    apply = BatchApply(lambda a, s: a[:, 0] + (s - 2**40).astype(np.float32), chunk_size=3)
    out = jax.jit(lambda x: apply(x, s))(x)
    np.testing.assert_array_equal(out, np.arange(10, dtype=np.float32).reshape(2, 5))


@pytest.mark.spec("BA-13.4", "BA-13.8")
def test_f_returning_numpy_from_jax_inputs_gives_numpy(lib: types.ModuleType) -> None:
    x = jnp.asarray(numbered(2, 5, dtype=np.int32))
    out = lib.BatchApply(lambda y: np.asarray(y) * 2, chunk_size=4)(x)
    assert type(out) is np.ndarray and out.dtype == np.int32
    np.testing.assert_array_equal(out, np.asarray(x) * 2)


def masked(t: int, b: int) -> np.ma.MaskedArray:
    data = numbered(t, b, features=3, dtype=np.float64)
    return np.ma.masked_array(data, mask=(data % 3 == 0))


@pytest.mark.spec("BA-13.3", "BA-13.8")
@pytest.mark.parametrize("with_jax", [False, True], ids=["numpy-only", "next-to-jax"])
def test_masked_input_keeps_its_mask(with_jax: bool) -> None:
    x = masked(2, 5)
    seen: list[Any] = []

    def f(y: Any, z: Any) -> Any:
        seen.append(y)
        return y * 2 + 1

    z = jnp.zeros((2, 5)) if with_jax else np.zeros((2, 5))
    out = BatchApply(f, chunk_size=4)(x, z)
    assert all(isinstance(y, np.ma.MaskedArray) for y in seen) and len(seen) == 3
    want = x * 2 + 1
    assert isinstance(out, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(out), np.ma.getmaskarray(want))
    np.testing.assert_array_equal(out.compressed(), want.compressed())


@pytest.mark.spec("BA-13.8")
def test_one_masked_chunk_output_makes_the_output_masked() -> None:
    x = numbered(2, 5, dtype=np.float64)  # merged rows 0 to 9; chunks [0:4], [4:8], [8:10]

    def f(y: np.ndarray) -> Any:
        return np.ma.masked_greater(y, 7) if y[0, 0] >= 8 else y  # only the last chunk is masked

    out = BatchApply(f, chunk_size=4)(x)
    assert isinstance(out, np.ma.MaskedArray)
    last_chunk = (x[..., :1] >= 8) & np.ones_like(x, dtype=bool)
    np.testing.assert_array_equal(np.ma.getmaskarray(out), (x > 7) & last_chunk)
    np.testing.assert_array_equal(out.data, x)


@pytest.mark.spec("BA-13.4")
def test_traced_masked_input_stays_masked_numpy() -> None:
    x, seen = masked(2, 5), []

    def f(y: Any, z: Any) -> Any:
        seen.append(y)
        return z * 2

    jax.jit(lambda z: BatchApply(f, chunk_size=4)(x, z))(jnp.ones((2, 5)))
    assert len(seen) == 3 and all(isinstance(y, np.ma.MaskedArray) for y in seen)
    np.testing.assert_array_equal(np.ma.getmaskarray(seen[1]), np.ma.getmaskarray(x.reshape(10, 3)[4:8]))


# ---- BA-13.5: results -------------------------------------------------------------------


@pytest.mark.spec("BA-13.5")
def test_row_mixing_functions_see_per_chunk_batches(lib: types.ModuleType) -> None:
    x = np.arange(2 * 5 * 3, dtype=np.float64).reshape(2, 5, 3)
    out = lib.BatchApply(lambda y: y - y.mean(axis=0), chunk_size=4)(x)
    merged = x.reshape(10, 3)
    want = np.concatenate([c - c.mean(axis=0) for c in (merged[:4], merged[4:8], merged[8:])])
    np.testing.assert_allclose(out, want.reshape(2, 5, 3))
    assert not np.allclose(out, x - merged.mean(axis=0))  # differs from the unchunked result


@pytest.mark.spec("BA-13.5")
def test_row_mixing_functions_see_per_chunk_batches_under_lax_map() -> None:
    x = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)
    out = BatchApply(lambda y: y - y.mean(axis=0), chunk_size=4)(x)
    merged = np.asarray(x).reshape(10, 3)
    want = np.concatenate([c - c.mean(axis=0) for c in (merged[:4], merged[4:8], merged[8:])])
    np.testing.assert_allclose(out, want.reshape(2, 5, 3), rtol=1e-6)


@pytest.mark.spec("BA-13.5")
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7, 10, 64])
def test_row_wise_exact_function_is_bit_identical_to_unchunked(
    lib: types.ModuleType, chunk_size: int
) -> None:
    x = numbered(4, 5, features=3)

    def f(y: Any, w: Any) -> dict[str, Any]:
        return {"lin": y * 3 + 1, "pair": (y[:, :1] @ w, y.astype(np.int32))}

    w = np.arange(6).reshape(1, 6)
    got = lib.BatchApply(f, in_axes=(0, None), chunk_size=chunk_size)(x, w)
    want = lib.BatchApply(f, in_axes=(0, None))(x, w)
    assert str(jax.tree.structure(got)) == str(jax.tree.structure(want))
    for g, v in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == v.dtype and type(g) is type(v)
        np.testing.assert_array_equal(g, v)


@pytest.mark.spec("BA-13.5", "BA-13.9")
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7, 10, 64])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_exact_function_is_bit_identical_under_lax_map(chunk_size: int, jit: bool) -> None:
    x = jnp.asarray(numbered(4, 5, features=3, dtype=np.int32))
    f = BatchApply(lambda y: {"lin": y * 3 + 1, "sin": jnp.sin(y.astype(jnp.float32))}, chunk_size=chunk_size)
    got = (jax.jit(f) if jit else f)(x)
    want = BatchApply(lambda y: {"lin": y * 3 + 1, "sin": jnp.sin(y.astype(jnp.float32))})(x)
    for key in want:
        assert got[key].dtype == want[key].dtype
        np.testing.assert_array_equal(got[key], want[key])


def mlp(x: jax.Array, w1: jax.Array, w2: jax.Array) -> jax.Array:
    return jnp.tanh(x @ w1) @ w2


KEY = jax.random.key(0)
W1 = jax.random.normal(jax.random.fold_in(KEY, 1), (4, 16))
W2 = jax.random.normal(jax.random.fold_in(KEY, 2), (16, 3))
X = jax.random.normal(jax.random.fold_in(KEY, 3), (10, 1000, 4))


@pytest.mark.spec("BA-13.5", "BA-13.9")
@pytest.mark.parametrize("chunk_size", [4096, 1000, 999])
def test_mlp_equals_unchunked(chunk_size: int) -> None:
    got = jax.jit(BatchApply(mlp, in_axes=(0, None, None), chunk_size=chunk_size))(X, W1, W2)
    want = jax.jit(BatchApply(mlp, in_axes=(0, None, None)))(X, W1, W2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ---- BA-13.6 to BA-13.8: outputs ----------------------------------------------------------


@pytest.mark.spec("BA-13.6")
@pytest.mark.parametrize("chunk_size", [4, 100], ids=["several-chunks", "one-chunk"])
def test_unbatched_outputs_cannot_be_chunked(lib: types.ModuleType, chunk_size: int) -> None:
    def f(y: Any) -> dict[str, Any]:
        return {"y": y, "loss": (y**2).sum(), "tag": "text"}

    with pytest.raises(ValueError) as info:
        lib.BatchApply(f, out_axes={"y": 0, "loss": None, "tag": 0}, chunk_size=chunk_size)(numbered(2, 5))
    message = str(info.value)
    assert message.startswith("BatchApply: cannot chunk output")
    assert "output['loss'] (not selected by out_axes), output['tag'] (a str)" in message


@pytest.mark.spec("BA-13.6")
def test_chunk_output_with_the_wrong_leading_size(lib: types.ModuleType) -> None:
    with pytest.raises(
        ValueError, match=r"cannot split output leaves of a chunk of 4 rows: output\[1\] has shape \(1,"
    ):
        lib.BatchApply(lambda y: (y, y[:1]), chunk_size=4)(numbered(2, 5))


@pytest.mark.spec("BA-13.7")
@pytest.mark.parametrize(
    ("f", "detail"),
    [
        (lambda y: y if len(y) == 4 else y.astype(np.float32), "output with dtype float32 and shape (2, 2)"),
        (lambda y: y if len(y) == 4 else y[:, :1], "output with dtype int64 and shape (2, 1)"),
        (lambda y: y if len(y) == 4 else [y], "the leaves output[0], chunk 0 returned output"),
    ],
    ids=["dtype", "trailing-shape", "structure"],
)
def test_chunks_must_agree(lib: types.ModuleType, f: Any, detail: str) -> None:
    with pytest.raises(ValueError, match="chunk outputs disagree: chunk 2 \\(rows 8 to 9\\)") as info:
        lib.BatchApply(f, chunk_size=4)(numbered(2, 5))
    assert detail in str(info.value)


@pytest.mark.spec("BA-13.7")
def test_the_rest_must_agree_with_the_mapped_chunks() -> None:
    x = jnp.asarray(numbered(2, 5, dtype=np.int32))
    with pytest.raises(ValueError, match=r"chunk 2 \(rows 8 to 9\) returned output with dtype float32"):
        BatchApply(lambda y: y if len(y) == 4 else y.astype(jnp.float32), chunk_size=4)(x)


@pytest.mark.spec("BA-13.8")
def test_output_array_type(lib: types.ModuleType) -> None:
    x = numbered(2, 5, dtype=np.float32)
    as_numpy = lib.BatchApply(lambda y: y + 1, chunk_size=4)(x)
    assert type(as_numpy) is np.ndarray
    as_jax = lib.BatchApply(lambda y: jnp.asarray(y) + 1 if len(y) == 2 else y + 1, chunk_size=4)(x)
    assert isinstance(as_jax, jax.Array) and as_jax.dtype == x.dtype
    np.testing.assert_array_equal(as_jax, x + 1)


# ---- BA-13.9: transformations and memory ------------------------------------------------


@pytest.mark.spec("BA-13.9")
def test_chunked_grad_matches_unchunked() -> None:
    def loss(w1: jax.Array, chunk_size: int | None) -> jax.Array:
        return jnp.sum(BatchApply(mlp, in_axes=(0, None, None), chunk_size=chunk_size)(X[:3], w1, W2) ** 2)

    np.testing.assert_allclose(jax.grad(loss)(W1, 999), jax.grad(loss)(W1, None), rtol=1e-4, atol=1e-4)


@pytest.mark.spec("BA-13.9")
def test_chunked_inside_vmap_scan_and_checkpoint() -> None:
    apply = BatchApply(mlp, num_dims=1, in_axes=(0, None, None), chunk_size=300)
    plain = BatchApply(mlp, num_dims=1, in_axes=(0, None, None))
    xs = X[:2]

    def body(carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return carry, jax.checkpoint(apply)(x, W1, W2)

    _, got = jax.lax.scan(body, jnp.zeros(()), xs)
    np.testing.assert_allclose(
        got, jax.vmap(plain, in_axes=(0, None, None))(xs, W1, W2), rtol=1e-5, atol=1e-5
    )
    vmapped = jax.vmap(apply, in_axes=(0, None, None))(xs, W1, W2)
    np.testing.assert_allclose(vmapped, got, rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-13.9")
def test_peak_memory_follows_the_chunk() -> None:
    # An MLP over 2**20 merged rows, compiled only (never run): the hidden layer of the
    # whole batch is 1 GiB of temporaries, that of one chunk of 4096 rows 4 MiB.
    def temp_bytes(chunk_size: int | None) -> int | None:
        apply = BatchApply(mlp, in_axes=(0, None, None), chunk_size=chunk_size)
        shapes = [((1024, 1024, 16), jnp.float32), ((16, 256), jnp.float32), ((256, 16), jnp.float32)]
        args = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in shapes]
        stats = jax.jit(apply).lower(*args).compile().memory_analysis()
        return None if stats is None else int(stats.temp_size_in_bytes)

    unchunked, chunked = temp_bytes(None), temp_bytes(4096)
    if unchunked is None or chunked is None:
        pytest.skip(f"memory_analysis() not available on {jax.default_backend()}")
    assert unchunked >= 2**20 * 256 * 4  # the whole hidden layer
    assert chunked * 50 <= unchunked, (chunked, unchunked)


def test_chunked_eager_call_on_many_leaves_is_correct() -> None:
    tree = {f"k{i}": jnp.full((3, 3, 2), i, jnp.float32) for i in range(20)}
    out = batchapply.BatchApply(lambda t: {k: v * 2 for k, v in t.items()}, chunk_size=4)(tree)
    for key, value in tree.items():
        np.testing.assert_array_equal(out[key], value * 2)


@pytest.mark.spec("BA-13.6")
def test_output_checks_inside_lax_map() -> None:
    x = jnp.ones((2, 5, 3))
    with pytest.raises(
        ValueError, match=r"cannot chunk output leaves: output\[1\] \(not selected by out_axes\)"
    ):
        BatchApply(lambda y: (y, y.sum()), out_axes=(0, None), chunk_size=4)(x)
    with pytest.raises(
        ValueError, match=r"cannot split output leaves of a chunk of 4 rows: output\[1\] has shape \(\)"
    ):
        BatchApply(lambda y: (y, y.sum()), chunk_size=4)(x)


@pytest.mark.spec("BA-13.10")
def test_symbolic_rows_raise_e18_naming_the_leaf() -> None:
    from jax import export

    apply = BatchApply(lambda w, y: y * 2, in_axes=(None, 0), chunk_size=4)
    shape = jax.ShapeDtypeStruct(export.symbolic_shape("t, 3, 2"), jnp.float32)
    with pytest.raises(
        ValueError, match=r"^BatchApply: `chunk_size` needs a known number of merged rows: args\[1\]"
    ):
        export.export(jax.jit(lambda y: apply(jnp.ones(2), y)))(shape)
    plain = BatchApply(lambda w, y: y * 2, in_axes=(None, 0))  # without chunk_size it exports
    assert export.export(jax.jit(lambda y: plain(jnp.ones(2), y)))(shape).out_avals[0].shape == shape.shape


@pytest.mark.spec("BA-13.11")
def test_eager_chunking_makes_no_merged_copy_of_a_jax_input() -> None:
    x = jnp.ones((16, 1024, 8), jnp.float32)  # 512 KiB, 64 chunks of 256 rows
    jax.block_until_ready(x)
    before = sum(a.nbytes for a in jax.live_arrays())
    extra: list[int] = []

    def f(rows: jax.Array) -> jax.Array:
        extra.append(sum(a.nbytes for a in jax.live_arrays()) - before)
        return rows[:, :1]  # 1/8 of the input per row: the outputs so far are small

    out = BatchApply(f, chunk_size=256)(x)
    assert len(extra) == 64
    # Live while f runs: this chunk's rows (8 KiB) and the outputs of the chunks before it
    # (1 KiB each); a merged copy of x would add 512 KiB.
    assert max(extra) <= 256 * 8 * 4 + 64 * 256 * 4, max(extra)
    np.testing.assert_array_equal(out, np.ones((16, 1024, 1), np.float32))


@pytest.mark.spec("BA-13.4", "BA-13.5")
@pytest.mark.parametrize("guard", ["disallow", "disallow_explicit", "log"])
def test_eager_chunking_adds_no_transfer_under_a_transfer_guard(
    guard: str, caplog: pytest.LogCaptureFixture
) -> None:
    """CPU chunks go through host memory only where no transfer guard is in force; otherwise the
    rows are sliced on the device, and the slice's start (a Python int) is not the user's transfer."""
    x = jnp.arange(96.0).reshape(4, 6, 4)

    def f(rows: jax.Array) -> jax.Array:
        return rows + rows  # no Python scalar: f itself transfers nothing

    want = BatchApply(f)(x)
    with jax.transfer_guard(guard):
        got = BatchApply(f, chunk_size=5)(x)
    np.testing.assert_array_equal(got, want)
    assert not [r for r in caplog.records if "transfer" in r.getMessage().lower()]


@pytest.mark.spec("BA-13.4")
@pytest.mark.parametrize("dtype", ["float32", "int8", "bool", "bfloat16"])
def test_eager_cpu_chunks_compile_no_slice_or_concatenation(
    monkeypatch: pytest.MonkeyPatch, dtype: str
) -> None:
    """On a CPU device the rows and the outputs of chunks go through host memory: the jitted slice
    and concatenation (a compile each per shape) are not called; for a weak-typed input (which
    host memory would make strong) and a sub-byte dtype (packed on the device) they still are."""
    from batchapply import _chunks, _exec_chunks

    called: list[str] = []

    def counted(module: Any, name: str) -> Any:
        program = getattr(module, name)

        def call(*args: Any) -> Any:
            called.append(name)
            return program(*args)

        return call

    for module, name in ((_exec_chunks, "_take_rows"), (_chunks, "_concatenate_fused")):
        monkeypatch.setattr(module, name, counted(module, name))
    x = jnp.asarray(np.arange(96).reshape(4, 6, 4) % 2, dtype)
    got = BatchApply(lambda rows: rows, chunk_size=5)(x)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(x))
    assert called == []
    weak = jax.lax.broadcast(1.5, (4, 6, 4))
    assert BatchApply(lambda rows: rows, chunk_size=5)(weak).weak_type
    assert called == ["_take_rows"] * 5 + ["_concatenate_fused"]
    called.clear()
    packed = jnp.zeros((4, 6, 4), jnp.int4)
    assert BatchApply(lambda rows: rows, chunk_size=5)(packed).dtype == jnp.int4
    assert called == ["_take_rows"] * 5 + ["_concatenate_fused"]


@pytest.mark.spec("BA-13.4")
def test_f_that_donates_its_chunk_leaves_the_input_intact() -> None:
    """A CPU chunk's rows are a view of the input's memory: f donating them must not write into it."""
    x = jnp.arange(96.0).reshape(4, 6, 4)
    kept = np.array(x)
    donating = jax.jit(lambda rows: rows * 0 - 1, donate_argnums=0)
    out = BatchApply(donating, chunk_size=5)(x)
    np.testing.assert_array_equal(np.asarray(x), kept)
    np.testing.assert_array_equal(out, np.full((4, 6, 4), -1.0, np.float32))


@pytest.mark.spec("BA-10.1")
def test_deleted_input_of_a_chunked_call_with_one_leading_dim_is_e28() -> None:
    # Found by the input-space fuzzer (dev profile): with num_dims=1 the merge keeps the shape,
    # so nothing touched the deleted array before the chunks' slice raised jax's RuntimeError.
    bad = jnp.ones((2, 2), jnp.float32)
    bad.delete()
    with pytest.raises(ValueError, match=r"^BatchApply: input array has been deleted: kwargs\['bad'\]"):
        BatchApply(lambda x, bad: x, num_dims=1, chunk_size=1)(jnp.ones((2, 3)), bad=bad)
