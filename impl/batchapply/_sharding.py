"""Row orders for sharded inputs (SPEC section 14).

The C order of BA-5.1 keeps a merge local only when no leading dim but the first
is sharded. The shard-major order splits each leading dim ``i`` into
``(s_i shards, d_i // s_i local)`` and merges in the C order of
``(k_1..k_n, l_1..l_n)``: every device keeps its own rows, so merge and split
need no communication. With every ``s_i == 1`` it is the C order.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType

try:  # raised by jax's reshape under Explicit mesh axes when rows would move
    from jax._src.core import ShardingTypeError as _ShardingTypeError

    SHARDING_TYPE_ERRORS: tuple[type[Exception], ...] = (_ShardingTypeError,)
except ImportError:  # pragma: no cover - a jax without it: nothing to translate
    SHARDING_TYPE_ERRORS = ()

ROW_ORDER_PREFIX = "BatchApply: `row_order` must be"
SHARD_COUNTS_PREFIX = "BatchApply: `row_order` shard counts do not divide"
INVISIBLE_PREFIX = "BatchApply: row_order='shard_major' cannot see the sharding of"
COMMUNICATION_PREFIX = "BatchApply: this row order needs communication"

Counts = tuple[int, ...] | None  # None: the C order (every count 1)


def check_row_order(row_order: Any, num_dims: int) -> Any:
    """``"C"``, ``"shard_major"``, or a tuple of ``num_dims`` ints >= 1 (SPEC BA-14.1); E20 otherwise."""
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


def leaf_counts(x: Any, num_dims: int) -> tuple[int, ...] | None:
    """How many shards each leading dim of ``x`` is split into; None when jax does not say.

    NumPy arrays have one shard. A concrete jax.Array says through its sharding. A tracer
    says through its type (BA-14.4): Explicit axes show in it; Manual axes (inside
    ``jax.shard_map``) hide nothing, since ``f`` sees the local shard; with no mesh there is
    nothing to hide. Only an Auto axis of size above 1 can shard it unseen: then None.
    """
    if isinstance(x, (np.ndarray, np.generic)):
        return (1,) * num_dims
    if isinstance(x, jax.core.Tracer):
        sharding = jax.typeof(x).sharding
        mesh = sharding.mesh
        if hidden_axes(x):
            return None
        if mesh.empty:
            return (1,) * num_dims
        spec = tuple(sharding.spec) + (None,) * num_dims
        names = [() if e is None else (e if isinstance(e, tuple) else (e,)) for e in spec[:num_dims]]
        sizes = x.shape[:num_dims]  # a dim of size 0 has count 1 (BA-14.12)
        return tuple(
            1 if d == 0 else math.prod(mesh.shape[name] for name in axes)
            for d, axes in zip(sizes, names, strict=True)
        )
    shard = x.sharding.shard_shape(tuple(x.shape))
    return tuple(d // s if s else 1 for d, s in zip(x.shape[:num_dims], shard[:num_dims], strict=True))


def hidden_axes(x: Any) -> list[str]:
    """The mesh axes that could shard tracer ``x`` without its type showing it: Auto, size > 1."""
    mesh = jax.typeof(x).sharding.mesh
    if mesh.empty:
        return []
    sizes = dict(zip(mesh.axis_names, mesh.axis_sizes, strict=True))
    return [
        f"{name!r} (Auto, size {sizes[name]})"
        for name, kind in zip(mesh.axis_names, mesh.axis_types, strict=True)
        if kind == AxisType.Auto and sizes[name] > 1
    ]


def call_counts(
    row_order: Any, leading: tuple[Any, ...], leaves: Sequence[Any], paths: Callable[[], list[str]]
) -> Counts:
    """The shard counts of this call (SPEC BA-14.3, BA-14.4), or None when all are 1.

    The merge needs only ``order_counts`` of them; the chunks need them all (BA-14.9).

    ``leaves`` are the mergeable leaves in leaf order; ``paths()`` their paths (for errors).
    """
    n = len(leading)
    if row_order == "C":
        return None
    if row_order == "shard_major":
        found = [leaf_counts(leaf, n) for leaf in leaves]
        if None in found:
            i = found.index(None)
            raise ValueError(
                f"{INVISIBLE_PREFIX} {paths()[i]} ({jax.typeof(leaves[i])}): under a JAX trace "
                "(jax.jit, grad, vmap, a partially manual shard_map, ...) the mesh axes "
                f"{', '.join(hidden_axes(leaves[i]))} can shard a traced array without its type "
                f"showing it. Pass the shard counts, e.g. row_order={(1,) * (n - 1) + (8,)} for a "
                "last leading dim split over 8 devices, or use Explicit mesh axes "
                "(jax.make_mesh(..., axis_types=...))."
            )
        counts = next((c for c in found if c is not None and any(s > 1 for s in c)), None)
    else:
        counts = row_order
    if counts is None:
        return None
    if any(d % s for d, s in zip(leading, counts, strict=True)):
        raise ValueError(
            f"{SHARD_COUNTS_PREFIX} the leading shape {leading}: got shard counts {counts}. "
            "Each count must divide its leading dim."
        )
    return None if all(s == 1 for s in counts) else counts


def _explicit_counts(x: Any, num_dims: int) -> tuple[int, ...] | None:
    """The counts of a leaf sharded over Explicit mesh axes; None for any other leaf."""
    if isinstance(x, (np.ndarray, np.generic)):
        return None
    sharding = jax.typeof(x).sharding if isinstance(x, jax.core.Tracer) else x.sharding
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty or AxisType.Explicit not in mesh.axis_types:
        return None
    return leaf_counts(x, num_dims)


def is_local(leaf: tuple[int, ...], call: tuple[int, ...]) -> bool:
    """Whether a leaf cut into ``leaf`` shards per leading dim keeps its rows in order ``call``.

    True when the leaf is not cut; when both orders are the C order (no count above 1 after
    the first dim, BA-14.2); or when the leaf is cut exactly as the call's counts on some dims
    and not at all on the others, and the cut dims come first among the call's counts above 1
    (so each device's rows form one block of the merged batch).
    """
    if all(c == 1 for c in leaf) or (all(c == 1 for c in leaf[1:]) and all(s == 1 for s in call[1:])):
        return True
    cut = [c == s > 1 for c, s in zip(leaf, call, strict=True)]
    if not all(c == 1 or cut[dim] for dim, c in enumerate(leaf)):
        return False
    above_one = [cut[dim] for dim, s in enumerate(call) if s > 1]
    return above_one == sorted(above_one, reverse=True)  # the cut ones first


def c_order_is_local(x: Any, num_dims: int) -> bool:
    """Whether merging (or splitting) ``x`` in C order keeps every device's rows on it (BA-14.6).

    Only leaves sharded over Explicit mesh axes can fail; on a tracer this reads its type,
    so inside the fused eager reshape it runs once per signature, at trace time.
    """
    explicit = _explicit_counts(x, num_dims)
    return explicit is None or is_local(explicit, (1,) * num_dims)


def _communication_error(x: Any, path: str, row_order: Any) -> ValueError:
    return ValueError(
        f"{COMMUNICATION_PREFIX}: {path} is {jax.typeof(x)}, and merging or splitting its leading "
        f"dims in row_order={row_order!r} would move rows between devices. With Explicit mesh axes "
        "BatchApply does not communicate behind your back: pass row_order='shard_major' (each "
        "device keeps its rows, SPEC BA-14.2), or reshard the leaf yourself "
        "(jax.sharding.reshard) to the order you want."
    )


def merge(
    x: Any, num_dims: int, counts: Counts, row_order: Any, paths: Callable[[], list[str]], i: int
) -> Any:
    """``x`` with its leading dims merged in the order of ``counts`` (BA-5.1, BA-14.2)."""
    leading, rest = tuple(x.shape[:num_dims]), tuple(x.shape[num_dims:])
    explicit = _explicit_counts(x, num_dims)
    if explicit is not None and not is_local(explicit, counts or (1,) * num_dims):  # BA-14.6
        raise _communication_error(x, paths()[i], row_order)
    try:
        if counts is None:
            return x.reshape((math.prod(leading),) + rest)
        # Split each sharded leading dim into (shards, local), one split per reshape (what
        # Explicit axes accept); then bring the shard factors to the front and merge. A count of
        # 1 adds no factor: jax's merge rule wants the sharded factor first.
        sharded = [dim for dim in range(num_dims) if counts[dim] > 1]
        y = x
        for dim in reversed(sharded):
            y = y.reshape(y.shape[:dim] + (counts[dim], leading[dim] // counts[dim]) + y.shape[dim + 1 :])
        where = [dim + sum(1 for d in sharded if d <= dim) for dim in range(num_dims)]  # local factors
        front = [where[dim] - 1 for dim in sharded]
        y = y.transpose(front + where + list(range(num_dims + len(sharded), y.ndim)))
        return y.reshape((math.prod(leading),) + rest)
    except SHARDING_TYPE_ERRORS:
        raise _communication_error(x, paths()[i], row_order) from None


def split(
    y: Any, leading: tuple[Any, ...], counts: Counts, row_order: Any, paths: Callable[[], list[str]], i: int
) -> Any:
    """``y`` with its leading dim split into ``leading`` in the order of ``counts`` (BA-7.2, BA-14.2)."""
    rest = tuple(y.shape[1:])
    try:
        if counts is None:
            return y.reshape(leading + rest)
        n = len(leading)
        sharded = [dim for dim in range(n) if counts[dim] > 1]
        local = tuple(d // s for d, s in zip(leading, counts, strict=True))
        z = y.reshape(tuple(counts[dim] for dim in sharded) + local + rest)
        order: list[int] = []  # each sharded dim's shard factor right before its local factor
        for dim in range(n):
            if dim in sharded:
                order.append(sharded.index(dim))
            order.append(len(sharded) + dim)
        z = z.transpose(order + list(range(len(sharded) + n, z.ndim)))
        for dim in range(n):  # merge each (shards, local) pair back into its leading dim
            if counts[dim] > 1:
                z = z.reshape(z.shape[:dim] + (leading[dim],) + z.shape[dim + 2 :])
        return z
    except SHARDING_TYPE_ERRORS:
        raise _communication_error(y, paths()[i], row_order) from None


# Chunking on sharded inputs (SPEC BA-14.9 to BA-14.11). The merged rows form ``shards``
# blocks, one per shard (BA-14.2); a chunk takes the same local rows of every block. Every
# function below only splits the merged dim into (shards, local rows), slices or moves the
# local factor, and merges back with the shard factor first: the rows never leave their device.

CHUNK_SHARDS_PREFIX = "BatchApply: `chunk_size` must be a multiple of the shard count"
C_ORDER_CHUNKS_PREFIX = "BatchApply: chunk_size on a sharded batch needs row_order"


def order_counts(shards: Counts) -> Counts:
    """The counts that the merge and split need: None (the C order) when at most the first
    leading dim is cut (BA-14.2); the chunks still need ``shards`` (BA-14.9)."""
    if shards is None or all(s == 1 for s in shards[1:]):
        return None
    return shards


def check_chunk_size(chunk_size: int, counts: tuple[int, ...]) -> None:
    """``chunk_size`` counts global rows: a whole number per shard (SPEC BA-14.9, E24)."""
    shards = math.prod(counts)
    if chunk_size % shards:
        raise ValueError(
            f"{CHUNK_SHARDS_PREFIX} {shards} (shard counts {tuple(counts)}); got chunk_size={chunk_size}. "
            f"Every chunk takes chunk_size / {shards} rows from each shard: pass a multiple of {shards}, "
            f"e.g. chunk_size={max(shards, chunk_size - chunk_size % shards)}."
        )


def check_c_order_chunks(leaves: Sequence[Any], num_dims: int, paths: Callable[[], list[str]]) -> None:
    """E25 (SPEC BA-14.11): the C order's chunks of consecutive rows on a sharded batch.

    ``leaves`` are the mergeable leaves, ``paths()`` their paths. Tracers that hide their
    sharding (Auto axes under jit) pass: jax cannot say, and XLA communicates (BA-14.7).
    """
    for i, x in enumerate(leaves):
        counts = leaf_counts(x, num_dims)
        if counts is not None and any(s > 1 for s in counts):
            shards = math.prod(counts)
            raise ValueError(
                f"{C_ORDER_CHUNKS_PREFIX}: {paths()[i]} is {jax.typeof(x)}, cut into shard counts "
                f"{counts} over its leading dims, and row_order='C' would cut chunks of consecutive "
                "rows, which sit on one device at a time (or move rows between devices). For local "
                "chunks, pass row_order='shard_major' (or the counts, "
                f"row_order={counts}) with a chunk_size that is a multiple of {shards}: each chunk "
                f"then takes chunk_size / {shards} rows from every shard (SPEC BA-14.9). Or reshard "
                "the batch to one device (jax.sharding.reshard) to chunk in C order."
            )


def chunk_of(y: Any, shards: int, start: int, stop: int) -> Any:
    """Local rows ``start`` to ``stop - 1`` of every shard's block of ``y``, block after block.

    One chunk of BA-14.9, for a NumPy array or a jax.Array; with one shard, ``y[start:stop]``.
    """
    if shards == 1:
        return y[start:stop]
    rest = tuple(y.shape[1:])
    blocks = y.reshape((shards, y.shape[0] // shards) + rest)
    return blocks[:, start:stop].reshape((shards * (stop - start),) + rest)


def join_chunks(pieces: Sequence[Any], shards: int, concatenate: Callable[..., Any]) -> Any:
    """The merged rows of a leaf from its chunks' outputs (``chunk_of`` inverted, BA-14.9).

    ``concatenate`` is ``np.concatenate`` or ``jnp.concatenate``; with one shard the
    pieces are simply concatenated (BA-13.5).
    """
    if shards == 1:
        return concatenate(pieces)
    rest = tuple(pieces[0].shape[1:])
    blocks = [piece.reshape((shards, piece.shape[0] // shards) + rest) for piece in pieces]
    joined = concatenate(blocks, axis=1)
    return joined.reshape((shards * joined.shape[1],) + rest)


def stack_chunks(y: Any, shards: int, n_full: int, per_shard: int) -> Any:
    """The ``n_full`` full chunks of ``y`` stacked for ``jax.lax.map``: ``[n_full, shards * per_shard, ...]``.

    Chunk ``q`` holds local rows ``q * per_shard`` to ``q * per_shard + per_shard - 1`` of
    every shard's block (BA-14.9); the shard factor stays sharded (dim 0, then dim 1 once
    the chunk factor moves before it).
    """
    rest = tuple(y.shape[1:])
    blocks = y.reshape((shards, y.shape[0] // shards) + rest)
    if n_full * per_shard != blocks.shape[1]:
        blocks = jax.lax.slice_in_dim(blocks, 0, n_full * per_shard, axis=1)
    chunks = blocks.reshape((shards, n_full, per_shard) + rest).swapaxes(0, 1)
    return chunks.reshape((n_full, shards * per_shard) + rest)


def unstack_chunks(stacked: Any, shards: int, last: Any = None) -> Any:
    """The merged rows from ``jax.lax.map``'s stacked chunk outputs and the last chunk's (BA-14.9)."""
    n_full, rows = stacked.shape[:2]
    rest = tuple(stacked.shape[2:])
    blocks = stacked.reshape((n_full, shards, rows // shards) + rest).swapaxes(0, 1)
    blocks = blocks.reshape((shards, n_full * (rows // shards)) + rest)
    if last is not None:
        tail = last.reshape((shards, last.shape[0] // shards) + rest)
        blocks = jax.numpy.concatenate([blocks, tail], axis=1)
    return blocks.reshape((shards * blocks.shape[1],) + rest)
