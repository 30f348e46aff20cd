"""Deliberately broken BatchApply factories, for the conformance kit's own tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from jax import tree_util


def fortran_order(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    """Merges and splits in Fortran order: wrong wherever rows are told apart (BA-5.1, BA-7.2)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        leaves = tree_util.tree_leaves((args, kwargs))
        first = next(x for x in leaves if isinstance(x, np.ndarray) and x.ndim >= num_dims)
        leading = first.shape[:num_dims]

        def merge(x: Any) -> Any:
            if isinstance(x, np.ndarray) and x.ndim >= num_dims:
                return x.reshape((math.prod(leading),) + x.shape[num_dims:], order="F")
            return x

        def split(y: Any) -> Any:
            return y.reshape(leading + y.shape[1:], order="F") if isinstance(y, np.ndarray) else y

        out = f(*tree_util.tree_map(merge, args), **tree_util.tree_map(merge, kwargs))
        return tree_util.tree_map(split, out)

    return call
