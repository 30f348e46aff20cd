"""BatchApply as a ``flax.nnx`` Module (SPEC section 12).

Importing this module imports flax (the ``flax`` extra); importing
``batchapply`` alone does not.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> from batchapply.nnx import BatchApply
>>> encoder = BatchApply(nnx.Linear(4, 3, rngs=nnx.Rngs(0)))
>>> encoder(jnp.ones((5, 7, 4))).shape
(5, 7, 3)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

try:
    from flax import nnx
except ModuleNotFoundError as error:
    if error.name is None or error.name.split(".")[0] != "flax":
        raise
    raise ModuleNotFoundError(
        f'batchapply.nnx needs flax, which is not installed: pip install "batchapply[flax]" ({error})',
        name=error.name,
    ) from error

from batchapply import _core
from batchapply._core import PyTree

__all__ = ["BatchApply"]

NNX_CALLABLE_PREFIX = "batchapply.nnx.BatchApply: `module` must hold its state where nnx can see it"


def _is_nnx_object(x: Any) -> bool:
    """Modules, Rngs and Variables: objects whose identity carries state in nnx."""
    return isinstance(x, nnx.Pytree | nnx.Variable)


def _hidden_nnx_object(f: Any) -> str | None:
    """A description of an nnx object that ``f`` reaches outside the nnx graph, if any."""
    if inspect.ismethod(f) and _is_nnx_object(f.__self__):
        return f"a bound method of {type(f.__self__).__name__}"
    if isinstance(f, functools.partial):
        for value in (*f.args, *f.keywords.values()):
            if _is_nnx_object(value):
                return f"a functools.partial that holds {type(value).__name__}"
        return _hidden_nnx_object(f.func)
    for cell in getattr(f, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if _is_nnx_object(value):
            return f"a function that closes over {type(value).__name__}"
    return None


@dataclasses.dataclass(frozen=True)
class Options:
    """The checked options of ``BatchApply`` but ``module``, in one static attribute."""

    num_dims: int
    in_axes: Any
    out_axes: Any
    chunk_size: int | None
    row_order: Any


class _Chunked(_core.BatchApply):
    """``batchapply.BatchApply`` whose full chunks run in one ``nnx.scan`` (BA-12.12).

    ``jax.lax.map`` cannot hold nnx objects: the state it would update inside its
    body (``BatchNorm`` statistics, an ``Rngs`` counter) would be tracers of that
    body. ``nnx.scan`` carries the objects from chunk to chunk instead, so each
    chunk sees the state the previous chunk left, as in a Python loop.
    """

    _map_when_eager = True
    _carried: Any = None
    _lifted: list[Any]

    def carry(self, carried: Any, lifted: list[Any]) -> None:
        self._carried, self._lifted = carried, lifted

    def _map_chunks(self, body: Callable[[list[Any]], list[Any]], stacked: list[Any]) -> list[Any]:
        lifted = self._lifted

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
        def step(carried: Any, chunk: list[Any]) -> tuple[Any, list[Any]]:
            lifted.append(carried)
            try:
                return carried, body(chunk)
            finally:
                lifted.pop()

        _, mapped = step(self._carried, stacked)
        return list(mapped)


class BatchApply(nnx.Module):
    """Apply ``module`` to inputs whose leading ``num_dims`` dims are merged (SPEC BA-12.4).

    The wrapper has no state of its own; ``module`` is its only graph child, at
    the attribute ``module``, and its variables are the very objects of the
    wrapped module (BA-12.5). ``module`` is an nnx ``Module`` or a stateless
    callable (``jax.nn.relu``); a bound method of a Module or a closure over one
    is rejected, because ``nnx.jit``/``nnx.grad`` could not see (and would
    silently not train) the state it hides (BA-12.6). nnx objects passed at call
    time (``rngs=nnx.Rngs(...)``) reach ``module`` as the same objects (BA-12.7).

    With ``chunk_size``, the full chunks run in one ``nnx.scan`` that carries
    ``module`` (and nnx objects passed to the call) from chunk to chunk, so the
    compiled memory follows the chunk and the state updates are those of a
    Python loop over the chunks (BA-12.12): a ``BatchNorm`` normalizes each
    chunk by that chunk's statistics and updates its running averages once per
    chunk (BA-13.5); an ``Rngs`` stream advances once per chunk.

    Args:
        module: the nnx Module or stateless callable to apply to merged inputs.
        num_dims: how many leading dims to merge (BA-2.2).
        in_axes: which positional inputs to merge, as in ``batchapply.BatchApply``.
        out_axes: which outputs to split, as in ``batchapply.BatchApply``.
        chunk_size: at most this many merged rows per call of ``module`` (section 13).
        row_order: the order of the merged rows on sharded inputs (section 14).

    Raises:
        TypeError: ``module`` is not callable, or hides nnx state (BA-12.6).
        ValueError: as ``batchapply.BatchApply`` (SPEC section 10).

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> norm = BatchApply(nnx.LayerNorm(4, rngs=nnx.Rngs(0)))
    >>> norm(jnp.ones((5, 7, 4))).shape
    (5, 7, 4)
    """

    def __init__(
        self,
        module: Callable[..., Any],
        num_dims: int = 2,
        *,
        in_axes: Literal[0] | tuple[PyTree, ...] | list[PyTree] | None = 0,
        out_axes: Literal[0] | PyTree | None = 0,
        chunk_size: int | None = None,
        row_order: Literal["C", "shard_major"] | tuple[int, ...] | list[int] = "C",
    ) -> None:
        checked = _core.BatchApply(
            module, num_dims, in_axes=in_axes, out_axes=out_axes, chunk_size=chunk_size, row_order=row_order
        )
        hidden = _hidden_nnx_object(module)
        if hidden is not None:
            raise TypeError(
                f"{NNX_CALLABLE_PREFIX}; got {hidden}, whose state nnx.jit, nnx.grad and "
                "nnx.Optimizer cannot see. Pass the Module itself (BatchApply(self.linear)), "
                "or build batchapply.BatchApply(lambda x: ...) inside __call__ instead."
            )
        self.module = module
        # One static attribute for the five options: nnx.jit walks every attribute of the graph on
        # every call (issue 26: 1.095x the hand-written reshape's step against 1.117x for five).
        self.options = Options(
            checked.num_dims, checked.in_axes, checked.out_axes, checked.chunk_size, checked.row_order
        )

    num_dims = property(lambda self: self.options.num_dims, doc="How many leading dims are merged.")
    in_axes = property(lambda self: self.options.in_axes, doc="Which positional inputs are merged.")
    out_axes = property(lambda self: self.options.out_axes, doc="Which outputs are split.")
    chunk_size = property(lambda self: self.options.chunk_size, doc="The most merged rows per call.")
    row_order = property(lambda self: self.options.row_order, doc="The order of the merged rows.")

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # BA-6.2
        """Merge the inputs, call ``module`` once, split its outputs (SPEC BA-12.4).

        Args:
            *args: positional inputs; those selected by ``in_axes`` are merged.
            **kwargs: keyword inputs, all selected (BA-4.5), except nnx objects
                such as ``rngs``, which are passed to ``module`` as they are.

        Returns:
            ``module``'s output with the leading dim of every selected array split back.

        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> drop = BatchApply(nnx.Dropout(0.5))
        >>> drop(jnp.ones((2, 3, 4)), rngs=nnx.Rngs(dropout=0)).shape
        (2, 3, 4)
        """
        o = self.options  # the very objects (dataclasses.astuple would copy them: a defaultdict fails)
        num_dims, in_axes, out_axes, chunk_size, row_order = (
            o.num_dims,
            o.in_axes,
            o.out_axes,
            o.chunk_size,
            o.row_order,
        )
        options = {"out_axes": out_axes, "chunk_size": chunk_size, "row_order": row_order}
        positions = [i for i, arg in enumerate(args) if _is_nnx_object(arg)]
        named = {k: v for k, v in kwargs.items() if _is_nnx_object(v)}
        stateful = _is_nnx_object(self.module)
        if not positions and not named and not (stateful and chunk_size is not None):
            return _core.BatchApply(self.module, num_dims, in_axes=in_axes, **options)(*args, **kwargs)
        # nnx objects are pytrees whose rebuilt copies would lose their state updates (an Rngs
        # counter, say): module gets the originals (BA-12.7), or, inside the scan over chunks,
        # the copies that nnx.scan carries from chunk to chunk (BA-12.12).
        carried: tuple[Any, ...] = (
            self.module if stateful else None,
            tuple(args[i] for i in positions),
            named,
        )
        lifted: list[Any] = []
        inner = self.module

        def call(*merged: Any, **merged_kwargs: Any) -> Any:
            module, objects, named_objects = lifted[-1] if lifted else carried
            restored = list(merged)
            for i, obj in zip(positions, objects, strict=True):
                restored[i] = obj
            return (module if stateful else inner)(*restored, **merged_kwargs, **named_objects)

        if isinstance(in_axes, tuple) and len(in_axes) == len(args):
            in_axes = tuple(None if i in positions else axis for i, axis in enumerate(in_axes))
        args = tuple(None if i in positions else a for i, a in enumerate(args))
        kwargs = {k: v for k, v in kwargs.items() if k not in named}
        apply = _Chunked(call, num_dims, in_axes=in_axes, **options)
        apply.carry(carried, lifted)
        return apply(*args, **kwargs)
