"""Executor "map": the full chunks in one ``jax.lax.map``, ``f`` traced once, then the rest (BA-13.4).

The chunks are those of BA-13.3 (consecutive merged rows) or, on a sharded batch, those of
BA-14.9 (the same local rows of every shard): ``shards`` is a parameter, not another executor.
The Flax wrappers replace ``jax.lax.map`` with their lifted scans through ``map_chunks``
(``BatchApply._map_chunks``, BA-12.12); inside a Haiku transform it is ``haiku.scan`` (``lax_map``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from batchapply import _sharding
from batchapply._chunks import Chunk, Job
from batchapply._leaves import NUMPY, kind


def _stack(y: Any, shards: int, n_full: int, c: int) -> Any:
    """The ``n_full`` full chunks of ``y`` stacked on a new leading axis."""
    if shards > 1:
        return _sharding.stack_chunks(y, shards, n_full, c)
    if n_full * c != y.shape[0]:
        y = jax.lax.slice_in_dim(y, 0, n_full * c)
    return y.reshape((n_full, c) + tuple(y.shape[1:]))


def _unstack(m: Any, shards: int, last: Any = None) -> Any:
    """The merged rows from the stacked chunk outputs ``m`` and the last chunk's (None: no rest)."""
    if shards > 1:
        return _sharding.unstack_chunks(m, shards, last)
    merged = m.reshape((m.shape[0] * m.shape[1],) + tuple(m.shape[2:]))
    return merged if last is None else jnp.concatenate([merged, last])


def _as_jax(ys: list[Any]) -> list[Any]:
    """The merged NumPy leaves as jax values, for every chunk of the mapped path (BA-13.4).

    ``jax.lax.map`` turns the full chunks' rows into tracers: the last chunk gets the same
    type, so that ``f`` sees one array type per argument whatever ``chunk_size`` is.
    """
    return [jnp.asarray(y) if kind(y) == NUMPY else y for y in ys]


def lax_map(body: Callable[[list[Any]], list[Any]], stacked: list[Any]) -> list[Any]:
    """``body`` over the stacked full chunks: one ``jax.lax.map``, or inside a Haiku transform
    ``haiku.scan``, which carries Haiku's state (in ``init`` it runs the first chunk outside the
    loop, so that parameters are created outside it)."""
    haiku = sys.modules.get("haiku")
    if haiku is not None and _inside_haiku_transform(haiku):
        return list(haiku.scan(lambda carry, chunk: (carry, body(chunk)), (), stacked)[1])
    return jax.lax.map(body, stacked)


def _inside_haiku_transform(haiku: Any) -> bool:
    """Whether this call runs inside ``haiku.transform`` (Haiku is imported, never by us)."""
    try:
        haiku.running_init()
    except ValueError:
        return False
    return True


def run_mapped(job: Job) -> tuple[Any, bool]:
    """The full chunks through ``job.map_chunks``, the rest in one more call; not split."""
    plan = job.plan
    assert plan.chunks is not None
    shards = plan.shards
    block, c = plan.size // shards, plan.chunks.chunk_size // shards
    n_full, rest = divmod(block, c)
    traced: list[Chunk] = []
    ys = _as_jax(job.ys)

    def body(chunk_ys: list[jax.Array]) -> list[Any]:
        out_leaves, out_def = job.check(job.call(chunk_ys), shards * c)
        traced.append(Chunk.traced(out_leaves, out_def))
        return out_leaves

    mapped = job.map_chunks(body, [_stack(y, shards, n_full, c) for y in ys])
    first = traced[-1]
    if not rest:
        return first.with_leaves([_unstack(m, shards) for m in mapped]), False
    start = n_full * c
    output = job.call([_sharding.chunk_of(y, shards, start, block) for y in ys])
    last = Chunk(output, *job.check(output, shards * rest))
    last.check_agrees(n_full, start, block, first, shards)
    return first.with_leaves(
        [_unstack(m, shards, leaf) for m, leaf in zip(mapped, last.leaves, strict=True)]
    ), False
