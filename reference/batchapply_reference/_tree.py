"""A small pytree walker for the reference: the containers of SPEC BA-1.3.

Written from scratch (no jax) so that the reference is an independent
derivation of SPEC.md, not a copy of the implementation. It models the
built-in containers of BA-1.3 (dict, ``collections.OrderedDict``,
``collections.defaultdict``, list, tuple, namedtuple, None) and the custom
nodes registered with :func:`register_node`. Any other type that JAX's pytree
registry holds (``register_dataclass``, ``jax.tree_util.Partial``,
``flax.core.FrozenDict``) is opened one level at a time by the flatten of the
``jax`` module already loaded: such a type exists only once jax is (BA-1.3).
Any other object is a leaf.

Paths are spelled as `jax.tree_util.keystr` spells them: ``[0]`` for a list or
tuple position, ``['key']`` for a dict key, ``.field`` for a namedtuple field;
a custom node gives the path suffix of each child itself.

The walks keep their own stack instead of recursing, so that a container
nested thousands deep raises no ``RecursionError`` (SPEC BA-1.5).
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

LeafFn = Callable[[str, Any, Any], Any]
"""Called as ``fn(path, leaf, axis)``; its result replaces the leaf."""

Flatten = Callable[[Any], tuple[Iterable[tuple[str, Any]], Any]]
Unflatten = Callable[[Any, list[Any]], Any]

_NODES: dict[type, tuple[Flatten, Unflatten]] = {}


def register_node(cls: type, flatten: Flatten, unflatten: Unflatten) -> None:
    """Make instances of ``cls`` containers of the reference (SPEC BA-1.3).

    The reference never imports jax, so a type registered with JAX
    (``jax.tree_util.register_pytree_with_keys``, ``register_dataclass``,
    ``flax.struct.dataclass``) is registered here too, with the same children
    in the same order (``batchapply_conformance.nodes`` does both).

    Args:
        cls: the node type (exact type: subclasses are not nodes, as in JAX).
        flatten: ``flatten(node) -> (pairs, aux)``: ``pairs`` lists ``(key, child)``
            in leaf order, ``key`` the child's path suffix as ``jax.tree_util.keystr``
            writes it (``".w"``, ``"['w']"``, ``"[0]"``); ``aux`` is the node data
            that is not a child (compared with ``==``, as JAX's treedefs are).
        unflatten: ``unflatten(aux, children) -> node``.

    >>> class Pair:
    ...     def __init__(self, a, b):
    ...         self.a, self.b = a, b
    >>> register_node(Pair, lambda p: ([(".a", p.a), (".b", p.b)], None), lambda aux, c: Pair(*c))
    >>> [path for path, _, _ in leaves_with_paths(Pair(1, 2), 0, "x")]
    ['x.a', 'x.b']
    """
    _NODES[cls] = (flatten, unflatten)


class PrefixError(ValueError):
    """Raised when an axes tree is not a pytree prefix of the value tree."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"at {path}: {detail}")
        self.path = path
        self.detail = detail


def is_namedtuple(tree: object) -> bool:
    return isinstance(tree, tuple) and hasattr(type(tree), "_fields")


def _sorted_keys(tree: dict[Any, Any]) -> list[Any]:
    """Python's stable sort: keys that do not compare keep insertion order, as in JAX (BA-1.3)."""
    return sorted(tree)


def _jax_node(tree: Any) -> tuple[Any, list[tuple[str, Any]]] | None:
    """JAX's one-level flatten of ``tree``: its treedef and ``(keystr, child)`` pairs; None for
    a leaf of JAX's registry, or when jax is not loaded (BA-1.3)."""
    jax = sys.modules.get("jax")
    if jax is None or _is_plain_leaf(tree):
        return None
    tree_util = jax.tree_util
    pairs, treedef = tree_util.tree_flatten_with_path(tree, is_leaf=lambda child: child is not tree)
    if tree_util.treedef_is_leaf(treedef):
        return None
    return treedef, [(tree_util.keystr(path), child) for path, child in pairs]


def _is_plain_leaf(x: object) -> bool:
    """Leaves that no registry opens: arrays, scalars, strings (a shortcut, no jax call)."""
    if isinstance(x, (int, float, complex, str, bytes, np.ndarray, np.generic)):
        return True
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.Array)


def _open(tree: Any) -> tuple[Any, list[tuple[str, Any]]] | None:
    """A container's node data and its ``(path suffix, child)`` pairs in leaf order; None for a leaf.

    Two containers match (as pytree prefixes, and for E17's structure) exactly
    when their node data are equal: the type, and what is not a child (dict keys,
    a namedtuple's class, a custom node's ``aux``), as in JAX's treedefs.
    """
    kind = type(tree)
    if tree is None:
        return (kind,), []
    if kind is dict:  # sorted keys (BA-1.3)
        keys = _sorted_keys(tree)
        return (kind, tuple(keys)), [(f"[{key!r}]", tree[key]) for key in keys]
    if kind is collections.OrderedDict:  # insertion order, as JAX
        return (kind, tuple(tree)), [(f"[{key!r}]", child) for key, child in tree.items()]
    if kind is collections.defaultdict:  # sorted keys, as JAX; the factory is node data
        keys = _sorted_keys(tree)
        return (kind, tree.default_factory, tuple(keys)), [(f"[{key!r}]", tree[key]) for key in keys]
    if is_namedtuple(tree):
        return (kind,), [(f".{name}", getattr(tree, name)) for name in kind._fields]
    if kind in (list, tuple):
        return (kind, len(tree)), [(f"[{i}]", child) for i, child in enumerate(tree)]
    if kind in _NODES:
        pairs, aux = _NODES[kind][0](tree)
        pairs = list(pairs)
        return (kind, aux, len(pairs)), pairs
    opened = _jax_node(tree)  # registered with JAX only: JAX's children, keys and aux (BA-1.3)
    if opened is not None:
        return (kind, opened[0]), opened[1]
    return None


def children(tree: Any) -> list[tuple[str, Any]] | None:
    """The ``(path suffix, child)`` pairs of a container in leaf order; None for a leaf (BA-1.3)."""
    opened = _open(tree)
    return None if opened is None else opened[1]


def _rebuild(tree: Any, data: Any, new_children: list[Any]) -> Any:
    """A container like ``tree`` (node data ``data``) holding ``new_children``."""
    kind = type(tree)
    if tree is None:
        return None
    if kind in (dict, collections.defaultdict):
        rebuilt = dict(zip(data[-1], new_children, strict=True))  # sorted key order (BA-7.6)
        return rebuilt if kind is dict else collections.defaultdict(tree.default_factory, rebuilt)
    if kind is collections.OrderedDict:
        return collections.OrderedDict(zip(tree, new_children, strict=True))
    if is_namedtuple(tree):
        return kind(*new_children)
    if kind in (list, tuple):
        return kind(new_children)
    if kind in _NODES:
        return _NODES[kind][1](data[1], new_children)
    return data[1].unflatten(new_children)  # JAX's treedef of one level (BA-1.3)


def _axis_children(axes: Any, tree: Any, path: str) -> list[Any]:
    """The children of the axes container that match ``tree``'s children (BA-4.4)."""
    if type(axes) is not type(tree):
        raise PrefixError(
            path, f"the axes have type {type(axes).__name__}, the value has type {type(tree).__name__}"
        )
    axes_data, axes_pairs = _open(axes) or ((), [])
    tree_data, _ = _open(tree) or ((), [])
    if type(tree) is dict:  # the same keys in the same sorted order, as JAX's treedefs (BA-1.3)
        if _sorted_keys(axes) != _sorted_keys(tree):
            raise PrefixError(
                path, f"the axes have keys {_sorted_keys(axes)}, the value has keys {_sorted_keys(tree)}"
            )
    elif type(tree) in (list, tuple) and len(axes) != len(tree):
        raise PrefixError(path, f"the axes have {len(axes)} entries, the value has {len(tree)}")
    elif axes_data != tree_data:
        raise PrefixError(
            path,
            f"the axes have node data {axes_data[1:]}, the value has {tree_data[1:]} (keys, fields, aux)",
        )
    return [child for _, child in axes_pairs]


class _Open:
    """A container being rebuilt: the children still to visit and those rebuilt so far."""

    def __init__(self, tree: Any, data: Any, todo: list[tuple[str, Any, Any]]) -> None:
        self.tree, self.data, self.todo = tree, data, iter(todo)
        self.done: list[Any] = []


def map_leaves(fn: LeafFn, tree: Any, axes: Any, path: str) -> Any:
    """Rebuild ``tree`` with every leaf replaced by ``fn(path, leaf, axis)``.

    ``axes`` is a pytree prefix of ``tree`` whose leaves are axis values
    (``None`` counts as a leaf of ``axes``); each applies to the whole subtree
    it stands over. Leaves are visited in leaf order (SPEC BA-1.3). A depth-first
    walk with its own stack: the top entry is the container being visited.
    """
    root = _Open(None, None, [(path, tree, axes)])
    stack = [root]
    while stack:
        top = stack[-1]
        item = next(top.todo, None)
        if item is None:  # every child of ``top`` is rebuilt: rebuild ``top`` itself
            stack.pop()
            if stack:
                stack[-1].done.append(_rebuild(top.tree, top.data, top.done))
            continue
        node_path, node, node_axes = item
        opened = _open(node)
        if node_axes is None or _open(node_axes) is None:  # a leaf of the axes tree
            if opened is None:
                top.done.append(fn(node_path, node, node_axes))
                continue
            todo = [(node_path + key, child, node_axes) for key, child in opened[1]]
        else:
            if opened is None:
                raise PrefixError(
                    node_path, f"the axes are a {type(node_axes).__name__}, the value is a leaf"
                )
            axis_children = _axis_children(node_axes, node, node_path)
            todo = [
                (node_path + key, child, axis)
                for (key, child), axis in zip(opened[1], axis_children, strict=True)
            ]
        stack.append(_Open(node, opened[0], todo))
    return root.done[0]


def leaves_with_paths(tree: Any, axes: Any, path: str) -> list[tuple[str, Any, Any]]:
    """The ``(path, leaf, axis)`` triples of ``tree`` in leaf order."""
    found: list[tuple[str, Any, Any]] = []

    def record(leaf_path: str, leaf: Any, axis: Any) -> Any:
        found.append((leaf_path, leaf, axis))
        return leaf

    map_leaves(record, tree, axes, path)
    return found


def _preorder(tree: Any, none_is_leaf: bool) -> list[tuple[Any, Any]]:
    """Every ``(node data or None, node)`` of ``tree``, parents before children, in leaf order."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        opened = None if (node is None and none_is_leaf) else _open(node)
        found.append((None if opened is None else opened[0], node))
        if opened is not None:
            stack.extend(reversed([child for _, child in opened[1]]))
    return found


def axis_leaves(axes: Any) -> list[Any]:
    """Every leaf of an axes tree (``None`` is a leaf), in leaf order."""
    return [node for data, node in _preorder(axes, none_is_leaf=True) if data is None]


def structure(tree: Any) -> Any:
    """A comparable description of ``tree``'s containers, with every leaf as ``"*"``."""
    return ["*" if data is None else data for data, _ in _preorder(tree, none_is_leaf=False)]
