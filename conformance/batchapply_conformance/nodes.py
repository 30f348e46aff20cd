"""Custom pytree node types registered in JAX and in the reference alike (SPEC BA-1.3).

Importing this module registers every type of :data:`NODE_TYPES` with JAX (as a
user would) and with ``batchapply_reference.register_node`` (same children, same
order, same paths, same node data), so that a differential test can pass them to
both packages. Each type takes its two children positionally, ``cls(a, b)``, and
has one non-child field (node data) with a default:

- :class:`DataclassNode`: ``jax.tree_util.register_dataclass``, fields ``.a``, ``.b``,
  meta field ``tag``;
- :class:`StructNode`: ``flax.struct.dataclass``, fields ``.a``, ``.b``, meta field
  ``name`` (only when flax is installed);
- :class:`KeyedNode`: ``jax.tree_util.register_pytree_with_keys``, children
  ``.a`` and ``['b']``, node data ``tag``.

:func:`register_in_both` registers one more type the same way. Needs jax (and
flax for :class:`StructNode`).

>>> import jax, numpy as np
>>> import batchapply_reference as ref
>>> out = ref.BatchApply(lambda n: n)(KeyedNode(np.zeros((2, 3)), np.ones((2, 3, 4))))
>>> type(out).__name__, out.b.shape
('KeyedNode', (2, 3, 4))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import jax

import batchapply_reference

KeyEntry = Any  # a jax.tree_util key: GetAttrKey, DictKey, SequenceKey, ...


def register_in_both(
    cls: type,
    flatten_with_keys: Callable[[Any], tuple[Iterable[tuple[KeyEntry, Any]], Any]],
    unflatten: Callable[[Any, Iterable[Any]], Any],
) -> None:
    """Register ``cls`` with ``jax.tree_util.register_pytree_with_keys`` and with the reference.

    The reference gets each child's path suffix as ``jax.tree_util.keystr`` writes its key.
    """
    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
    register_in_reference(cls, flatten_with_keys, unflatten)


def register_in_reference(
    cls: type,
    flatten_with_keys: Callable[[Any], tuple[Iterable[tuple[KeyEntry, Any]], Any]],
    unflatten: Callable[[Any, Iterable[Any]], Any],
) -> None:
    """Register with the reference a type whose JAX ``flatten_with_keys`` is known."""

    def flatten(node: Any) -> tuple[list[tuple[str, Any]], Any]:
        pairs, aux = flatten_with_keys(node)
        return [(jax.tree_util.keystr((key,)), child) for key, child in pairs], aux

    batchapply_reference.register_node(cls, flatten, unflatten)


def register_dataclass_in_reference(cls: type, data_fields: list[str], meta_fields: list[str]) -> None:
    """Register with the reference a dataclass that JAX flattens into ``data_fields`` (``.name`` paths)."""

    def flatten(node: Any) -> tuple[list[tuple[str, Any]], Any]:
        return [(f".{name}", getattr(node, name)) for name in data_fields], tuple(
            getattr(node, name) for name in meta_fields
        )

    def unflatten(aux: Any, children: Iterable[Any]) -> Any:
        return cls(
            **dict(zip(data_fields, children, strict=True)), **dict(zip(meta_fields, aux, strict=True))
        )

    batchapply_reference.register_node(cls, flatten, unflatten)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(eq=False)
class DataclassNode:
    """``jax.tree_util.register_dataclass``: children ``.a``, ``.b``; ``tag`` is node data."""

    a: Any
    b: Any
    tag: str = dataclasses.field(default="node", metadata={"static": True})


register_dataclass_in_reference(DataclassNode, ["a", "b"], ["tag"])


class KeyedNode:
    """``jax.tree_util.register_pytree_with_keys``: children ``.a`` and ``['b']``; ``tag`` is node data."""

    def __init__(self, a: Any, b: Any, tag: Any = "keyed") -> None:
        self.a, self.b, self.tag = a, b, tag

    def __repr__(self) -> str:
        return f"KeyedNode({self.a!r}, {self.b!r}, tag={self.tag!r})"


def _keyed_flatten(node: KeyedNode) -> tuple[list[tuple[KeyEntry, Any]], Any]:
    return [(jax.tree_util.GetAttrKey("a"), node.a), (jax.tree_util.DictKey("b"), node.b)], node.tag


def _keyed_unflatten(tag: Any, children: Iterable[Any]) -> KeyedNode:
    a, b = children
    return KeyedNode(a, b, tag)


register_in_both(KeyedNode, _keyed_flatten, _keyed_unflatten)


class Ambiguous:
    """Node data that hashes, but whose ``==`` gives an array, which has no truth value: jax's
    comparison of two tree structures holding it raises ``ValueError``, unless it meets the
    very same object. ``KeyedNode(a, b, Ambiguous())`` is a valid pytree all the same.

    >>> import jax
    >>> same = Ambiguous()
    >>> jax.tree.structure(KeyedNode(1, 2, same)) == jax.tree.structure(KeyedNode(1, 2, same))
    True
    """

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> Any:
        import numpy as np

        return np.array([True, False])


NODE_TYPES: tuple[type, ...] = (DataclassNode, KeyedNode)
"""The registered node types; each is built as ``cls(a, b)``."""

try:
    import flax.struct
except ImportError:  # pragma: no cover - flax is an optional extra
    pass
else:

    @flax.struct.dataclass
    class StructNode:
        """``flax.struct.dataclass``: children ``.a``, ``.b``; ``name`` is node data."""

        a: Any
        b: Any
        name: str = flax.struct.field(pytree_node=False, default="struct")

    register_dataclass_in_reference(StructNode, ["a", "b"], ["name"])
    NODE_TYPES += (StructNode,)
