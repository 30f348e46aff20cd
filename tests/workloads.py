"""Functions written for a ``[Batch, ...]`` leading dim, shared by the HLO-identity tests
(tests/test_zero_overhead.py) and the benchmarks (benchmarks/test_benchmarks.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def mlp(x: jax.Array, w1: jax.Array, w2: jax.Array) -> jax.Array:
    return jnp.tanh(x @ w1) @ w2


def conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 3x3 'SAME' convolution on [N, H, W, C]."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Single-head softmax attention on [N, L, D]."""
    scores = jnp.einsum("nqd,nkd->nqk", q, k) / np.sqrt(q.shape[-1])
    return jnp.einsum("nqk,nkd->nqd", jax.nn.softmax(scores, axis=-1), v)


def rnn(x: jax.Array, w: jax.Array) -> jax.Array:
    """A function with lax.scan inside: an RNN over axis 1 of [N, S, F]."""

    def step(h: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.tanh(h @ w + x_t)
        return h, h

    _, hs = jax.lax.scan(step, jnp.zeros_like(x[:, 0]), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(hs, 0, 1)
