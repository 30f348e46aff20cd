"""Executor: the eager fused reshape (issues 6 and 12).

Outside a trace, the concrete ``jax.Array`` leaves of a call are merged (or split) by cached
jitted programs, one per direction. On a signature's first call (leaf shapes, dtypes and
leading shape) one leaf per dispatch, with one small program per leaf signature, so that a
first call compiles what a per-leaf reshape compiles (as ``flax.linen.BatchApply`` does);
once the signature repeats, groups of at most ``_GROUP_SIZE`` leaves per dispatch
(O(leaves / 128) dispatches, and compile times that grow linearly with the leaves, where one
program over every leaf grows faster). The checks that need a leaf's shape run at trace time
of the program, once per signature: a program that cannot reshape its leaves returns None,
and the leaves then go one by one through the caller's ``one`` (``_exec_reshape``), which
decides: the SPEC error, or the reshape leaf by leaf.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax

from batchapply import _sharding

_GROUP_SIZE = 128
_aval = operator.attrgetter("aval")

# What jax raises when one program cannot run its group: ValueError for leaves committed to
# different devices, ShardingTypeError where its reshape would move rows (Explicit mesh axes),
# RuntimeError for a deleted array. The leaves then go one by one.
_REFUSED: tuple[type[Exception], ...] = (ValueError, RuntimeError, *_sharding.SHARDING_TYPE_ERRORS)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _merge_fused(
    xs: list[jax.Array], num_dims: int, leading: tuple[int, ...]
) -> list[jax.Array | None] | None:
    """Merge every leaf of rank >= ``num_dims`` in one dispatch; None marks the others.

    Returns None (at trace time, once per signature) when a leaf disagrees on the leading
    shape (BA-3.2) or would move rows between devices (E23): the leaf-by-leaf path decides.
    """
    size = math.prod(leading)
    merged: list[jax.Array | None] = []
    for x in xs:
        if x.ndim < num_dims:
            merged.append(None)  # pass-through; the caller keeps the very object (BA-1.2)
        elif tuple(x.shape[:num_dims]) != leading or not _sharding.c_order_is_local(x, num_dims):
            return None
        else:
            merged.append(x.reshape((size,) + tuple(x.shape[num_dims:])))
    return merged


@functools.partial(jax.jit, static_argnums=1)
def _split_fused(ys: list[jax.Array], leading: tuple[int, ...]) -> list[jax.Array] | None:
    """Split every leaf in one dispatch; None (at trace time) where BA-7.3 or E23 must decide."""
    size = math.prod(leading)
    if any(y.ndim == 0 or y.shape[0] != size for y in ys):
        return None
    if not all(_sharding.c_order_is_local(y, 1) for y in ys):
        return None
    return [y.reshape(leading + tuple(y.shape[1:])) for y in ys]


class _Signatures:
    """The signatures of the fused reshapes seen so far: a bounded table, oldest out first.

    ``jax.clear_caches()`` clears it too (it is registered with jax's cache registry when that
    private hook exists), so that a cleared process behaves like a fresh one.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._seen: dict[Any, None] = {}

    def repeats(self, key: Any) -> bool:
        """Whether ``key`` was seen before; records it."""
        if key in self._seen:
            return True
        if len(self._seen) >= self.maxsize:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = None
        return False

    def cache_clear(self) -> None:
        self._seen.clear()

    def cache_info(self) -> dict[str, int]:
        return {"maxsize": self.maxsize, "currsize": len(self._seen)}

    def cache_keys(self) -> list[Any]:
        return list(self._seen)


_SIGNATURES = _Signatures(4096)
try:  # private: lets jax.clear_caches() clear the table with jax's own caches
    from jax._src.util import register_cache as _register_cache

    _register_cache(_SIGNATURES, "batchapply eager reshape signatures")
except ImportError:  # pragma: no cover - clear it by hand: _SIGNATURES.cache_clear()
    pass

One = Callable[[Any, int], Any]
"""The leaf-by-leaf reshape of one leaf and its index, used where a program refuses."""


class Fused:
    """A jitted reshape (``_merge_fused``, ``_split_fused``) with its static arguments, run over
    the concrete ``jax.Array`` leaves of a call: one leaf per dispatch on a signature's first
    call, groups of at most ``_GROUP_SIZE`` leaves once it repeats (issue 12).

    ``min_ndim``: leaves of lower rank come back as None (kept as they are) with no dispatch
    on the leaf-by-leaf path, as the program would return them.
    """

    __slots__ = ("fell_back", "min_ndim", "program", "static")

    def __init__(self, program: Callable[..., Any], static: tuple[Any, ...], min_ndim: int = 0) -> None:
        self.program = program
        self.static = static
        self.min_ndim = min_ndim
        self.fell_back = False  # whether some leaf went through `one`

    def __call__(self, xs: list[Any], at: Sequence[int], one: One) -> list[Any]:
        """Every leaf of ``xs`` reshaped (None: kept); ``at`` their indices, for ``one``."""
        if _SIGNATURES.repeats((self.program, self.static, tuple(map(_aval, xs)))):
            if len(xs) <= _GROUP_SIZE:  # the steady state of up to 128 leaves: one dispatch
                try:
                    reshaped = self.program(xs, *self.static)
                except _REFUSED:  # as in _group
                    reshaped = None
                return self._one_by_one(xs, 0, at, one) if reshaped is None else reshaped
            ys: list[Any] = []
            for start in range(0, len(xs), _GROUP_SIZE):
                ys += self._group(xs[start : start + _GROUP_SIZE], start, at, one)
            return ys
        n = self.min_ndim
        return [self._group([x], j, at, one)[0] if x.ndim >= n else None for j, x in enumerate(xs)]

    def _group(self, group: list[Any], start: int, at: Sequence[int], one: One) -> list[Any]:
        """The program over ``group`` (``xs[start:]``); leaf by leaf with ``one`` where it refuses."""
        try:
            ys = self.program(group, *self.static)
        except _REFUSED:  # see _REFUSED; `one` raises E23 with the leaf's path, or marks E9/E28
            ys = None
        return self._one_by_one(group, start, at, one) if ys is None else ys

    def _one_by_one(self, group: list[Any], start: int, at: Sequence[int], one: One) -> list[Any]:
        """``group`` (``xs[start:]``) leaf by leaf with ``one``: where the program refuses."""
        self.fell_back = True
        return [one(x, at[start + j]) for j, x in enumerate(group)]
