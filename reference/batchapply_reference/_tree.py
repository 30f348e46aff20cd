"""A small pytree walker for the reference: dict, list, tuple, namedtuple, None.

Written from scratch (no jax) so that the reference is an independent
derivation of SPEC.md, not a copy of the implementation. It models the
containers of SPEC BA-1.3 and nothing else: any other object is a leaf.

Paths are spelled as `jax.tree_util.keystr` spells them: ``[0]`` for a list or
tuple position, ``['key']`` for a dict key, ``.field`` for a namedtuple field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LeafFn = Callable[[str, Any, Any], Any]
"""Called as ``fn(path, leaf, axis)``; its result replaces the leaf."""


class PrefixError(ValueError):
    """Raised when an axes tree is not a pytree prefix of the value tree."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"at {path}: {detail}")
        self.path = path
        self.detail = detail


def is_namedtuple(tree: object) -> bool:
    return isinstance(tree, tuple) and hasattr(type(tree), "_fields")


def _children(tree: Any) -> list[tuple[str, Any]] | None:
    """The (path suffix, child) pairs of a container, in leaf order; None for a leaf."""
    if tree is None:
        return []
    if type(tree) is dict:
        return [(f"[{key!r}]", tree[key]) for key in sorted(tree)]
    if is_namedtuple(tree):
        return [(f".{name}", getattr(tree, name)) for name in type(tree)._fields]
    if type(tree) in (list, tuple):
        return [(f"[{i}]", child) for i, child in enumerate(tree)]
    return None


def _rebuild(tree: Any, new_children: list[Any]) -> Any:
    """A container of the same type as ``tree`` holding ``new_children``."""
    if tree is None:
        return None
    if type(tree) is dict:
        by_key = dict(zip(sorted(tree), new_children, strict=True))
        return {key: by_key[key] for key in tree}  # keep the caller's key order
    if is_namedtuple(tree):
        return type(tree)(*new_children)
    return type(tree)(new_children)


def _axis_children(axes: Any, tree: Any, path: str) -> list[Any]:
    """The children of the axes container that match ``tree``'s children."""
    if type(axes) is not type(tree):
        raise PrefixError(
            path, f"the axes have type {type(axes).__name__}, the value has type {type(tree).__name__}"
        )
    if type(tree) is dict:
        if set(axes) != set(tree):
            raise PrefixError(path, f"the axes have keys {sorted(axes)}, the value has keys {sorted(tree)}")
        return [axes[key] for key in sorted(tree)]
    if len(axes) != len(tree):
        raise PrefixError(path, f"the axes have {len(axes)} entries, the value has {len(tree)}")
    return list(axes)


def map_leaves(fn: LeafFn, tree: Any, axes: Any, path: str) -> Any:
    """Rebuild ``tree`` with every leaf replaced by ``fn(path, leaf, axis)``.

    ``axes`` is a pytree prefix of ``tree`` whose leaves are axis values
    (``None`` counts as a leaf of ``axes``); each applies to the whole subtree
    it stands over. Leaves are visited in leaf order (SPEC BA-1.3).
    """
    children = _children(tree)
    if axes is None or _children(axes) is None:  # a leaf of the axes tree
        if children is None:
            return fn(path, tree, axes)
        return _rebuild(tree, [map_leaves(fn, child, axes, path + key) for key, child in children])
    if children is None:
        raise PrefixError(path, f"the axes are a {type(axes).__name__}, the value is a leaf")
    axis_children = _axis_children(axes, tree, path)
    return _rebuild(
        tree,
        [
            map_leaves(fn, child, axis, path + key)
            for (key, child), axis in zip(children, axis_children, strict=True)
        ],
    )


def leaves_with_paths(tree: Any, axes: Any, path: str) -> list[tuple[str, Any, Any]]:
    """The ``(path, leaf, axis)`` triples of ``tree`` in leaf order."""
    found: list[tuple[str, Any, Any]] = []

    def record(leaf_path: str, leaf: Any, axis: Any) -> Any:
        found.append((leaf_path, leaf, axis))
        return leaf

    map_leaves(record, tree, axes, path)
    return found


def axis_leaves(axes: Any) -> list[Any]:
    """Every leaf of an axes tree (``None`` is a leaf), in leaf order."""
    children = _children(axes)
    if axes is None or children is None:
        return [axes]
    return [leaf for _, child in children for leaf in axis_leaves(child)]


def structure(tree: Any) -> Any:
    """A comparable description of ``tree``'s containers, with every leaf as ``"*"``."""
    children = _children(tree)
    if children is None:
        return "*"
    kind = sorted(tree) if type(tree) is dict else type(tree)
    return (kind, [structure(child) for _, child in children])
