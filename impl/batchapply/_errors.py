"""Every error message of batchapply's core, one builder per row of SPEC section 10's table.

Each builder returns the exception (the caller raises it, so the traceback shows where the
call went wrong); each message names the leaf by its pytree path, says what was expected,
what was got, and how to fix it. Paths are computed only here, when an error is raised
(``Paths``). The Flax wrappers' own messages (outside the table) stay in ``linen`` and ``nnx``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax import tree_util

from batchapply._leaves import ARRAY_TYPES

NO_MERGEABLE_PREFIX = "BatchApply requires at least one input with ndim >= "
LEADING_SHAPE_PREFIX = "BatchApply: inputs disagree on their leading shape"
OUTPUT_PREFIX = "BatchApply: cannot split output"
NUM_DIMS_TYPE_PREFIX = "BatchApply: `num_dims` must be an int"
NUM_DIMS_VALUE_PREFIX = "BatchApply: `num_dims` must be >= 1"
F_PREFIX = "BatchApply: `f` must be callable"
AXIS_VALUE_PREFIX = "BatchApply: axis values must be 0 or None"
IN_AXES_TYPE_PREFIX = "BatchApply: `in_axes` must be 0, None, or a tuple"
IN_AXES_LENGTH_PREFIX = "BatchApply: `in_axes` has"
IN_AXES_PREFIX_PREFIX = "BatchApply: `in_axes` is not a pytree prefix"
OUT_AXES_PREFIX_PREFIX = "BatchApply: `out_axes` is not a pytree prefix"
SPLIT_TYPE_PREFIX = "split_leading_dim: `x` must be an array"
SPLIT_SHAPE_PREFIX = "split_leading_dim: cannot split"
CHUNK_SIZE_TYPE_PREFIX = "BatchApply: `chunk_size` must be an int"
CHUNK_SIZE_VALUE_PREFIX = "BatchApply: `chunk_size` must be >= 1"
CHUNK_OUTPUT_PREFIX = "BatchApply: cannot chunk output"
CHUNK_DISAGREE_PREFIX = "BatchApply: chunk outputs disagree"
CHUNK_SYMBOLIC_PREFIX = "BatchApply: `chunk_size` needs a known number of merged rows"
MATRIX_PREFIX = "BatchApply: cannot merge or split a numpy.matrix"
DICT_KEYS_PREFIX = "BatchApply: dict keys cannot be sorted"
DELETED_PREFIX = "BatchApply: input array has been deleted"
SPLIT_MATRIX_PREFIX = "split_leading_dim: `x` must not be a numpy.matrix"
ROW_ORDER_PREFIX = "BatchApply: `row_order` must be"
SHARD_COUNTS_PREFIX = "BatchApply: `row_order` shard counts do not divide"
INVISIBLE_PREFIX = "BatchApply: row_order='shard_major' cannot see the sharding of"
COMMUNICATION_PREFIX = "BatchApply: this row order needs communication"
CHUNK_SHARDS_PREFIX = "BatchApply: `chunk_size` must be a multiple of the shard count"
C_ORDER_CHUNKS_PREFIX = "BatchApply: chunk_size on a sharded batch needs row_order"


def _is_axis_leaf(x: Any) -> bool:
    return x is None


def paths_of(tree: Any, root: str) -> list[str]:
    """``root`` + keystr of every leaf path of ``tree``; computed only for error messages."""
    return [root + tree_util.keystr(path) for path, _ in tree_util.tree_flatten_with_path(tree)[0]]


class Paths:
    """The paths of a call's input leaves (``args[0]['w']``...), computed on first use (errors only)."""

    __slots__ = ("_args", "_kwargs", "_paths")

    def __init__(self, args: Any, kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        self._paths: list[str] | None = None

    def __call__(self) -> list[str]:
        if self._paths is None:
            self._paths = paths_of(self._args, "args") + paths_of(self._kwargs, "kwargs")
        return self._paths


def structures(axes: Any, tree: Any) -> str:
    """Both tree structures, for a prefix-mismatch message (no array data in it)."""
    axes_def = tree_util.tree_structure(axes, is_leaf=_is_axis_leaf)
    return f"the axes have structure {axes_def}, the value has structure {tree_util.tree_structure(tree)}"


# Construction (E1 to E5, E14, E15; BA-2.6)


def f_type(f: Any) -> TypeError:  # E1
    return TypeError(f"{F_PREFIX}; got {type(f).__name__}.")


def num_dims_type(num_dims: Any) -> TypeError:  # E2
    if isinstance(num_dims, bool):
        return TypeError(f"{NUM_DIMS_TYPE_PREFIX}; got bool {num_dims!r}.")
    return TypeError(f"{NUM_DIMS_TYPE_PREFIX}; got {type(num_dims).__name__} {num_dims!r}.")


def num_dims_value(num_dims: int) -> ValueError:  # E3
    return ValueError(f"{NUM_DIMS_VALUE_PREFIX}; got {num_dims}. It counts the leading dims to merge.")


def axis_value(axis: Any, name: str) -> ValueError:  # E4
    return ValueError(
        f"{AXIS_VALUE_PREFIX}; `{name}` contains {axis!r}. Use 0 to merge (or split) "
        "a leaf and None to pass it through unchanged; to batch over another "
        "axis, move it to the front first (jnp.moveaxis)."
    )


def in_axes_type(in_axes: Any) -> ValueError:  # E5
    return ValueError(
        f"{IN_AXES_TYPE_PREFIX} with one entry per positional argument; "
        f"got {type(in_axes).__name__}. Keyword arguments are always merged."
    )


def chunk_size_type(chunk_size: Any) -> TypeError:  # E14
    if isinstance(chunk_size, bool):
        return TypeError(f"{CHUNK_SIZE_TYPE_PREFIX} or None; got bool {chunk_size!r}.")
    return TypeError(f"{CHUNK_SIZE_TYPE_PREFIX} or None; got {type(chunk_size).__name__} {chunk_size!r}.")


def chunk_size_value(chunk_size: int) -> ValueError:  # E15
    return ValueError(
        f"{CHUNK_SIZE_VALUE_PREFIX}; got {chunk_size}. It is the most merged rows f sees at once."
    )


def read_only(name: str) -> AttributeError:  # BA-2.6
    return AttributeError(
        f"BatchApply: `{name}` is read-only (SPEC BA-2.6): the options are checked at "
        "construction. Build a new BatchApply with the option you want."
    )


# Inputs (E6 to E9, E18, E26 to E28)


def in_axes_length(in_axes: tuple[Any, ...], args: tuple[Any, ...]) -> ValueError:  # E6
    return ValueError(
        f"{IN_AXES_LENGTH_PREFIX} {len(in_axes)} entries but f was called "
        f"with {len(args)} positional arguments. Give one entry (0 or None, or a "
        "pytree prefix of the argument) per positional argument."
    )


def in_axes_prefix(i: int, arg_axes: Any, arg: Any) -> ValueError:  # E7
    return ValueError(
        f"{IN_AXES_PREFIX_PREFIX} of the positional arguments at args[{i}]: "
        f"{structures(arg_axes, arg)}. Each entry of `in_axes` must be 0, None, or a "
        "container of the same type and keys as its argument."
    )


def no_mergeable(n: int) -> ValueError:  # E8
    return ValueError(
        f"{NO_MERGEABLE_PREFIX}{n}, got none. Pass at least one array with "
        f"{n} or more dims, or lower `num_dims`."
    )


def leading_shape(
    leaves: Sequence[Any], mergeable: Sequence[int], n: int, leading: tuple[Any, ...], paths: Paths
) -> ValueError:  # E9 (BA-3.2): every disagreeing leaf by path
    listed = ", ".join(
        f"{paths()[i]} has {tuple(leaves[i].shape[:n])}"
        for i in mergeable
        if tuple(leaves[i].shape[:n]) != leading
    )
    return ValueError(
        f"{LEADING_SHAPE_PREFIX} (the first {n} dims of every merged input): "
        f"{paths()[mergeable[0]]} has {leading}, {listed}. If an argument is not batched "
        "(a weight matrix, say), pass it through unmerged with `in_axes=None` "
        "for it, e.g. BatchApply(f, in_axes=(0, None))."
    )


def chunk_symbolic(path: str, leading: tuple[Any, ...], size: Any) -> ValueError:  # E18 (BA-13.10)
    return ValueError(
        f"{CHUNK_SYMBOLIC_PREFIX}: {path} has the leading shape {leading}, so "
        f"there are {size} merged rows, which is not a number yet (a symbolic shape, as in "
        "jax.export). Chunks are cut at trace time: export with a concrete batch size, or drop "
        "`chunk_size` (the exported program then runs f on all rows at once)."
    )


def matrix(path: str, shape: tuple[int, ...], what: str) -> TypeError:  # E26
    return TypeError(
        f"{MATRIX_PREFIX}: {path} is a numpy.matrix of shape {shape}, which stays "
        f"2-D under reshape, so its rows cannot be {what}. Pass np.asarray of it (an ndarray), "
        "or pass it through unmerged with `in_axes=None` / `out_axes=None`."
    )


def dict_keys(path: str, keys: Sequence[Any]) -> TypeError:  # E27 (BA-1.7)
    kinds = ", ".join(sorted({type(key).__name__ for key in keys}))
    return TypeError(
        f"{DICT_KEYS_PREFIX}: the dict at {path} has keys of types {kinds} that cannot be "
        "compared, and a dict's children are in sorted key order (SPEC BA-1.3). Use keys of "
        "one type (all str, say), or a collections.OrderedDict, which keeps insertion order."
    )


def deleted(path: str, x: Any) -> ValueError:  # E28
    return ValueError(
        f"{DELETED_PREFIX}: {path} (shape {tuple(x.shape)}, dtype {x.dtype}) was deleted "
        "before this call (by x.delete(), or donated to a jitted function with donate_argnums). "
        "Pass a live array: keep a copy, or stop donating it."
    )


# Outputs (E10, E11, E16, E17)


def output_split(
    out_leaves: Sequence[Any], order: Sequence[int], leading: tuple[Any, ...], size: Any, paths: list[str]
) -> ValueError:  # E10 (BA-7.3): every selected output that cannot be split, by path
    listed = ", ".join(
        f"{paths[i]} has shape {tuple(out_leaves[i].shape)}"
        for i in order
        if _is_array(out_leaves[i]) and (out_leaves[i].ndim == 0 or out_leaves[i].shape[0] != size)
    )
    return ValueError(
        f"{OUTPUT_PREFIX} leaves into the leading shape {leading}: "
        f"{listed}; expected rank >= 1 and a leading size of {size}. "
        "If an output is not batched (a loss, say), return it unsplit with "
        "`out_axes=None` for it."
    )


def _is_array(x: Any) -> bool:
    return isinstance(x, ARRAY_TYPES)  # ndim_at_least(x, 0)


def out_axes_prefix(out_axes: Any, outputs: Any) -> ValueError:  # E11
    return ValueError(
        f"{OUT_AXES_PREFIX_PREFIX} of the output of f at output: "
        f"{structures(out_axes, outputs)}. `out_axes` must be 0, None, or a "
        "container of the same type and keys as the output."
    )


def chunk_output(listed: str) -> ValueError:  # E16
    return ValueError(
        f"{CHUNK_OUTPUT_PREFIX} leaves: {listed}. With `chunk_size`, every "
        "output leaf must be an array split by `out_axes` (0), since the chunks' outputs are "
        "concatenated. Compute unbatched values (a loss, say) outside f, or drop `chunk_size`."
    )


def chunk_rows(rows: Any, listed: str) -> ValueError:  # E10 for one chunk (BA-13.6)
    return ValueError(
        f"{OUTPUT_PREFIX} leaves of a chunk of {rows} rows: {listed}; "
        f"expected rank >= 1 and a leading size of {rows}. Each chunk's output must have "
        "one row per row of the chunk; compute unbatched values (a loss, say) outside f."
    )


_CHUNK_ADVICE = "f must return the same structure, dtypes and trailing shapes (shape[1:]) for every chunk."


def chunk_where(k: int, start: int, stop: int, shards: int) -> str:
    """The head of an E17 message: chunk ``k`` and its rows (local rows of every shard)."""
    if shards > 1:
        return (
            f"{CHUNK_DISAGREE_PREFIX}: chunk {k} "
            f"(local rows {start} to {stop - 1} of each of the {shards} shards)"
        )
    return f"{CHUNK_DISAGREE_PREFIX}: chunk {k} (rows {start} to {stop - 1})"


def chunk_structure(where: str, got: list[str], first: list[str]) -> ValueError:  # E17
    return ValueError(
        f"{where} returned the leaves {', '.join(got)}, chunk 0 returned "
        f"{', '.join(first)} (in another structure); {_CHUNK_ADVICE}"
    )


def chunk_leaf(where: str, path: str, leaf: Any, want: Any) -> ValueError:  # E17
    return ValueError(
        f"{where} returned {path} with dtype {leaf.dtype} and shape {tuple(leaf.shape)}, "
        f"chunk 0 returned it with dtype {want.dtype} and shape {tuple(want.shape)}; {_CHUNK_ADVICE}"
    )


def chunk_devices(where: str, path: str, got: list[int], wanted: list[int]) -> ValueError:  # E17
    return ValueError(
        f"{where} returned {path} on devices {got}, chunk 0 returned it on devices "
        f"{wanted}; f must return every chunk's output on the same devices (or uncommitted)."
    )


# Row orders (section 14: E20 to E25)


def row_order_value(row_order: Any, num_dims: int) -> ValueError:  # E20
    return ValueError(
        f"{ROW_ORDER_PREFIX} 'C', 'shard_major', or a tuple of {num_dims} shard counts >= 1 "
        f"(one per leading dim); got {row_order!r}. 'C' (the default) merges as a reshape does; "
        "'shard_major' keeps each device's rows together."
    )


def shard_counts(leading: tuple[Any, ...], counts: tuple[int, ...]) -> ValueError:  # E21
    return ValueError(
        f"{SHARD_COUNTS_PREFIX} the leading shape {leading}: got shard counts {counts}. "
        "Each count must divide its leading dim."
    )


def invisible_sharding(path: str, x: Any, hidden: list[str], n: int) -> ValueError:  # E22
    """``hidden``: the mesh axes that can shard tracer ``x`` unseen (``_sharding.hidden_axes``)."""
    return ValueError(
        f"{INVISIBLE_PREFIX} {path} ({jax.typeof(x)}): under a JAX trace "
        "(jax.jit, grad, vmap, a partially manual shard_map, ...) the mesh axes "
        f"{', '.join(hidden)} can shard a traced array without its type "
        f"showing it. Pass the shard counts, e.g. row_order={(1,) * (n - 1) + (8,)} for a "
        "last leading dim split over 8 devices, or use Explicit mesh axes "
        "(jax.make_mesh(..., axis_types=...))."
    )


def communication(x: Any, path: str, row_order: Any) -> ValueError:  # E23
    return ValueError(
        f"{COMMUNICATION_PREFIX}: {path} is {jax.typeof(x)}, and merging or splitting its leading "
        f"dims in row_order={row_order!r} would move rows between devices. With Explicit mesh axes "
        "BatchApply does not communicate behind your back: pass row_order='shard_major' (each "
        "device keeps its rows, SPEC BA-14.2), or reshard the leaf yourself "
        "(jax.sharding.reshard) to the order you want."
    )


def chunk_shards(chunk_size: int, shards: int, counts: tuple[int, ...]) -> ValueError:  # E24
    return ValueError(
        f"{CHUNK_SHARDS_PREFIX} {shards} (shard counts {tuple(counts)}); got chunk_size={chunk_size}. "
        f"Every chunk takes chunk_size / {shards} rows from each shard: pass a multiple of {shards}, "
        f"e.g. chunk_size={max(shards, chunk_size - chunk_size % shards)}."
    )


def c_order_chunks(path: str, x: Any, counts: tuple[int, ...], shards: int) -> ValueError:  # E25
    return ValueError(
        f"{C_ORDER_CHUNKS_PREFIX}: {path} is {jax.typeof(x)}, cut into shard counts "
        f"{counts} over its leading dims, and row_order='C' would cut chunks of consecutive "
        "rows, which sit on one device at a time (or move rows between devices). For local "
        "chunks, pass row_order='shard_major' (or the counts, "
        f"row_order={counts}) with a chunk_size that is a multiple of {shards}: each chunk "
        f"then takes chunk_size / {shards} rows from every shard (SPEC BA-14.9). Or reshard "
        "the batch to one device (jax.sharding.reshard) to chunk in C order."
    )


# The helpers (E12, E13, E29)


def split_type(x: Any) -> TypeError:  # E12
    return TypeError(
        f"{SPLIT_TYPE_PREFIX} (numpy or jax); got {type(x).__name__}. "
        "Only array leaves have a leading dim to split."
    )


def split_rank(to_dim: Any) -> ValueError:  # E13
    return ValueError(
        f"{SPLIT_SHAPE_PREFIX} shape () into to_dim {to_dim}: x has rank 0; expected rank >= 1."
    )


def split_to_dim(shape: tuple[Any, ...], to_dim: Any) -> ValueError:  # E13
    return ValueError(
        f"{SPLIT_SHAPE_PREFIX} shape {shape} into to_dim {to_dim!r}: to_dim must be a tuple "
        "or list of integers (bool excluded). Pass e.g. (2, 3), or (-1, 3) to infer one size."
    )


def split_shape(shape: tuple[Any, ...], to_dim: tuple[Any, ...], why: str) -> ValueError:  # E13
    leading = shape[0]
    return ValueError(
        f"{SPLIT_SHAPE_PREFIX} shape {shape} (leading size {leading}) into to_dim {to_dim}: {why}. "
        f"Pass sizes whose product is {leading}, or -1 for one of them."
    )


def helper_matrix(helper: str, x: Any) -> TypeError:  # E29
    """A helper given a ``numpy.matrix``, which is 2-D whatever it is reshaped to."""
    return TypeError(
        f"{helper}: `x` must not be a numpy.matrix; got one of shape {x.shape}. A matrix stays 2-D "
        "under reshape, so its rows cannot be merged or split. Pass np.asarray(x)."
    )
