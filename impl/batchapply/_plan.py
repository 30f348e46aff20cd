"""The plan of a call: every decision taken before ``f`` runs (SPEC sections 3, 4, 13, 14).

``plan_inputs`` reads the options and the input leaves once and returns an ``InputPlan``: the
selected leaves, the leading shape, the row order's shard counts, and the chunk layout with
the executor that runs it. A plan holds no arrays and no ``f``: it depends only on the call's
signature (tree structure, leaf kinds, shapes, shardings) and the options, so ``PlanCache``
keeps it per signature where the signature is cheap to read (issue 25). ``plan_outputs`` does the same
for ``f``'s output. Every error that the signature determines is raised here, from
``_errors``; the executors raise only what no signature shows (E17, E23 at run time, E28).
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from batchapply import _errors, _sharding, _trees
from batchapply._helpers import ndim_at_least
from batchapply._leaves import (
    CONCRETE,
    MATRIX,
    NUMPY,
    TRACER,
    eager,
    first_deleted,
    jax_holds,
    kind,
    kinds,
    trace_state_clean,
)


class Configured(Protocol):
    """What the planner reads from a BatchApply (or a Flax wrapper's per-call one)."""

    num_dims: int
    in_axes: Any
    out_axes: Any
    chunk_size: int | None
    row_order: Any
    _call_per_chunk: bool
    _map_when_eager: bool


class ChunkPlan(NamedTuple):
    """How the rows are cut into chunks (SPEC section 13), and which executor runs them."""

    executor: str  # "once" | "loop" | "local" | "map": see _core.BatchApply._call_in_chunks
    chunk_size: int
    rows_at: tuple[int, ...]  # the merged leaves, in leaf order: the chunks take their rows
    dims: int  # leading dims the concrete jax.Array leaves still have (num_dims when lazy, else 1)
    eager: bool  # outside any trace


class InputPlan(NamedTuple):
    """Every decision about a call's inputs; no arrays, no ``f``."""

    num_dims: int
    row_order: Any
    selected: tuple[int, ...] | None  # the leaves that in_axes selects (BA-4); None: all of them
    first: int  # the first merged leaf: it gives the leading shape
    leading: tuple[Any, ...]  # BA-3.1
    size: Any  # prod(leading); symbolic under jax.export
    counts: _sharding.Counts  # the merge and split order; None: the C order (BA-14.2)
    shards: int  # the product of the call's shard counts: the chunks follow them (BA-14.9)
    lazy: bool  # eager chunks take rows straight from the concrete jax.Array inputs (BA-13.4)
    leaf_kinds: tuple[int, ...]  # the kind of every leaf (_leaves.kind), for the merge
    chunks: ChunkPlan | None  # None: no chunk_size, or a symbolic row count (E18, after the merge)


def plan_inputs(
    ba: Configured, args: tuple[Any, ...], treedef: Any, leaves: list[Any], paths: _errors.Paths
) -> InputPlan:
    """The plan of a call on ``leaves`` (of ``(args, kwargs)``); E6 to E9, E24 to E26, E28."""
    n = ba.num_dims
    selected = None if type(ba.in_axes) is int else _selected(ba.in_axes, args, treedef, len(leaves))
    order = range(len(leaves)) if selected is None else selected
    first = next((i for i in order if ndim_at_least(leaves[i], n)), None)
    if first is None:  # BA-3.3
        raise _errors.no_mergeable(n)
    leading = tuple(leaves[first].shape[:n])  # BA-3.1
    size = math.prod(leading)
    found = tuple(kinds(leaves))
    if MATRIX in found:  # E26, before E9
        raise_if_matrix(leaves, [i for i in order if ndim_at_least(leaves[i], n)], paths, "merged")
    c = ba.chunk_size
    # A symbolic size (jax.export) is not compared here: section 13 decides (BA-13.9).
    chunked = c is not None and isinstance(size, int) and size > c
    shards: _sharding.Counts = None
    if ba.row_order != "C" or chunked:  # section 14: the only cases that look at shardings
        shards = _shard_counts(ba, leaves, order, leading, paths)
    # Eager chunking (BA-13.4) slices each chunk's rows straight out of a jax.Array input:
    # the whole merged copy would be peak memory that does not follow the chunk.
    lazy = chunked and shards is None and not ba._map_when_eager and eager(leaves)
    if shards is None:  # the common case: the C order, one shard
        plan = InputPlan(n, ba.row_order, selected, first, leading, size, None, 1, lazy, found, None)
    else:
        counts = _sharding.order_counts(shards)
        plan = InputPlan(
            n, ba.row_order, selected, first, leading, size, counts, math.prod(shards), lazy, found, None
        )
    if c is None or not isinstance(size, int):
        return plan
    return InputPlan(*plan[:-1], _plan_chunks(ba, plan, leaves, order, c))  # faster than _replace


_shape = operator.attrgetter("shape")
_dtype = operator.attrgetter("dtype")


class PlanCache:
    """The plans of one ``BatchApply``, per input signature: a bounded table, oldest out first.

    Only for NumPy and concrete ``jax.Array`` leaves, whose type, shape and dtype are all the
    planner reads from them, except the shardings (read only with a row order or a chunked
    call: then only all-NumPy calls are kept) and a deleted array (E28: the merge checks it on
    every call). Nor for calls whose plan is cheaper than their key (``cheap_leaves``). The
    key: the tree structure, every leaf's type and shape, the NumPy dtypes
    (``jax_holds``), and for a chunked call whether it runs outside any trace. The options are
    the owner's, read-only (BA-2.6). A call that raises stores nothing, so that every error the
    planner raises is raised again on the next call with the same signature.
    """

    __slots__ = ("_plans",)
    maxsize = 64
    # With in_axes=0, the C order and no chunk_size, the plan reads one leaf (and every leaf's
    # type): above this many leaves, the key (every leaf's shape) costs more than the plan.
    cheap_leaves = 16

    def __init__(self) -> None:
        self._plans: dict[Any, InputPlan] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return PlanCache, ()  # a copy starts empty: the keys hold tree structures, not values

    def plan(
        self, ba: Configured, args: tuple[Any, ...], treedef: Any, leaves: list[Any], paths: _errors.Paths
    ) -> InputPlan:
        """``plan_inputs(ba, args, treedef, leaves, paths)``, from the table where it can be."""
        if (
            len(leaves) > self.cheap_leaves
            and type(ba.in_axes) is int
            and ba.row_order == "C"
            and ba.chunk_size is None
        ):
            return plan_inputs(ba, args, treedef, leaves, paths)  # reads one leaf: cheaper than the key
        found = kinds(leaves)
        n_numpy = found.count(NUMPY)
        if ba.row_order == "C" and ba.chunk_size is None:
            cacheable = n_numpy + found.count(CONCRETE) == len(found)
        else:  # the shardings of the jax.Array leaves decide (section 14)
            cacheable = n_numpy == len(found)
        if not cacheable:
            return plan_inputs(ba, args, treedef, leaves, paths)
        key = (
            treedef,
            tuple(map(type, leaves)),
            tuple(map(_shape, leaves)),
            tuple(map(_dtype, leaves)) if n_numpy else None,
            ba.chunk_size is None or trace_state_clean(),
        )
        plans = self._plans
        try:
            plan = plans.get(key)
        except (TypeError, ValueError):  # pytree aux data that cannot be hashed or compared
            return plan_inputs(ba, args, treedef, leaves, paths)
        if plan is None:
            plan = plan_inputs(ba, args, treedef, leaves, paths)  # raises: nothing stored
            if len(plans) >= self.maxsize:
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread's
                    del plans[next(iter(plans))]
            with contextlib.suppress(TypeError, ValueError):  # as above, against another key
                plans[key] = plan
        return plan


def _selected(in_axes: Any, args: tuple[Any, ...], treedef: Any, n_leaves: int) -> tuple[int, ...]:
    """The indices of the selected leaves of ``(args, kwargs)``, for a non-zero ``in_axes``."""
    n_arg_leaves = treedef.children()[0].num_leaves
    kwarg_leaves = list(range(n_arg_leaves, n_leaves))  # BA-4.5
    if in_axes is None:  # BA-4.2
        return tuple(kwarg_leaves)
    axes = _arg_axes(in_axes, args)
    return tuple([i for i, axis in enumerate(axes) if axis == 0] + kwarg_leaves)


def _arg_axes(in_axes: tuple[Any, ...], args: tuple[Any, ...]) -> list[Any]:
    """The axis of every leaf of the positional arguments, for a tuple ``in_axes`` (BA-4.3, BA-4.4)."""
    if len(in_axes) != len(args):
        raise _errors.in_axes_length(in_axes, args)  # E6
    axes: list[Any] = []
    for i, (arg_axes, arg) in enumerate(zip(in_axes, args, strict=True)):
        try:
            axes += _trees.broadcast_axes(arg_axes, arg)
        except ValueError:  # jax's prefix error: E7 instead
            raise _errors.in_axes_prefix(i, arg_axes, arg) from None
    return axes


def _shard_counts(
    ba: Configured, leaves: list[Any], order: Sequence[int], leading: tuple[Any, ...], paths: _errors.Paths
) -> _sharding.Counts:
    """The call's shard counts (section 14), after E9 and E28 (BA-10.4); E25, E21, E22, E24."""
    n = ba.num_dims
    mergeable = [i for i in order if ndim_at_least(leaves[i], n)]
    if any(tuple(leaves[i].shape[:n]) != leading for i in mergeable):
        raise _errors.leading_shape(leaves, mergeable, n, leading, paths) from None
    deleted = first_deleted(leaves, mergeable)
    if deleted is not None:  # E28 before the counts (BA-10.4)
        raise _errors.deleted(paths()[deleted], leaves[deleted]) from None
    picked = [leaves[i] for i in mergeable]
    if ba.row_order == "C":  # BA-14.11: E25 where the shardings are visible
        _sharding.check_c_order_chunks(picked, n, lambda: [paths()[i] for i in mergeable])
        return None
    shards = _sharding.call_counts(ba.row_order, leading, picked, lambda: [paths()[i] for i in mergeable])
    if ba.chunk_size is not None and shards is not None:
        _sharding.check_chunk_size(ba.chunk_size, shards)  # BA-14.9: E24
    return shards


def _plan_chunks(
    ba: Configured, plan: InputPlan, leaves: list[Any], order: Sequence[int], c: int
) -> ChunkPlan:
    """The executor of a chunked call (BA-13.2 to BA-13.4, BA-14.9)."""
    rows_at = tuple(i for i in order if ndim_at_least(leaves[i], plan.num_dims))
    is_eager = eager(leaves)
    dims = plan.num_dims if plan.lazy else 1
    if plan.size <= c:  # BA-13.2: one call, as without chunk_size
        return ChunkPlan("once", c, rows_at, dims, is_eager)
    # BA-13.4: under a trace, the full chunks in one jax.lax.map (a lifted scan for the Flax
    # wrappers, BA-12.12), unless they call f once per chunk; else one call of f per chunk.
    by_map = (not is_eager or ba._map_when_eager) and not ba._call_per_chunk and _maps(leaves, rows_at)
    executor = "map" if by_map else ("local" if plan.shards > 1 else "loop")
    return ChunkPlan(executor, c, rows_at, dims, is_eager)


def _maps(leaves: list[Any], rows_at: Sequence[int]) -> bool:
    """Whether, under a trace, the chunks go through one ``jax.lax.map`` (BA-13.4).

    Yes when some merged leaf is a jax value and every NumPy one becomes a tracer
    with the same values (``jax_holds``); otherwise f is called once per chunk.
    """
    found = [kind(leaves[i]) for i in rows_at]
    if TRACER not in found and CONCRETE not in found:
        return False
    return all(jax_holds(leaves[i]) for i, k in zip(rows_at, found, strict=True) if k == NUMPY)


def merge_error(plan: InputPlan, leaves: list[Any], paths: _errors.Paths) -> Exception:
    """The error of a merge that failed (``_exec_reshape.merge``): E9, else E28 (BA-10.4)."""
    n = plan.num_dims
    order = range(len(leaves)) if plan.selected is None else plan.selected
    mergeable = [i for i in order if ndim_at_least(leaves[i], n)]
    deleted = first_deleted(leaves, mergeable)
    if any(tuple(leaves[i].shape[:n]) != plan.leading for i in mergeable) or deleted is None:
        return _errors.leading_shape(leaves, mergeable, n, plan.leading, paths)
    return _errors.deleted(paths()[deleted], leaves[deleted])


def raise_if_matrix(
    leaves: list[Any], indices: Sequence[int], paths: Callable[[], list[str]], what: str
) -> None:
    """E26 for the first ``numpy.matrix`` among ``leaves[i]`` for ``i`` in ``indices``."""
    for i in indices:
        if kind(leaves[i]) == MATRIX:
            raise _errors.matrix(paths()[i], leaves[i].shape, what)


def output_axes(out_axes: Any, outputs: Any) -> list[Any] | None:
    """The axis of every output leaf, or None when ``out_axes`` is 0 (BA-7.5); E11."""
    if type(out_axes) is int:
        return None
    try:
        return _trees.broadcast_axes(out_axes, outputs)
    except ValueError:  # jax's prefix error: E11 instead
        raise _errors.out_axes_prefix(out_axes, outputs) from None


def plan_outputs(out_axes: Any, outputs: Any, out_leaves: list[Any]) -> tuple[list[int] | None, list[int]]:
    """The selected leaves (None: all) and the leaf kinds of ``f``'s output ``outputs``, whose
    leaves are ``out_leaves`` (``_trees.flatten``, which raises E27); E11, E26."""
    axes = None if type(out_axes) is int else output_axes(out_axes, outputs)
    selected = None if axes is None else [i for i, axis in enumerate(axes) if axis == 0]
    found = kinds(out_leaves)
    if MATRIX in found:  # E26, before E10
        order = range(len(out_leaves)) if selected is None else selected
        raise_if_matrix(out_leaves, order, lambda: _errors.paths_of(outputs, "output"), "split")
    return selected, found
