"""Executor "local": ``f`` called once per chunk of a sharded batch, each chunk taking the same
local rows of every shard, so that no row leaves its device (SPEC BA-14.9)."""

from __future__ import annotations

from typing import Any

from batchapply import _sharding
from batchapply._chunks import Chunk, Job


def run_local(job: Job) -> tuple[Any, bool]:
    """The chunks of BA-14.9, one call each; the outputs in merged row order, not split."""
    plan = job.plan
    assert plan.chunks is not None
    shards = plan.shards
    block, c = plan.size // shards, plan.chunks.chunk_size // shards
    chunks: list[Chunk] = []
    for k, start in enumerate(range(0, block, c)):
        stop = min(start + c, block)
        output = job.call([_sharding.chunk_of(y, shards, start, stop) for y in job.ys])
        chunk = Chunk(output, *job.check(output, shards * (stop - start)))
        if chunks:
            chunk.check_agrees(k, start, stop, chunks[0], shards)
        chunks.append(chunk)
    return Chunk.join(chunks, shards), False
