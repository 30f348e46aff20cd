"""A module whose ``split_leading_dim`` is Haiku's bare reshape (no E12, E13 or E29 checks), next
to a correct ``BatchApply``: the kit looks helpers up in the target's module (BA-9.2)."""

from __future__ import annotations

from typing import Any

from batchapply import BatchApply, arbitrary_mergeable_leaf, merge_leading_dims, ndim_at_least

__all__ = [
    "BatchApply",
    "arbitrary_mergeable_leaf",
    "merge_leading_dims",
    "ndim_at_least",
    "split_leading_dim",
]


def split_leading_dim(x: Any, to_dim: Any) -> Any:
    """``x.reshape(to_dim + x.shape[1:])``: whatever numpy says when it does not fit."""
    return x.reshape(tuple(to_dim) + tuple(x.shape[1:]))
