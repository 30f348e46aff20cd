"""Side-by-side benchmarks: batchapply, flax.linen.BatchApply, jax.vmap and the hand-written reshape.

Each group is one workload; every implementation of it is timed in the same run,
and `benchmarks/report.py` turns the medians into ratios to the hand-written
reshape (`by_hand`). Run (see BENCHMARKS.md):

    python -m pytest benchmarks --benchmark-json=bench.json && python benchmarks/report.py bench.json

Not collected by the test suite (testpaths is `tests`), and nothing here asserts a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from batchapply import BatchApply, _exec_fused
from tests.workloads import attention, conv, mlp, rnn

IMPLS = ["batchapply", "flax", "vmap", "by_hand"]
KEY = jax.random.key(0)


def normal(i: int, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    return jax.random.normal(jax.random.fold_in(KEY, i), shape).astype(dtype)


# ---- the functions, each written for a [Batch, ...] leading dim ---------------------------


# ---- the four implementations of "apply f over [T, B, ...]" ------------------------------


def implementation(
    impl: str, f: Callable[..., Any], n_batched: int, chunk_size: int | None = None
) -> Callable[..., Any]:
    """``impl`` applied to ``f``: the first ``n_batched`` arguments are [T, B, ...], the rest are weights."""
    if impl == "batchapply":
        n_args = f.__code__.co_argcount
        return BatchApply(f, in_axes=(0,) * n_batched + (None,) * (n_args - n_batched), chunk_size=chunk_size)
    if impl == "flax":  # no in_axes: the weights go in by closure, or they would be merged too
        return lambda *a: nn.BatchApply(lambda *xs: f(*xs, *a[n_batched:]))(*a[:n_batched])
    if impl == "vmap":  # f runs on [B, ...], vmapped over T
        return lambda *a: jax.vmap(lambda *xs: f(*xs, *a[n_batched:]))(*a[:n_batched])
    if impl == "by_hand":

        def by_hand(*a: Any) -> Any:
            t, b = a[0].shape[:2]
            merged = [x.reshape((t * b,) + x.shape[2:]) for x in a[:n_batched]]
            out = f(*merged, *a[n_batched:])
            return out.reshape((t, b) + out.shape[1:])

        return by_hand
    raise ValueError(impl)


def workload(name: str, scale: int) -> tuple[Callable[..., Any], int, list[jax.Array]]:
    """(f, number of batched arguments, arguments) of a jitted workload."""
    if name.startswith("mlp"):
        dtype = jnp.bfloat16 if name.endswith("bfloat16") else jnp.float32
        x = normal(1, (8, 128 * scale, 128), dtype)
        return mlp, 1, [x, normal(2, (128, 256), dtype) / 10, normal(3, (256, 128), dtype) / 10]
    if name == "conv_tbhwc":
        return conv, 1, [normal(1, (4, 8 * scale, 32, 32, 16)), normal(2, (3, 3, 16, 16)) / 10]
    if name == "scan_inside":
        return rnn, 1, [normal(1, (4, 16 * scale, 32, 64)), normal(2, (64, 64)) / 10]
    if name == "attention":
        return attention, 3, [normal(i, (4, 8 * scale, 64, 64)) for i in (1, 2, 3)]
    raise ValueError(name)


def run(benchmark: Any, group: str, impl: str, fn: Callable[[], Any]) -> None:
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    for _ in range(2):  # compile outside the timing (eager batchapply: leaf by leaf, twice)
        jax.block_until_ready(fn())
    _exec_fused.wait()  # and its group programs, which its background thread compiles (issue 26)
    benchmark(lambda: jax.block_until_ready(fn()))


# ---- jitted workloads: forward ------------------------------------------------------------

JITTED = ["mlp_fwd_float32", "mlp_fwd_bfloat16", "conv_tbhwc", "scan_inside", "attention"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", JITTED)
def test_jitted(benchmark: Any, scale: int, name: str, impl: str) -> None:
    f, n_batched, args = workload(name, scale)
    fn = jax.jit(implementation(impl, f, n_batched))
    run(benchmark, name, impl, lambda: fn(*args))


# ---- jitted workloads: gradient -----------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_mlp_grad(benchmark: Any, scale: int, dtype: str, impl: str) -> None:
    f, n_batched, args = workload(f"mlp_grad_{dtype}", scale)
    apply = implementation(impl, f, n_batched)

    def loss(x: jax.Array, w1: jax.Array, w2: jax.Array) -> jax.Array:
        return jnp.sum(apply(x, w1, w2).astype(jnp.float32) ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    run(benchmark, f"mlp_grad_{dtype}", impl, lambda: grad(*args))


# ---- chunked vs unchunked -----------------------------------------------------------------


@pytest.mark.parametrize("impl", [*IMPLS, "batchapply_chunk4096"])
def test_mlp_chunked(benchmark: Any, scale: int, impl: str) -> None:
    x = normal(1, (16, 1024 * scale, 64))  # 16384 rows at scale 1: 4 chunks
    args = [x, normal(2, (64, 512)) / 10, normal(3, (512, 64)) / 10]
    if impl == "batchapply_chunk4096":
        fn = jax.jit(implementation("batchapply", mlp, 1, chunk_size=4096))
    else:
        fn = jax.jit(implementation(impl, mlp, 1))
    run(benchmark, "mlp_chunk_4096", impl, lambda: fn(*args))


# ---- eager chunking (issue 17): one call of f per chunk, nothing of f compiled ---------------


def eager_chunked(impl: str, scale: int) -> tuple[Callable[[], Any], Any]:
    """``impl`` of ``tanh(x @ w)`` on x ``[64, 1024 * scale, 64]`` (16 chunks of 4096 rows at scale 1)."""
    x = normal(1, (64, 1024 * scale, 64))
    w = normal(2, (64, 64)) / 8

    def f(rows: jax.Array) -> jax.Array:
        return jnp.tanh(rows @ w)

    fn: Callable[[jax.Array], Any]
    if impl == "batchapply":  # eager, unchunked: the baseline of the targets
        fn = BatchApply(f)
    elif impl == "batchapply_chunk4096":  # eager, chunked
        fn = BatchApply(f, chunk_size=4096)
    elif impl == "jit_chunk4096":
        fn = jax.jit(BatchApply(f, chunk_size=4096))
    elif impl == "by_hand":  # eager hand-written reshape, unchunked
        fn = lambda x: f(x.reshape((-1,) + x.shape[2:])).reshape(x.shape[:2] + (-1,))  # noqa: E731
    else:
        raise ValueError(impl)
    return (lambda: fn(x)), x


EAGER_CHUNK_IMPLS = ["batchapply", "batchapply_chunk4096", "jit_chunk4096", "by_hand"]


@pytest.mark.parametrize("impl", EAGER_CHUNK_IMPLS)
def test_eager_chunked(benchmark: Any, scale: int, impl: str) -> None:
    """Steady state: the same call again (jax's per-primitive caches are warm)."""
    fn, _ = eager_chunked(impl, scale)
    run(benchmark, "eager_chunk_4096", impl, fn)


@pytest.mark.parametrize("impl", EAGER_CHUNK_IMPLS)
def test_eager_chunked_first_call(benchmark: Any, scale: int, impl: str) -> None:
    """First call: every round starts from jax.clear_caches(), so it compiles everything it runs."""
    fn, _ = eager_chunked(impl, scale)
    benchmark.group = "eager_chunk_4096_first"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(lambda: jax.block_until_ready(fn()), setup=jax.clear_caches, rounds=5, iterations=1)


# ---- eager, many leaves: O(1) dispatches --------------------------------------------------


def leaf_tree(n_leaves: int) -> dict[str, jax.Array]:
    return {f"k{i:04d}": jnp.full((4, 8, 16), i, jnp.float32) for i in range(n_leaves)}


def identity(tree: Any) -> Any:
    return tree


_merge_tree = jax.jit(
    lambda tree: jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), tree)
)
_split_tree = jax.jit(
    lambda tree, t: jax.tree.map(lambda x: x.reshape((t, -1) + x.shape[1:]), tree), static_argnums=1
)


def eager(impl: str) -> Callable[[Any], Any]:
    if impl == "batchapply":
        return BatchApply(identity)
    if impl == "flax":
        return nn.BatchApply(identity)
    if impl == "vmap":
        return jax.vmap(jax.vmap(identity))
    if impl == "by_hand":  # one eager reshape per leaf and direction
        return lambda tree: jax.tree.map(
            lambda x: x.reshape((4, 8) + x.shape[1:]),
            identity(jax.tree.map(lambda x: x.reshape((32,) + x.shape[2:]), tree)),
        )
    if impl == "floor":  # one jitted reshape of the whole input tree, one of the whole output tree
        return lambda tree: _split_tree(identity(_merge_tree(tree)), 4)
    raise ValueError(impl)


@pytest.mark.parametrize("impl", [*IMPLS, "floor"])
@pytest.mark.parametrize("n_leaves", [10, 100, 1000])
def test_eager_identity(benchmark: Any, n_leaves: int, impl: str) -> None:
    tree, fn = leaf_tree(n_leaves), eager(impl)
    run(benchmark, f"eager_identity_{n_leaves}", impl, lambda: fn(tree))


@pytest.mark.parametrize("impl", IMPLS)
def test_trace_identity_1000(benchmark: Any, impl: str) -> None:
    """Tracing cost (what a jit cache miss pays): make_jaxpr over 1000 leaves."""
    tree = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in leaf_tree(1000).items()}
    fn = eager(impl)
    run(benchmark, "trace_identity_1000", impl, lambda: jax.make_jaxpr(fn)(tree))


# ---- eager, no compile cliff (issue 12): first calls and new leading shapes -----------------


def clear_caches() -> None:
    """A fresh process, as far as compiles go: jax's caches and batchapply's signature table."""
    jax.clear_caches()  # clears batchapply's table too, through jax's cache registry
    _exec_fused._SIGNATURES.cache_clear()  # in case that private hook is gone


COLD_IMPLS = ["batchapply", "flax", "floor", "by_hand"]


def cold_leaf_counts() -> list[int]:
    counts = [1, 10, 100, 1000]
    return [*counts, 10000] if os.environ.get("BATCHAPPLY_BENCH_HUGE") else counts


@pytest.mark.parametrize("impl", COLD_IMPLS)
@pytest.mark.parametrize("n_leaves", cold_leaf_counts())
def test_eager_cold(benchmark: Any, n_leaves: int, impl: str) -> None:
    """(a) First call: every round starts from cleared caches, so it compiles all it runs."""
    tree, fn = leaf_tree(n_leaves), eager(impl)
    benchmark.group = f"eager_cold_{n_leaves}"
    benchmark.extra_info["impl"] = impl
    rounds = 5 if n_leaves <= 100 else 3 if n_leaves <= 1000 else 2
    benchmark.pedantic(
        lambda: jax.block_until_ready(fn(tree)), setup=clear_caches, rounds=rounds, iterations=1
    )


NEW_SHAPES = 200


def new_shape_trees(n_leaves: int) -> list[dict[str, jax.Array]]:
    """``NEW_SHAPES`` trees of ``n_leaves`` leaves ``(T, 2, 4)``, one tree per T = 1 .. 200."""
    return [
        {f"k{i:04d}": jax.device_put(np.full((t, 2, 4), i, np.float32)) for i in range(n_leaves)}
        for t in range(1, NEW_SHAPES + 1)
    ]


def eager_any(impl: str) -> Callable[[Any], Any]:
    """``eager(impl)`` for any leading shape (``by_hand`` reads it from the first leaf)."""
    if impl == "by_hand":

        def by_hand(tree: Any) -> Any:
            t, b = next(iter(tree.values())).shape[:2]
            merged = jax.tree.map(lambda x: x.reshape((t * b,) + x.shape[2:]), tree)
            return jax.tree.map(lambda x: x.reshape((t, b) + x.shape[1:]), identity(merged))

        return by_hand
    return eager(impl)


@pytest.mark.parametrize("impl", ["batchapply", "flax", "by_hand"])
@pytest.mark.parametrize("n_leaves", [10, 100])
def test_eager_new_shapes(benchmark: Any, n_leaves: int, impl: str) -> None:
    """(b) 200 calls, each with a leading shape not seen before (T = 1 .. 200), from cleared caches."""
    trees, fn = new_shape_trees(n_leaves), eager_any(impl)

    def calls() -> None:
        for tree in trees:
            jax.block_until_ready(fn(tree))

    benchmark.group = f"eager_new_shapes_{n_leaves}"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(calls, setup=clear_caches, rounds=3, iterations=1)


# ---- the nnx wrapper under nnx.jit (issue 26) --------------------------------------------


@pytest.mark.parametrize("impl", ["batchapply", "by_hand"])
def test_nnx_jit_linear(benchmark: Any, scale: int, impl: str) -> None:
    """A step of ``nnx.jit`` over a Linear on ``[T, B, F]``: the wrapper, or the hand-written reshape.

    The jitted programs are the same; what differs is nnx.jit's per-call walk of the module graph,
    which the wrapper makes one Module deeper.
    """
    from flax import nnx

    from batchapply.nnx import BatchApply as NnxBatchApply

    class Model(nnx.Module):
        def __init__(self, wrapped: bool) -> None:
            linear = nnx.Linear(64, 64, rngs=nnx.Rngs(0))
            self.layer = NnxBatchApply(linear) if wrapped else linear
            self.wrapped = wrapped

        def __call__(self, x: jax.Array) -> jax.Array:
            if self.wrapped:
                return self.layer(x)
            t, b = x.shape[:2]
            return self.layer(x.reshape((t * b,) + x.shape[2:])).reshape((t, b, -1))

    @nnx.jit
    def step(model: Model, x: jax.Array) -> jax.Array:
        return model(x)

    model, x = Model(impl == "batchapply"), normal(1, (8, 32 * scale, 64))
    run(benchmark, "nnx_jit_linear", impl, lambda: step(model, x))
