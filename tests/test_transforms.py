"""SPEC section 8: batchapply.BatchApply under JAX transformations (the reference is NumPy-only)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from batchapply import BatchApply

KEY = jax.random.key(0)
W1 = jax.random.normal(jax.random.fold_in(KEY, 1), (4, 8))
W2 = jax.random.normal(jax.random.fold_in(KEY, 2), (8, 3))
X = jax.random.normal(jax.random.fold_in(KEY, 3), (5, 7, 4))


def mlp(x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ W1) @ W2


def by_hand(x: jax.Array) -> jax.Array:
    """The hand-written reshape that BatchApply replaces."""
    t, b = x.shape[:2]
    return mlp(x.reshape(t * b, *x.shape[2:])).reshape(t, b, -1)


@pytest.mark.spec("BA-8.1")
def test_jit() -> None:
    eager = BatchApply(mlp)(X)
    jitted = jax.jit(BatchApply(mlp))(X)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jitted, by_hand(X), rtol=1e-6, atol=1e-6)


@pytest.mark.spec("BA-8.2")
def test_grad_matches_the_hand_written_reshape() -> None:
    def loss(w: jax.Array, through: Any) -> jax.Array:
        return jnp.sum(through(lambda x: jnp.sin(x @ w))(X) ** 2)

    def hand(g: Any) -> Any:
        return lambda x: g(x.reshape(35, 4)).reshape(5, 7, -1)

    got = jax.grad(loss)(W1, lambda g: BatchApply(g))
    want = jax.grad(loss)(W1, hand)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-8.2")
def test_vjp() -> None:
    out, pullback = jax.vjp(BatchApply(mlp), X)
    cotangent = jnp.ones_like(out)
    (got,) = pullback(cotangent)
    _, hand_pullback = jax.vjp(by_hand, X)
    (want,) = hand_pullback(cotangent)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-8.3")
def test_inside_an_outer_vmap() -> None:
    xs = jnp.stack([X, X * 2, X - 1])
    got = jax.vmap(BatchApply(mlp))(xs)
    want = jnp.stack([by_hand(x) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-8.4")
def test_inside_scan() -> None:
    def body(carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        y = BatchApply(mlp, num_dims=1)(x)  # x: [B, F] per step, as in an RNN body
        return carry + y.sum(), y

    total, ys = jax.lax.scan(body, jnp.zeros(()), X)
    np.testing.assert_allclose(ys, by_hand(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total, by_hand(X).sum(), rtol=1e-4)


@pytest.mark.spec("BA-8.5")
def test_under_checkpoint() -> None:
    def loss(x: jax.Array) -> jax.Array:
        return jnp.sum(jax.checkpoint(BatchApply(mlp))(x))

    np.testing.assert_allclose(jax.grad(loss)(X), jax.grad(lambda x: jnp.sum(by_hand(x)))(X), rtol=1e-5)


@pytest.mark.spec("BA-8.6")
def test_export_with_symbolic_leading_dims() -> None:
    spec = jax.ShapeDtypeStruct(export.symbolic_shape("t, b, 4"), jnp.float32)
    exported = export.export(jax.jit(BatchApply(mlp)))(spec)
    assert str(exported.out_avals[0].shape) == "(t, b, 3)"
    np.testing.assert_allclose(exported.call(X), by_hand(X), rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-8.6", "BA-3.2")
def test_export_checks_symbolic_leading_shapes() -> None:
    t, b = export.symbolic_shape("t, b")
    time_major = jax.ShapeDtypeStruct((t, b, 4), jnp.float32)
    batch_major = jax.ShapeDtypeStruct((b, t, 4), jnp.float32)
    with pytest.raises(ValueError, match="disagree on their leading shape"):
        export.export(jax.jit(BatchApply(lambda p, q: p + q)))(time_major, batch_major)
