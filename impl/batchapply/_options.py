"""A BatchApply's options, checked once at construction (SPEC section 2, E1 to E5, E14, E15, E20)."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

from batchapply import _errors, _sharding, _trees

NAMES = frozenset({"f", "num_dims", "in_axes", "out_axes", "chunk_size", "row_order"})


@dataclasses.dataclass(frozen=True)
class Options:
    """The checked options of a BatchApply; immutable (BA-2.6)."""

    f: Callable[..., Any]
    num_dims: int
    in_axes: Any  # 0, None, or a tuple with one entry per positional argument
    out_axes: Any  # 0, None, or a pytree prefix of the output
    chunk_size: int | None
    row_order: Any  # "C", "shard_major", or a tuple of num_dims shard counts


def check_options(
    f: Any, num_dims: Any, in_axes: Any, out_axes: Any, chunk_size: Any, row_order: Any
) -> Options:
    """The options, checked in the order of SPEC section 10's table; its errors otherwise."""
    if not callable(f):
        raise _errors.f_type(f)
    num_dims = _int(num_dims, _errors.num_dims_type)
    if num_dims < 1:
        raise _errors.num_dims_value(num_dims)
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)  # as jax.vmap does
    if not (in_axes is None or type(in_axes) in (int, tuple)):
        raise _errors.in_axes_type(in_axes)
    _check_axes(in_axes, "in_axes")
    _check_axes(out_axes, "out_axes")
    if chunk_size is not None:  # BA-13.1
        chunk_size = _int(chunk_size, _errors.chunk_size_type)
        if chunk_size < 1:
            raise _errors.chunk_size_value(chunk_size)
    row_order = _sharding.check_row_order(row_order, num_dims)  # SPEC section 14
    return Options(f, num_dims, in_axes, out_axes, chunk_size, row_order)


def _int(value: Any, error: Callable[[Any], TypeError]) -> int:
    """``value`` as an int (``operator.index``, bool excluded); ``error(value)`` otherwise."""
    if isinstance(value, bool):
        raise error(value)
    try:
        return operator.index(value)
    except TypeError:
        raise error(value) from None


def _check_axes(axes: Any, name: str) -> None:
    """Every leaf of an axes tree is the int 0 or None (SPEC BA-2.4); E27 first (BA-10.3)."""
    for axis in _trees.axis_leaves(axes, name):
        if axis is None or (type(axis) is int and axis == 0):
            continue
        raise _errors.axis_value(axis, name)
