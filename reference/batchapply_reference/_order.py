"""Row orders of SPEC section 14, by explicit index enumeration.

``row_indices(leading, counts)`` lists, for each row of the merged batch in
order, the leading index it comes from. With every count 1 that is the C order
of BA-5.1; otherwise it is the shard-major order of BA-14.2.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from typing import Any

ROW_ORDER_PREFIX = "BatchApply: `row_order` must be"
SHARD_COUNTS_PREFIX = "BatchApply: `row_order` shard counts do not divide"
CHUNK_SHARDS_PREFIX = "BatchApply: `chunk_size` must be a multiple of the shard count"


def check_row_order(row_order: Any, num_dims: int) -> Any:
    """``"C"``, ``"shard_major"``, or a tuple of ``num_dims`` ints >= 1 (SPEC BA-14.1)."""
    if isinstance(row_order, str) and row_order in ("C", "shard_major"):
        return row_order
    if isinstance(row_order, (tuple, list)):
        try:
            counts = tuple(operator.index(s) for s in row_order if not isinstance(s, bool))
        except TypeError:
            counts = ()
        if len(counts) == len(row_order) == num_dims and all(s >= 1 for s in counts):
            return counts
    raise ValueError(
        f"{ROW_ORDER_PREFIX} 'C', 'shard_major', or a tuple of {num_dims} shard counts >= 1 "
        f"(one per leading dim); got {row_order!r}. 'C' (the default) merges as a reshape does; "
        "'shard_major' keeps each device's rows together."
    )


def leaf_counts(x: Any, num_dims: int) -> tuple[int, ...]:
    """Shards per leading dim: 1 for NumPy; a jax.Array's ``sharding.shard_shape`` says (BA-14.4)."""
    sharding = getattr(x, "sharding", None)
    if sharding is None:
        return (1,) * num_dims
    shard = sharding.shard_shape(tuple(x.shape))
    return tuple(x.shape[i] // shard[i] if shard[i] else 1 for i in range(num_dims))


def call_counts(row_order: Any, leading: tuple[int, ...], leaves: Sequence[Any]) -> tuple[int, ...]:
    """The shard counts of one call (SPEC BA-14.3, BA-14.4); all 1 for the C order."""
    n = len(leading)
    counts: tuple[int, ...] = (1,) * n
    if row_order == "shard_major":
        for leaf in leaves:  # the first leaf with a sharded leading dim decides
            if any(s > 1 for s in leaf_counts(leaf, n)):
                counts = leaf_counts(leaf, n)
                break
    elif row_order != "C":
        counts = row_order
    if any(d % s != 0 for d, s in zip(leading, counts, strict=True)):
        raise ValueError(
            f"{SHARD_COUNTS_PREFIX} the leading shape {leading}: got shard counts {counts}. "
            "Each count must divide its leading dim."
        )
    return counts


def row_indices(leading: Sequence[int], counts: Sequence[int]) -> list[tuple[int, ...]]:
    """The leading index of every merged row, in row order (SPEC BA-14.2).

    Leading index ``j_i`` lies in shard ``k_i = j_i // m_i`` at local position
    ``l_i = j_i % m_i``, with ``m_i = d_i // s_i``; rows run over
    ``(k_1, ..., k_n, l_1, ..., l_n)`` in C order.

    >>> row_indices((2, 4), (1, 2))
    [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    """
    n = len(leading)
    local = [d // s for d, s in zip(leading, counts, strict=True)]
    rows = []
    for shard_and_local in itertools.product(*(range(s) for s in counts), *(range(m) for m in local)):
        k, position = shard_and_local[:n], shard_and_local[n:]
        rows.append(tuple(k[i] * local[i] + position[i] for i in range(n)))
    return rows


def check_chunk_size(chunk_size: int, counts: Sequence[int]) -> None:
    """``chunk_size`` counts global rows: a whole number per shard (SPEC BA-14.9, E24)."""
    shards = math.prod(counts)
    if chunk_size % shards:
        raise ValueError(
            f"{CHUNK_SHARDS_PREFIX} {shards} (shard counts {tuple(counts)}); got chunk_size={chunk_size}. "
            f"Every chunk takes chunk_size / {shards} rows from each shard: pass a multiple of {shards}, "
            f"e.g. chunk_size={max(shards, chunk_size - chunk_size % shards)}."
        )


def chunk_rows(size: int, shards: int, chunk_size: int) -> list[Sequence[int]]:
    """The merged rows of every chunk, in chunk order (SPEC BA-13.2, BA-13.3, BA-14.9).

    The merged rows form ``shards`` blocks of ``size // shards`` rows, one per shard
    (BA-14.2). A chunk takes ``chunk_size // shards`` consecutive rows of every block,
    block after block; the last chunk takes what is left of every block. With one shard
    these are BA-13.3's chunks of consecutive rows.

    With one shard a chunk is a ``range`` of consecutive rows: no list of the rows is built,
    so a batch of rows without elements costs no work per row (BA-1.6).

    >>> chunk_rows(8, 2, 4)  # blocks 0..3 and 4..7: two rows of each per chunk
    [[0, 1, 4, 5], [2, 3, 6, 7]]
    >>> chunk_rows(5, 1, 2)
    [range(0, 2), range(2, 4), range(4, 5)]
    """
    if size <= chunk_size:
        return [range(size)]  # BA-13.2: one call with every row
    if shards == 1:  # BA-13.3
        return [range(start, min(start + chunk_size, size)) for start in range(0, size, chunk_size)]
    block, per_block = size // shards, chunk_size // shards
    chunks: list[Sequence[int]] = []
    for start in range(0, block, per_block):
        stop = min(start + per_block, block)
        chunks.append([k * block + j for k in range(shards) for j in range(start, stop)])
    return chunks
