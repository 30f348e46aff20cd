"""Small pytree helpers shared by the adapters."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import numpy as np


def is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("jax")


def nest_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    """Map over a tf.nest-like structure: dicts, lists, tuples, namedtuples (not JAX nodes)."""
    if isinstance(tree, collections.defaultdict):
        return collections.defaultdict(tree.default_factory, {k: nest_map(fn, v) for k, v in tree.items()})
    if isinstance(tree, dict):
        return type(tree)((k, nest_map(fn, v)) for k, v in tree.items())
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(nest_map(fn, v) for v in tree))
    if isinstance(tree, (list, tuple)):
        return type(tree)(nest_map(fn, v) for v in tree)
    return fn(tree)


def nest_leaves(tree: Any) -> list[Any]:
    found: list[Any] = []
    nest_map(found.append, tree)
    return found
