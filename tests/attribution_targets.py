"""One-fault targets for the kit's attribution rule (docs/conformance.md): each breaks one
property, in a way that golden cases combining several aspects used to charge to more
clauses than the one it violates. ``FAULTS`` maps each to the exact set of clauses it FAILs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _forwarding(
    change_output: Callable[[Any], Any], check_inputs: Callable[[Any], None] | None = None
) -> Callable[..., Callable[..., Any]]:
    def make(
        f: Callable[..., Any],
        num_dims: int = 2,
        *,
        in_axes: Any = 0,
        out_axes: Any = 0,
        chunk_size: Any = None,
        row_order: Any = "C",
    ) -> Callable[..., Any]:
        import batchapply

        apply = batchapply.BatchApply(
            f, num_dims, in_axes=in_axes, out_axes=out_axes, chunk_size=chunk_size, row_order=row_order
        )

        def call(*args: Any, **kwargs: Any) -> Any:
            out = apply(*args, **kwargs)  # batchapply's own errors first (BA-10.1)
            if check_inputs is not None:
                check_inputs((args, kwargs))
            return change_output(out)

        return call

    return make


def _leaves(tree: Any) -> list[Any]:
    """Leaves of lists, tuples and dicts (values in insertion order: no key sorting), walked with
    a stack of its own: a recursive walk would raise RecursionError on the kit's list nested 600
    deep, a second fault (BA-1.5; ``broken_targets:recursive_walk`` is that one)."""
    found: list[Any] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, (list, tuple)):
            stack.extend(reversed(node))
        else:
            found.append(node)
    return found


def _reverse_tuple(out: Any) -> Any:
    return tuple(reversed(out)) if type(out) is tuple and len(out) > 1 else out


def _no_str_outputs(out: Any) -> Any:
    if any(isinstance(leaf, str) for leaf in _leaves(out)):
        raise TypeError("cannot split a str output")
    return out


def _no_str_inputs(tree: Any) -> None:
    if any(isinstance(leaf, (str, np.str_)) for leaf in _leaves(tree)):
        raise TypeError("cannot merge a str input")


reversed_tuples = _forwarding(_reverse_tuple)
"""A tuple output comes back reversed: BA-7.1 only (the chunked, row-ordered and in_axes
cases that return tuples used to charge it to sections 4, 13 and 14 too)."""

str_outputs_crash = _forwarding(_no_str_outputs)
"""Raises on a str output leaf: BA-7.4 (identity cases that pass a str in and get it back
used to charge it to the input clauses BA-1.1, 1.2 and 1.4 too)."""

str_inputs_crash = _forwarding(lambda out: out, _no_str_inputs)
"""Raises on a str input leaf: the pass-through clauses BA-1.1, 1.2 (the keyword-named-self
case, which also passed a str keyword, used to charge it to BA-6.2 too)."""


def opaque_nodes(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    """Registered pytree nodes pass through unmerged (as ``tf.nest`` sees them: one opaque leaf):
    BA-1.3 only, which the kit's node check sees since its ``f`` reverses rows."""
    import batchapply
    from batchapply_conformance import nodes

    apply = batchapply.BatchApply(f, num_dims)

    def call(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(arg, tuple(nodes.NODE_TYPES)) for arg in args):
            return f(*args, **kwargs)
        return apply(*args, **kwargs)

    return call


FAULTS: dict[str, set[str]] = {
    "attribution_targets:reversed_tuples": {"BA-7.1"},
    "attribution_targets:str_outputs_crash": {"BA-7.4"},
    "attribution_targets:str_inputs_crash": {"BA-1.1", "BA-1.2", "BA-1.4"},
    "attribution_targets:opaque_nodes": {"BA-1.3"},
}
