"""Haiku's ``hk.BatchApply`` as of dm-haiku 0.0.1 to 0.0.9.

As :mod:`.haiku`, except that only ``jnp.ndarray`` skips the conversion, and merges and
splits go through ``jnp.reshape``: a NumPy input reaches ``f`` as a ``jax.Array`` on the
device, and NumPy outputs come back as ``jax.Array``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from batchapply_conformance.adapters import haiku


def ndim_at_least(x: Any, num_dims: int) -> bool:
    if not isinstance(x, jax.Array):
        x = jnp.asarray(x)
    return bool(x.ndim >= num_dims)


def arbitrary_mergeable_leaf(min_num_dims: int, args: Any, kwargs: Any) -> Any:
    candidates = [*jax.tree_util.tree_leaves(args), *jax.tree_util.tree_leaves(kwargs)]
    return next((leaf for leaf in candidates if ndim_at_least(leaf, min_num_dims)), None)


def merge_leading_dims(x: Any, num_dims: int) -> Any:
    if not ndim_at_least(x, num_dims):
        return x
    return jnp.reshape(x, (np.prod(x.shape[:num_dims]), *x.shape[num_dims:]))


def split_leading_dim(x: Any, to_dim: tuple[int, ...]) -> Any:
    return jnp.reshape(x, tuple(to_dim) + x.shape[1:])


class BatchApply(haiku.BatchApply):
    _example = staticmethod(arbitrary_mergeable_leaf)
    _merge = staticmethod(merge_leading_dims)
    _split = staticmethod(split_leading_dim)
