"""Haiku's ``hk.BatchApply`` as of dm-haiku 0.0.10 to 0.0.17 (flax.linen's is a copy).

Behaviour: a leaf counts when ``jnp.asarray(leaf).ndim >= num_dims`` (NumPy and JAX arrays
as they are); the first such leaf in args, then kwargs, gives the leading shape; every
such leaf is merged with its own ``.reshape`` (NumPy stays NumPy); every output leaf is
split with ``.reshape``. No check of ``f``, ``num_dims`` or of the leading shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def ndim_at_least(x: Any, num_dims: int) -> bool:
    if not isinstance(x, (jax.Array, np.ndarray)):
        x = jnp.asarray(x)
    return bool(x.ndim >= num_dims)


def arbitrary_mergeable_leaf(min_num_dims: int, args: Any, kwargs: Any) -> Any:
    candidates = [*jax.tree_util.tree_leaves(args), *jax.tree_util.tree_leaves(kwargs)]
    return next((leaf for leaf in candidates if ndim_at_least(leaf, min_num_dims)), None)


def merge_leading_dims(x: Any, num_dims: int) -> Any:
    if not ndim_at_least(x, num_dims):
        return x
    return x.reshape((np.prod(x.shape[:num_dims]), *x.shape[num_dims:]))


def split_leading_dim(x: Any, to_dim: tuple[int, ...]) -> Any:
    return x.reshape(tuple(to_dim) + x.shape[1:])


class BatchApply:
    # The module's helpers; haiku_early's port overrides them (its BatchApply is this class).
    _example = staticmethod(arbitrary_mergeable_leaf)
    _merge = staticmethod(merge_leading_dims)
    _split = staticmethod(split_leading_dim)

    def __init__(self, f: Callable[..., Any], num_dims: int = 2) -> None:
        self._f, self.num_dims = f, num_dims

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        example = self._example(self.num_dims, args, kwargs)
        if example is None:
            raise ValueError(f"BatchApply requires at least one input with ndim >= {self.num_dims}.")
        merged_args, merged_kwargs = jax.tree_util.tree_map(
            lambda x: self._merge(x, self.num_dims), (args, kwargs)
        )
        out = self._f(*merged_args, **merged_kwargs)
        return jax.tree_util.tree_map(lambda y: self._split(y, example.shape[: self.num_dims]), out)
