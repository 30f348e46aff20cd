"""A BatchApply on the ``merge_leading_dims`` helper that Stoix and Mava share.

Behaviour: every leaf is reshaped to ``(-1,) + x.shape[num_dims:]`` (no check of rank or
type); the leading shape is that of the first leaf; outputs are reshaped back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def merge_leading_dims(x: Any, num_dims: int) -> Any:
    return x.reshape((-1, *x.shape[num_dims:]))


def BatchApply(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        leading = jax.tree_util.tree_leaves((args, kwargs))[0].shape[:num_dims]
        merged_args, merged_kwargs = jax.tree_util.tree_map(
            lambda x: merge_leading_dims(x, num_dims), (args, kwargs)
        )
        out = f(*merged_args, **merged_kwargs)
        return jax.tree_util.tree_map(lambda y: y.reshape(leading + y.shape[1:]), out)

    return call
