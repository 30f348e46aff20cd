"""Sonnet 2's ``snt.BatchApply`` (TensorFlow), as it treats structures and leaves.

Behaviour: ``tf.nest`` structures only (dicts, lists, tuples; a registered JAX pytree node
is one opaque leaf, passed through unmerged); the *first* leaf, of any rank, is the
leading-shape example; arrays of rank >= num_dims are reshaped to ``[-1] + trailing``,
everything else passes through; every output array is split by the example's
``shape[:num_dims]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchapply_conformance.adapters._tree import is_array, nest_leaves, nest_map


def BatchApply(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        example = nest_leaves((args, kwargs))[0]
        leading = tuple(example.shape[:num_dims])

        def merge(x: Any) -> Any:
            return x.reshape((-1, *x.shape[num_dims:])) if is_array(x) and x.ndim >= num_dims else x

        def split(y: Any) -> Any:
            return y.reshape(leading + y.shape[1:]) if is_array(y) else y

        merged_args, merged_kwargs = nest_map(merge, (args, kwargs))
        return nest_map(split, f(*merged_args, **merged_kwargs))

    return call
