"""A BatchApply built on nested ``jax.vmap``, as found in several codebases.

``f`` is vmapped once per leading dimension over every input leaf (axis 0): it is traced
on one row, never sees the merged batch, and every leaf must be a JAX-compatible array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def BatchApply(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    g = f
    for _ in range(num_dims):
        g = jax.vmap(g)
    return g
