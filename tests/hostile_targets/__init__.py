"""Targets that crash, hang or grow without bound, for the kit's isolation tests (tiny: each
misbehaves on one input only, so that a run on a few clauses stays cheap)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, (list, tuple)):
        return [leaf for child in tree for leaf in _leaves(child)]
    if isinstance(tree, dict):
        return [leaf for child in tree.values() for leaf in _leaves(child)]
    return [tree]


def _misbehaving(when: Callable[[Any], bool], then: Callable[[], None]) -> Callable[..., Any]:
    def make(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
        import batchapply

        apply = batchapply.BatchApply(f, num_dims)

        def call(*args: Any, **kwargs: Any) -> Any:
            if any(when(leaf) for leaf in _leaves((args, kwargs))):
                then()
            return apply(*args, **kwargs)

        return call

    return make


def _no_rows(leaf: Any) -> bool:
    """The golden case rows-without-elements-65536x65536x0 (and its 1024x1024 twin)."""
    return isinstance(leaf, np.ndarray) and leaf.ndim == 3 and leaf.shape[0] >= 1024 and leaf.size == 0


def _grow() -> None:
    """Touch 14 GB, 64 MiB at a time (np.zeros alone would only reserve it)."""
    blocks = []
    for _ in range(14 * 2**30 // 2**26):
        blocks.append(np.ones(2**26, np.uint8))


def _hang() -> None:
    time.sleep(3600)


aborts_without_rows = _misbehaving(_no_rows, os.abort)
"""Aborts (SIGABRT, as a C++ ``std::bad_alloc`` does) on a leaf without elements."""

hangs_without_rows = _misbehaving(_no_rows, _hang)
grows_without_rows = _misbehaving(_no_rows, _grow)


def hangs_at_construction(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    _hang()
    raise AssertionError("unreachable")


def aborts_at_construction(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    os.abort()


def raises_at_construction(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    raise AttributeError("module 'jax' has no attribute 'tree_multimap'")
