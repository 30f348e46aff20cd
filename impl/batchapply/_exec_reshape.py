"""Executor: merge the inputs (or split the outputs) of a call in one go (SPEC sections 5 and 7).

Under a trace (jit, grad, vmap, scan) every leaf is reshaped with a plain ``reshape``, leaf
by leaf, so the traced program is the hand-written one. Outside a trace, the concrete
``jax.Array`` leaves go through the fused programs of ``_exec_fused``; NumPy leaves are
reshaped as NumPy views, with no dispatch. The per-call Python work is one flatten per
direction and a few C-level passes over the leaves.

A leaf that cannot be reshaped (a leading shape that disagrees, a deleted array) is marked
``FAILED`` by the leaf-by-leaf reshape; the call's result is then None, and the caller builds
the SPEC error from the plan (``_plan.merge_error``, ``_errors.output_split``).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from batchapply import _exec_fused, _sharding
from batchapply._leaves import (
    CONCRETE,
    NOT_ARRAY,
    TRACER,
    kind,
    kinds,
    one_placement,
    several_devices,
    trace_state_clean,
)
from batchapply._plan import InputPlan


class _Failed:
    """The mark of a leaf that cannot be reshaped; the SPEC error is built by the caller."""

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Any = _Failed()

# NumPy leaves: in the C order, their merge and split are a NumPy reshape (``_sharding.merge``
# and ``_sharding.split`` with no counts), done here with no further call.
_NUMPY_TYPES = (np.ndarray, np.generic)


def reshape_leaves(
    leaves: list[Any],
    selected: Sequence[int] | None,
    program: tuple[Any, ...] | None,
    one: _exec_fused.One,
    found: Sequence[int] | None = None,
) -> list[Any] | None:
    """``leaves`` with every selected array leaf reshaped; None when ``one`` marks a leaf ``FAILED``.

    Outside a trace, the concrete ``jax.Array`` leaves go through ``_exec_fused.Fused(*program)``
    (a None in its result keeps the leaf), built only where there are some. NumPy leaves,
    tracers, and leaves that the program rejects (e.g. committed to different devices) go
    through ``one``, leaf by leaf: NumPy views, or the reshapes the hand-written code would
    record into the trace. ``selected`` None means every leaf. ``found``: the leaves' kinds,
    where the caller has them.
    """
    if found is None:
        found = kinds(leaves)
    n_concrete = found.count(CONCRETE)
    fuse = program is not None and n_concrete > 0 and TRACER not in found and trace_state_clean()
    if (
        fuse
        and several_devices()
        and not one_placement([x for x, k in zip(leaves, found, strict=True) if k == CONCRETE])
    ):
        fuse = False  # one program would move the uncommitted leaves to the committed ones' devices
    fused = _exec_fused.Fused(*program) if fuse else None  # type: ignore[misc]
    if fuse and selected is None and n_concrete == len(leaves):  # the common eager case
        assert fused is not None
        ys = fused(leaves, range(len(leaves)), one)
        if any(map(operator.is_, ys, itertools.repeat(None))):  # C-level scan, no == on arrays
            ys = [x if y is None else y for x, y in zip(leaves, ys, strict=True)]
        return _unless_failed(ys) if fused.fell_back else ys
    order = range(len(leaves)) if selected is None else selected
    todo = [i for i in order if found[i] != NOT_ARRAY]
    out = list(leaves)
    if fuse:
        assert fused is not None
        concrete = [i for i in todo if found[i] == CONCRETE]
        for i, y in zip(concrete, fused([leaves[i] for i in concrete], concrete, one), strict=True):
            if y is not None:
                out[i] = y
        todo = [i for i in todo if found[i] != CONCRETE]
    for i in todo:
        y = one(leaves[i], i)
        if y is FAILED:
            return None
        out[i] = y
    return _unless_failed(out) if fuse and fused.fell_back else out  # type: ignore[union-attr]


def _unless_failed(ys: list[Any]) -> list[Any] | None:
    """``ys``, or None when a leaf of it is ``FAILED`` (a C-level scan, no == on arrays)."""
    return None if any(map(operator.is_, ys, itertools.repeat(FAILED))) else ys


def merge(plan: InputPlan, leaves: list[Any], paths: Callable[[], list[str]]) -> list[Any] | None:
    """The leaves with every selected one merged (BA-5.1, BA-14.2); None: E9 or E28 (see above).

    With ``plan.lazy``, the concrete ``jax.Array`` leaves keep their leading dims: the eager
    chunks take their rows straight from them (``_exec_chunks``).
    """
    n, leading, counts, row_order, lazy = plan.num_dims, plan.leading, plan.counts, plan.row_order, plan.lazy

    size = plan.size

    def merge_one(x: Any, i: int) -> Any:  # lower rank: the very object (BA-1.2)
        if x.ndim < n:
            return x
        if counts is None and isinstance(x, _NUMPY_TYPES):  # the C order of a NumPy leaf: a view
            return x.reshape((size,) + tuple(x.shape[n:])) if tuple(x.shape[:n]) == leading else FAILED
        if tuple(x.shape[:n]) != leading or (kind(x) == CONCRETE and x.is_deleted()):
            return FAILED  # a merge that keeps the shape (num_dims=1) would not see a deleted array
        if lazy and kind(x) == CONCRETE and _sharding.c_order_is_local(x, n):
            return x  # merged chunk by chunk, by _exec_chunks._take_rows
        if size == 0 and not isinstance(x, _NUMPY_TYPES):
            return _without_rows(x, n)
        return _sharding.merge(x, n, counts, row_order, paths, i)

    program = (_exec_fused._merge_fused, (n, leading), n) if counts is None and not lazy else None
    return reshape_leaves(leaves, plan.selected, program, merge_one, plan.leaf_kinds)


def _without_rows(x: Any, n: int) -> Any:
    """A ``jax.Array`` or tracer whose leading dims hold no rows (N = 0), merged: no row has a
    device to stay on, so every count is 1 (BA-14.12) and the C order is local. Over Explicit
    mesh axes jax's reshape refuses a dim of size 0 that an axis cuts; replicated first (no
    element moves), it does not."""
    sharding = jax.typeof(x).sharding if isinstance(x, jax.core.Tracer) else x.sharding
    mesh = getattr(sharding, "mesh", None)
    if mesh is not None and not mesh.empty and AxisType.Explicit in mesh.axis_types:
        x = jax.sharding.reshard(x, NamedSharding(mesh, PartitionSpec()))
    return x.reshape((0,) + tuple(x.shape[n:]))


def split(
    out_leaves: list[Any],
    selected: Sequence[int] | None,
    plan: InputPlan,
    paths: Callable[[], list[str]],
    found: Sequence[int] | None = None,
) -> list[Any] | None:
    """The output leaves with every selected one split (BA-7.2, BA-14.2); None: E10."""
    leading, size, counts, row_order = plan.leading, plan.size, plan.counts, plan.row_order

    def split_one(y: Any, i: int) -> Any:  # BA-7.3
        if y.ndim == 0 or y.shape[0] != size:
            return FAILED
        if counts is None and isinstance(y, _NUMPY_TYPES):  # the C order of a NumPy leaf: a view
            return y.reshape(leading + tuple(y.shape[1:]))
        return _sharding.split(y, leading, counts, row_order, paths, i)

    program = (_exec_fused._split_fused, (leading,)) if counts is None else None
    return reshape_leaves(out_leaves, selected, program, split_one, found)
