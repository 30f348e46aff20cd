"""Executor "map": the full chunks in one ``jax.lax.map``, ``f`` traced once, then the rest (BA-13.4).

The chunks are those of BA-13.3 (consecutive merged rows) or, on a sharded batch, those of
BA-14.9 (the same local rows of every shard): ``shards`` is a parameter, not another executor.
The Flax wrappers replace ``jax.lax.map`` with their lifted scans through ``map_chunks``
(``BatchApply._map_chunks``, BA-12.12).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from batchapply import _sharding
from batchapply._chunks import Chunk, Job


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


def run_mapped(job: Job) -> tuple[Any, bool]:
    """The full chunks through ``job.map_chunks``, the rest in one more call; not split."""
    plan = job.plan
    assert plan.chunks is not None
    shards = plan.shards
    block, c = plan.size // shards, plan.chunks.chunk_size // shards
    n_full, rest = divmod(block, c)
    traced: list[Any] = []

    def body(chunk_ys: list[jax.Array]) -> list[Any]:
        out_leaves, out_def = job.check(job.call(chunk_ys), shards * c)
        traced.append(out_def)
        return out_leaves

    mapped = job.map_chunks(body, [_stack(y, shards, n_full, c) for y in job.ys])
    first = Chunk.from_stacked(traced[-1], mapped)
    if not rest:
        return first.with_leaves([_unstack(m, shards) for m in mapped]), False
    start = n_full * c
    output = job.call([_sharding.chunk_of(y, shards, start, block) for y in job.ys])
    last = Chunk(output, *job.check(output, shards * rest))
    last.check_agrees(n_full, start, block, first, shards)
    return first.with_leaves(
        [_unstack(m, shards, leaf) for m, leaf in zip(mapped, last.leaves, strict=True)]
    ), False
