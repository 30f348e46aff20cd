"""Chunk outputs (SPEC section 13): each chunk's output checked, checked against chunk 0, and
joined back in merged row order. Shared by the chunk executors (``_exec_chunks``,
``_exec_local``, ``_exec_map``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import tree_util

from batchapply import _errors, _plan, _sharding, _trees
from batchapply._helpers import ndim_at_least
from batchapply._leaves import CONCRETE, MATRIX, NUMPY, committed_devices, kind, kinds, on_host, one_placement


def check_output(out_axes: Any, output: Any, rows: Any) -> tuple[list[Any], Any]:
    """The leaves and treedef of one chunk's output, checked (BA-13.6: E27, E16, E26, then E10)."""
    out_leaves, out_def = _trees.flatten(output, (output,), ("output",))
    axes = None if type(out_axes) is int else _plan.output_axes(out_axes, output)
    unchunkable = [
        i
        for i, leaf in enumerate(out_leaves)
        if (axes is not None and axes[i] is None) or not ndim_at_least(leaf, 0)
    ]
    if unchunkable:
        paths = _errors.paths_of(output, "output")
        listed = ", ".join(
            f"{paths[i]} ("
            + (
                "not selected by out_axes"
                if axes is not None and axes[i] is None
                else "a " + type(out_leaves[i]).__name__
            )
            + ")"
            for i in unchunkable
        )
        raise _errors.chunk_output(listed)
    if MATRIX in kinds(out_leaves):
        _plan.raise_if_matrix(
            out_leaves, range(len(out_leaves)), lambda: _errors.paths_of(output, "output"), "split"
        )
    if any(leaf.ndim == 0 or leaf.shape[0] != rows for leaf in out_leaves):
        paths = _errors.paths_of(output, "output")
        listed = ", ".join(
            f"{paths[i]} has shape {tuple(leaf.shape)}"
            for i, leaf in enumerate(out_leaves)
            if leaf.ndim == 0 or leaf.shape[0] != rows
        )
        raise _errors.chunk_rows(rows, listed)
    return out_leaves, out_def


def to_device(rows: np.ndarray, like: jax.Array) -> jax.Array:
    """``rows`` (host memory) as a ``jax.Array`` placed and committed as ``like`` (see ``on_host``)."""
    return jax.device_put(rows, like.sharding if like.committed else None)


@functools.partial(jax.jit, static_argnums=1)
def _concatenate_fused(
    columns: list[list[jax.Array]], leading: tuple[int, ...] | None
) -> list[jax.Array] | None:
    """Each column's chunk outputs along the leading dim, split into ``leading`` (None: not split).

    One dispatch for every output leaf (BA-13.5); the split is BA-7.2's, done in the same program
    so that the result is written once. None (at trace time) where the split would move rows
    between devices: the caller concatenates only, and the split decides (E23).
    """
    out = []
    for column in columns:
        y = jnp.concatenate(column)
        if leading is not None:
            if not _sharding.c_order_is_local(y, 1):
                return None
            y = y.reshape(leading + tuple(y.shape[1:]))
        out.append(y)
    return out


def _exact_pieces(column: Sequence[Any]) -> list[Any]:
    """A column of chunk outputs to join as a ``jax.Array``, with every NumPy piece that JAX would
    narrow (64-bit outside ``jax_enable_x64``) made a 64-bit ``jax.Array`` first (BA-13.8)."""
    if all(kind(x) == NUMPY for x in column):  # joined by NumPy: nothing to narrow
        return list(column)
    narrowed = [kind(x) == NUMPY and jax.dtypes.canonicalize_dtype(x.dtype) != x.dtype for x in column]
    if not any(narrowed):
        return list(column)
    with jax.enable_x64(True):
        return [jnp.asarray(x) if wide else x for x, wide in zip(column, narrowed, strict=True)]


class Chunk:
    """One chunk's output: the tree, its leaves and treedef (SPEC section 13)."""

    def __init__(self, output: Any, leaves: list[Any], treedef: Any) -> None:
        self.output = output
        self.leaves = leaves
        self.treedef = treedef

    @classmethod
    def traced(cls, output_leaves: list[Any], treedef: Any) -> Chunk:
        """The chunk that ``jax.lax.map`` traced once for all full chunks: the shapes and dtypes
        of the leaves as ``f`` returned them, before the map turned them into jax values (a NumPy
        int64 leaf would read as int32 without ``jax_enable_x64``: a spurious E17, issue 24)."""
        leaves = [jax.ShapeDtypeStruct(tuple(y.shape), y.dtype) for y in output_leaves]
        return cls(tree_util.tree_unflatten(treedef, leaves), leaves, treedef)

    def with_leaves(self, leaves: list[Any]) -> Any:
        return tree_util.tree_unflatten(self.treedef, leaves)

    def check_agrees(self, k: int, start: int, stop: int, first: Chunk, shards: int = 1) -> None:
        """This chunk (the k-th) has chunk 0's structure, dtypes and trailing shapes (BA-13.7).

        ``start`` and ``stop`` bound its rows; with ``shards`` > 1, its local rows in every shard.
        """
        where = _errors.chunk_where(k, start, stop, shards)
        if self.treedef != first.treedef:
            got, want = _errors.paths_of(self.output, "output"), _errors.paths_of(first.output, "output")
            raise _errors.chunk_structure(where, got, want)
        for j, (leaf, want) in enumerate(zip(self.leaves, first.leaves, strict=True)):
            if leaf.dtype != want.dtype or tuple(leaf.shape[1:]) != tuple(want.shape[1:]):
                raise _errors.chunk_leaf(where, _errors.paths_of(self.output, "output")[j], leaf, want)
            got_on, wanted_on = committed_devices(leaf), committed_devices(want)
            if got_on != wanted_on and got_on is not None and wanted_on is not None:  # BA-13.7
                path = _errors.paths_of(self.output, "output")[j]
                raise _errors.chunk_devices(where, path, got_on, wanted_on)

    @staticmethod
    def join(chunks: list[Chunk], shards: int) -> Any:
        """Every leaf's chunks back in merged row order: ``shards`` blocks (BA-14.9, BA-13.8)."""

        def concatenate(column: tuple[Any, ...]) -> Callable[..., Any]:
            if any(kind(x) != NUMPY for x in column):
                return jnp.concatenate
            return (
                np.ma.concatenate if any(isinstance(x, np.ma.MaskedArray) for x in column) else np.concatenate
            )

        columns = [tuple(_exact_pieces(c)) for c in zip(*(chunk.leaves for chunk in chunks), strict=True)]
        return chunks[0].with_leaves([_sharding.join_chunks(c, shards, concatenate(c)) for c in columns])

    @staticmethod
    def concatenate(chunks: list[Chunk], leading: tuple[int, ...] | None) -> tuple[Any, bool]:
        """Every leaf's chunks along the leading dim, in chunk order (BA-13.5, BA-13.8).

        A leaf is a ``jax.Array`` if any chunk's is one, else a masked array if any chunk's is
        one, else a NumPy array. With ``leading`` (the C order), the leaves are also split into
        it (BA-7.2) when that moves no row between devices; the second result says whether they
        were. The ``jax.Array`` leaves are concatenated (and split) in one dispatch.
        """
        columns = list(zip(*(chunk.leaves for chunk in chunks), strict=True))
        out: list[Any] = [None] * len(columns)
        on_jax = {j for j, column in enumerate(columns) if any(kind(x) != NUMPY for x in column)}
        for j in on_jax:  # BA-13.8: 64-bit NumPy pieces stay 64-bit
            columns[j] = tuple(_exact_pieces(columns[j]))
        on_cpu = {j for j in on_jax if _host_column(columns[j])}
        on_jax -= on_cpu
        for j, column in enumerate(columns):
            if j in on_cpu:  # CPU outputs: their rows concatenated on the host, one copy, no compile
                out[j] = np.concatenate([np.asarray(x) for x in column])
            elif j not in on_jax:
                masked = any(isinstance(x, np.ma.MaskedArray) for x in column)
                out[j] = np.ma.concatenate(column) if masked else np.concatenate(column)
        split = leading is not None
        if on_jax:
            ys, split = _concatenate_on_jax([list(columns[j]) for j in sorted(on_jax)], leading)
            for j, y in zip(sorted(on_jax), ys, strict=True):
                out[j] = y
        if split:
            assert leading is not None
            out = [y if j in on_jax else y.reshape(leading + y.shape[1:]) for j, y in enumerate(out)]
        for j in on_cpu:  # split (a NumPy view) or not, back on the device of the chunks
            out[j] = to_device(out[j], columns[j][0])
        return chunks[0].with_leaves(out), split


def _host_column(column: Sequence[Any]) -> bool:
    """Whether a column's pieces are all in CPU memory alike (``on_host``): joined on the host."""
    return all(
        on_host(x) and x.sharding == column[0].sharding and x.committed == column[0].committed for x in column
    )


def _concatenate_on_jax(
    jax_columns: list[list[Any]], leading: tuple[int, ...] | None
) -> tuple[list[Any], bool]:
    """The columns concatenated (and split into ``leading`` where that is local); whether split."""
    # Only concrete arrays have a placement: under a trace, tracers carry none (issue 24).
    pieces = [x for column in jax_columns for x in column if kind(x) == CONCRETE]
    # One dispatch, unless it would move leaves between devices (then one per leaf).
    groups = [jax_columns] if one_placement(pieces) else [[column] for column in jax_columns]
    if leading is not None:
        try:
            found = [_concatenate_fused(group, leading) for group in groups]
        except _sharding.SHARDING_TYPE_ERRORS:  # jax refuses the split: the split decides (E23)
            found = [None]
        if None not in found:
            return [y for ys in found for y in ys], True
    return [y for group in groups for y in _concatenate_fused(group, None)], False


class Job(NamedTuple):
    """What a chunk executor runs: the plan, the merged leaves, and the callbacks into the call."""

    plan: _plan.InputPlan
    ys: list[Any]  # the merged leaves (rows_at), whose rows the chunks take
    call: Callable[[Sequence[Any]], Any]  # f with the chunk's rows in place of the merged leaves
    check: Callable[[Any, Any], tuple[list[Any], Any]]  # check_output for this call's out_axes
    map_chunks: Callable[[Callable[[list[Any]], list[Any]], list[Any]], list[Any]]  # BatchApply._map_chunks


def run_once(job: Job) -> tuple[Any, bool]:
    """Executor "once": every row in one call, as without ``chunk_size`` (BA-13.2); not split."""
    outputs = job.call(job.ys)
    job.check(outputs, job.plan.size)
    return outputs, False
