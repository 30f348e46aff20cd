"""Executor "loop": ``f`` called once per chunk of consecutive merged rows (SPEC BA-13.4).

Eagerly, nothing of ``f`` is compiled, so nothing stale is ever reused, and each chunk's rows
are taken straight from the inputs: a ``jax.Array`` on a CPU device is sliced in host memory
(``on_host``: a NumPy view, no compile); other ``jax.Array`` leaves by one cached jitted slice
per chunk (``_take_rows``, which also merges the leading dims of a lazy leaf); NumPy leaves as
NumPy views. Under a trace (when ``jax.lax.map`` cannot hold the call, or the Flax wrappers
call ``f`` once per chunk), tracers are sliced in the trace. The outputs are concatenated, and
split, once (``_chunks.Chunk.concatenate``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import numpy as np

from batchapply._chunks import Chunk, Job, to_device
from batchapply._leaves import CONCRETE, kind, on_host, one_placement


@functools.partial(jax.jit, static_argnums=(2, 3))
def _take_rows(xs: list[jax.Array], start: jax.Array, rows: int, num_dims: int) -> list[jax.Array]:
    """Merged rows ``start`` to ``start + rows - 1`` of every leaf, in one dispatch (eager chunking).

    The leaves may still have their ``num_dims`` leading dims: merging them here, inside the
    program, slices the rows straight out of the input, with no merged copy of the whole leaf.
    ``start`` is an argument, so one program serves every chunk of ``rows`` rows: it is compiled
    once per signature and holds no part of ``f`` (it is safe to reuse across calls).
    """
    out = []
    for x in xs:
        merged = x.reshape((math.prod(x.shape[:num_dims]),) + tuple(x.shape[num_dims:]))
        out.append(jax.lax.dynamic_slice_in_dim(merged, start, rows))
    return out


class _Rows:
    """Takes the merged rows of a chunk from every merged leaf: on the host, on the device, or by slicing."""

    def __init__(self, ys: list[Any], size: int, dims: int, eager: bool) -> None:
        on_jax = [j for j, y in enumerate(ys) if kind(y) == CONCRETE] if eager else []
        # CPU leaves: rows of a NumPy view, back on the device without a copy or compile (on_host).
        self.host = {
            j: np.asarray(ys[j]).reshape((size,) + ys[j].shape[dims:]) for j in on_jax if on_host(ys[j])
        }
        self.on_jax = [j for j in on_jax if j not in self.host]
        self.by_slicing = sorted(set(range(len(ys))) - set(self.on_jax) - set(self.host))
        self.ys, self.dims = ys, dims

    def take(self, start: int, stop: int) -> list[Any]:
        """The merged rows ``start`` to ``stop - 1`` of every merged leaf."""
        ys = self.ys
        rows: list[Any] = list(ys)
        for j in self.by_slicing:
            rows[j] = ys[j][start:stop]
        for j, view in self.host.items():
            rows[j] = to_device(view[start:stop], ys[j])
        on_jax = self.on_jax
        if on_jax:
            groups = [on_jax] if one_placement([ys[j] for j in on_jax]) else [[j] for j in on_jax]
            # `start` is a Python int, sent to the device: ours, not a transfer to guard against.
            with jax.transfer_guard_host_to_device("allow"):
                taken = [
                    y for g in groups for y in _take_rows([ys[j] for j in g], start, stop - start, self.dims)
                ]
            for j, y in zip(on_jax, taken, strict=True):
                rows[j] = y
        return rows


def run_loop(job: Job) -> tuple[Any, bool]:
    """The chunks of BA-13.3, one call of ``f`` each; the outputs, and whether they are split."""
    plan = job.plan
    assert plan.chunks is not None
    size, c = plan.size, plan.chunks.chunk_size
    rows = _Rows(job.ys, size, plan.chunks.dims, plan.chunks.eager)
    chunks: list[Chunk] = []
    for k, start in enumerate(range(0, size, c)):  # BA-13.3
        stop = min(start + c, size)
        output = job.call(rows.take(start, stop))
        chunk = Chunk(output, *job.check(output, stop - start))
        if chunks:
            chunk.check_agrees(k, start, stop, chunks[0])
        chunks.append(chunk)
    return Chunk.concatenate(chunks, plan.leading if plan.counts is None else None)
