"""Pytree utilities: flatten with E27's diagnosis (BA-1.3, BA-1.7), and axes broadcast to leaves."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
from collections.abc import Callable
from typing import Any

from jax import tree_util

from batchapply import _errors


def is_axis_leaf(x: Any) -> bool:
    return x is None


def broadcast_axes(axes: Any, tree: Any) -> list[Any]:
    """The axis of every leaf of ``tree``, from ``axes``, a pytree prefix of it.

    Raises ValueError (jax's message) when ``axes`` is not a prefix of ``tree``.
    """
    axes_def: Any  # jax's stubs do not declare flatten_up_to / num_leaves
    axis_leaves, axes_def = tree_util.tree_flatten(axes, is_leaf=is_axis_leaf)
    subtrees = axes_def.flatten_up_to(tree)
    return [
        axis
        for axis, subtree in zip(axis_leaves, subtrees, strict=True)
        for _ in range(len(tree_util.tree_leaves(subtree)))
    ]


def axis_leaves(axes: Any, name: str) -> list[Any]:
    """The leaves of an axes tree (None is a leaf); E27 first (BA-10.3)."""
    try:
        return tree_util.tree_leaves(axes, is_leaf=is_axis_leaf)
    except (TypeError, ValueError) as e:
        raise_if_unsortable(axes, name, e, 0)
        raise


def flatten(tree: Any, roots: tuple[Any, ...], names: tuple[str, ...]) -> tuple[list[Any], Any]:
    """``tree_flatten(tree)``; E27 when a dict in it has keys that cannot be sorted (BA-1.3).

    ``roots`` are the parts of ``tree`` named ``names`` in paths (``args``, ``kwargs``, ``output``).
    """
    try:
        return tree_util.tree_flatten(tree)
    except (TypeError, ValueError) as e:
        above = 0 if len(roots) == 1 and roots[0] is tree else 1  # containers above each root
        for root, name in zip(roots, names, strict=True):
            raise_if_unsortable(root, name, e, above)
        raise


def raise_if_unsortable(tree: Any, root: str, error: Exception | None = None, above: int = 0) -> None:
    """E27 (BA-1.7) for the first dict in ``tree`` (leaf order) whose keys cannot be sorted.

    ``error``: what jax's flatten raised on a tree holding ``tree`` under ``above`` containers;
    its failed sort cost the recursion budget one level per container above the dict, which
    is given back here (``_give_back_recursion``), so that the process stays usable (BA-1.5).
    """
    found = _unsortable_dict(tree, root)
    if found is not None:
        path, keys, depth = found
        if error is not None and "Comparator raised exception" in str(error):
            _give_back_recursion(above + depth)
        raise _errors.dict_keys(path, keys) from None


def _unsortable_dict(tree: Any, path: str) -> tuple[str, list[Any], int] | None:
    """The path, keys and depth (containers above it) of the first dict in ``tree`` (leaf order)
    whose keys cannot be sorted, or None.

    A walk with its own stack, one level of jax's flatten at a time: no Python recursion, so
    a dict 500 levels deep raises E27, not ``RecursionError`` (BA-1.5).
    """
    stack = [(path, tree, 0)]
    while stack:
        where, node, depth = stack.pop()
        if type(node) in (dict, collections.defaultdict):
            try:
                sorted(node)
            except TypeError:
                return where, list(node), depth
        try:  # one level: the children of this node
            children = tree_util.tree_flatten_with_path(node, is_leaf=lambda x, node=node: x is not node)[0]
        except (TypeError, ValueError):
            continue
        if len(children) == 1 and children[0][0] == ():  # a leaf
            continue
        stack.extend((where + tree_util.keystr(key), child, depth + 1) for key, child in reversed(children))
    return None


def _recursion_headroom() -> int:
    """How many more Python frames this one could nest before ``RecursionError``."""
    depth = [0]

    def deeper() -> None:
        depth[0] += 1
        deeper()

    with contextlib.suppress(RecursionError):
        deeper()
    return depth[0]


@functools.cache
def _flatten_leaks_recursion() -> bool:
    """Whether jax's flatten, failing to sort a dict's keys, leaks one level of the recursion
    budget per container above the dict (jaxlib 0.10.2 does: after a few such errors every
    deep flatten, then every deep Python call, fails). Measured once, on a dict one level down."""
    before = _recursion_headroom()
    with contextlib.suppress(TypeError, ValueError):
        tree_util.tree_flatten([{1: 0, "a": 0}])
    leaked = before - _recursion_headroom()
    _leave_recursive_calls(leaked)
    return leaked == 1


def _leave_recursive_calls(count: int) -> None:
    leave: Callable[[], None] | None = getattr(ctypes.pythonapi, "Py_LeaveRecursiveCall", None)
    if leave is not None:
        for _ in range(count):
            leave()


def _give_back_recursion(levels: int) -> None:
    """Give back what a failed sort in jax's flatten took from the recursion budget (N1)."""
    if _flatten_leaks_recursion():
        _leave_recursive_calls(levels)
