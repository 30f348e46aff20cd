"""BatchApply for JAX: merge leading dims, call ``f`` once, split the outputs.

The behaviour is defined by SPEC.md; the clause each piece implements is named next to it.
``batchapply_reference`` is the slow oracle this code is fuzzed against.

A call runs in three steps (docs/architecture.md draws them):

1. ``_plan.plan_inputs``: every decision about the inputs, and every error they determine;
2. ``_exec_reshape.merge``: the merge (traced reshape, or the eager fused programs of
   ``_exec_fused``), then ``f``, on all rows or through one chunk executor
   (``_exec_chunks``, ``_exec_local``, ``_exec_map``);
3. ``_plan.plan_outputs`` and ``_exec_reshape.split``: the split of ``f``'s outputs.

The options are checked once, at construction (``_options``); the messages are built in
``_errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

import jax
from jax import tree_util

from batchapply import (
    _chunks,
    _errors,
    _exec_chunks,
    _exec_local,
    _exec_map,
    _exec_reshape,
    _exec_steady,
    _options,
    _plan,
    _trees,
)
from batchapply._errors import (  # noqa: F401  (re-exported: the tests and the kit read them here)
    AXIS_VALUE_PREFIX,
    CHUNK_DISAGREE_PREFIX,
    CHUNK_OUTPUT_PREFIX,
    CHUNK_SIZE_TYPE_PREFIX,
    CHUNK_SIZE_VALUE_PREFIX,
    CHUNK_SYMBOLIC_PREFIX,
    DELETED_PREFIX,
    DICT_KEYS_PREFIX,
    F_PREFIX,
    IN_AXES_LENGTH_PREFIX,
    IN_AXES_PREFIX_PREFIX,
    IN_AXES_TYPE_PREFIX,
    LEADING_SHAPE_PREFIX,
    MATRIX_PREFIX,
    NO_MERGEABLE_PREFIX,
    NUM_DIMS_TYPE_PREFIX,
    NUM_DIMS_VALUE_PREFIX,
    OUT_AXES_PREFIX_PREFIX,
    OUTPUT_PREFIX,
    SPLIT_MATRIX_PREFIX,
    SPLIT_SHAPE_PREFIX,
    SPLIT_TYPE_PREFIX,
)
from batchapply._helpers import (  # noqa: F401  (re-exported: the public names' home)
    arbitrary_mergeable_leaf,
    merge_leading_dims,
    ndim_at_least,
    split_leading_dim,
)

PyTree: TypeAlias = Any
"""A jax pytree: tuples, lists, dicts and other registered containers of leaves."""

OPTIONS = _options.NAMES

# The chunk executors, by the name the plan gives (SPEC section 13; docs/architecture.md).
_CHUNK_EXECUTORS: dict[str, Callable[[_chunks.Job], tuple[Any, bool]]] = {
    "once": _chunks.run_once,  # every row in one call (BA-13.2)
    "loop": _exec_chunks.run_loop,  # one call per chunk, rows from host or device (BA-13.4)
    "local": _exec_local.run_local,  # one call per chunk of local rows of every shard (BA-14.9)
    "map": _exec_map.run_mapped,  # the full chunks in one jax.lax.map (BA-13.4, BA-14.9)
}


class BatchApply:
    """Merge leading dims of the inputs, call ``f`` once, split the outputs (SPEC BA-2.1).

    A drop-in for ``hk.BatchApply(f, num_dims)`` and ``flax.linen.BatchApply``.
    With ``chunk_size``, ``f`` runs on chunks of at most that many merged rows
    (SPEC section 13), so that peak memory follows the chunk. On sharded inputs,
    ``row_order="shard_major"`` (or the shard counts) keeps every device's rows
    together: no communication, in another row order (SPEC section 14).

    >>> import jax.numpy as jnp
    >>> w = jnp.ones((4, 5))
    >>> apply = BatchApply(lambda x, w: x @ w, in_axes=(0, None))
    >>> apply(jnp.ones((2, 3, 4)), w).shape
    (2, 3, 5)

    Args:
        f: the function to call on the merged inputs, written for one batch
            dimension (``[Batch, Features]``).
        num_dims: how many leading dims to merge into one, ``>= 1`` (BA-2.2).
        in_axes: which positional arguments are merged: ``0`` (all of them),
            ``None`` (none), or one entry per positional argument, each ``0``,
            ``None`` or a pytree prefix of that argument made of ``0`` and
            ``None``, as in ``jax.vmap`` (BA-4). Keyword arguments are always
            merged.
        out_axes: which outputs are split: ``0`` (all of them), ``None`` (none:
            a loss, say, is returned as it is), or a pytree prefix of the output
            (BA-7).
        chunk_size: ``None``, or the most merged rows ``f`` sees at once: ``f``
            runs on chunks of rows, eagerly once per chunk and under a trace in one
            ``jax.lax.map``, so peak memory follows the chunk (SPEC section 13).
        row_order: the order of the rows in the merged batch: ``"C"`` (row-major,
            as a reshape), ``"shard_major"`` (every device's rows together, read
            from the inputs' shardings) or the shard counts ``(s_1, ..., s_n)``
            of the leading dims (SPEC section 14).

    Raises:
        TypeError: ``f`` is not callable, or ``num_dims`` or ``chunk_size`` is not
            an int (SPEC section 10).
        ValueError: ``num_dims`` or ``chunk_size`` is below 1, or ``in_axes``,
            ``out_axes`` or ``row_order`` is malformed. Calls raise ``ValueError``
            or ``TypeError`` naming the offending leaf by its pytree path.
    """

    # One call of f per chunk even on jax.Array inputs, instead of one jax.lax.map: set by the
    # Flax wrappers for callables whose state they cannot lift into a scan (BA-12.12).
    _call_per_chunk = False
    # The full chunks go through _map_chunks eagerly too: the Flax wrappers' lifted scans, so that
    # rng streams and sown values follow the same per-chunk rules in and out of jit (BA-12.12).
    _map_when_eager = False
    _plans: _plan.PlanCache | None = None  # set per instance in __init__
    _steady: _exec_steady.Steady | None = None  # as _plans

    def __init__(
        self,
        f: Callable[..., Any],
        num_dims: int = 2,
        *,
        in_axes: Literal[0] | tuple[PyTree, ...] | list[PyTree] | None = 0,
        out_axes: Literal[0] | PyTree | None = 0,
        chunk_size: int | None = None,
        row_order: Literal["C", "shard_major"] | tuple[int, ...] | list[int] = "C",
    ) -> None:
        options = _options.check_options(f, num_dims, in_axes, out_axes, chunk_size, row_order)
        self.f = options.f
        self.num_dims = options.num_dims
        self.in_axes = options.in_axes
        self.out_axes = options.out_axes
        self.chunk_size = options.chunk_size
        self.row_order = options.row_order
        # The input plans per signature (_plan.PlanCache); a subclass may change its options.
        self._plans = _plan.PlanCache() if type(self) is BatchApply else None
        # The eager steady state per signature (_exec_steady), where no option changes the merge.
        plain = type(self) is BatchApply and options.chunk_size is None and options.row_order == "C"
        self._steady = _exec_steady.Steady() if plain else None

    def __setattr__(self, name: str, value: Any) -> None:
        """The options are read-only once set (BA-2.6): their checks run at construction only.

        Subclasses may set them: the Flax wrappers' private ``_Chunked`` (linen.py) sets
        ``out_axes`` from the output it has just seen.
        """
        if name in OPTIONS and name in self.__dict__ and type(self) is BatchApply:
            raise _errors.read_only(name)
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        """``BatchApply(<function dense>, num_dims=3, in_axes=(0, None))``: ``f`` and the options set."""
        import inspect
        import re

        options = list(inspect.signature(type(self)).parameters.values())[1:]  # all but f
        changed = [
            f"{option.name}={value!r}"
            for option in options
            if not (
                type(value := getattr(self, option.name)) is type(option.default) and value == option.default
            )
        ]
        f = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(self.f))  # <function dense>, without its address
        return f"{type(self).__name__}({', '.join([f, *changed])})"

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # BA-6.2: any keyword name reaches f
        """Merge the selected inputs, call ``f``, split its outputs (SPEC BA-5 to BA-7).

        Args:
            *args: positional inputs; those that ``in_axes`` selects are merged.
            **kwargs: keyword inputs, all merged; any keyword name reaches ``f``.

        Returns:
            ``f``'s output, with the leading dim of every array that ``out_axes``
            selects split back into the leading shape of the inputs.

        Raises:
            ValueError: no input has ``num_dims`` dims, the inputs disagree on their
                leading shape, or an output cannot be split; the message names
                the leaf by its pytree path and says how to fix it.
        """
        leaves, treedef = _trees.flatten((args, kwargs), (args, kwargs), ("args", "kwargs"))  # BA-1.3
        steady = self._steady
        if steady is None or (hit := steady.merge(leaves, treedef)) is None:
            paths = _errors.Paths(args, kwargs)
            plans = self._plans
            if plans is None:
                plan = _plan.plan_inputs(self, args, treedef, leaves, paths)
            else:
                plan = plans.plan(self, args, treedef, leaves, paths)
            merged = _exec_reshape.merge(plan, leaves, paths)
            if merged is None:  # E9, else E28
                raise _plan.merge_error(plan, leaves, paths) from None
            if self.chunk_size is not None:  # section 13
                return self._call_in_chunks(plan, merged, treedef, paths)
            if steady is not None:
                steady.note_merge(plan, leaves, treedef)
        else:  # the steady state: the plan and the merge of an earlier call (_exec_steady)
            plan, merged = hit
        merged_args, merged_kwargs = tree_util.tree_unflatten(treedef, merged)
        return self._split(self.f(*merged_args, **merged_kwargs), plan)  # BA-6.1

    def _call_in_chunks(
        self, plan: _plan.InputPlan, merged: list[Any], treedef: Any, paths: _errors.Paths
    ) -> Any:
        """``f`` on chunks of at most ``chunk_size`` merged rows, by the plan's executor (section 13)."""
        if plan.chunks is None:  # E18 (BA-13.10): a symbolic dim, as under jax.export
            raise _errors.chunk_symbolic(paths()[plan.first], plan.leading, plan.size)
        rows_at = plan.chunks.rows_at

        def call(chunk_ys: Sequence[Any]) -> Any:
            """f with ``chunk_ys`` in place of the merged leaves; every other leaf as it is."""
            chunk = list(merged)
            for i, rows in zip(rows_at, chunk_ys, strict=True):
                chunk[i] = rows
            chunk_args, chunk_kwargs = tree_util.tree_unflatten(treedef, chunk)
            return self.f(*chunk_args, **chunk_kwargs)

        def check(output: Any, rows: Any) -> tuple[list[Any], Any]:
            return _chunks.check_output(self.out_axes, output, rows)

        job = _chunks.Job(plan, [merged[i] for i in rows_at], call, check, self._map_chunks)
        outputs, split = _CHUNK_EXECUTORS[plan.chunks.executor](job)
        return outputs if split else self._split(outputs, plan)

    def _map_chunks(
        self, body: Callable[[list[jax.Array]], list[Any]], stacked: list[jax.Array]
    ) -> list[Any]:
        """``body`` over the full chunks, stacked on a new leading axis: one ``jax.lax.map`` (BA-13.4).

        The Flax wrappers override it with their lifted scans, which carry module state (BA-12.12);
        inside a Haiku transform, ``haiku.scan`` carries Haiku's state (``_exec_map.lax_map``).
        """
        return _exec_map.lax_map(body, stacked)

    def _split(self, outputs: Any, plan: _plan.InputPlan) -> Any:
        """``f``'s outputs with every selected leaf split into the leading shape (BA-7)."""
        out_leaves, out_def = _trees.flatten(outputs, (outputs,), ("output",))
        steady = self._steady
        if steady is not None and (split := steady.split(out_leaves, out_def, plan)) is not None:
            return tree_util.tree_unflatten(out_def, split)
        selected, found = _plan.plan_outputs(self.out_axes, outputs, out_leaves)

        def paths() -> list[str]:
            return _errors.paths_of(outputs, "output")

        split = _exec_reshape.split(out_leaves, selected, plan, paths, found)
        if split is None:  # E10
            order = range(len(out_leaves)) if selected is None else selected
            raise _errors.output_split(out_leaves, order, plan.leading, plan.size, paths()) from None
        if steady is not None:
            steady.note_split(out_leaves, out_def, selected, found, plan)
        return tree_util.tree_unflatten(out_def, split)  # BA-7.1, BA-7.4
