"""The reference BatchApply: slow, plain NumPy, checkable by eye against SPEC.md.

For NumPy leaves, merging and splitting enumerate indices in C order and copy
row by row; they never call ``reshape``, so they are an independent derivation
of BA-5.1 and BA-7.2, not a restatement of what the implementation does. A
masked array's data and mask are copied alike (BA-5.7).

A ``jax.Array`` leaf (any array leaf that is not NumPy) is merged and split by
its own methods (``reshape``, ``transpose``, indexing), never converted to
NumPy and back, so that it keeps its dtype (64-bit ones outside
``jax.enable_x64`` too), weak type, devices, and typed PRNG keys (BA-5.6). The
reference never imports jax: joining chunk outputs uses the ``jax.numpy`` that
whoever made the array has already loaded (``sys.modules``).
"""

from __future__ import annotations

import collections
import itertools
import math
import operator
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np

from batchapply_reference import _order, _tree

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
MATRIX_PREFIX = "BatchApply: cannot merge or split a numpy.matrix"
DICT_KEYS_PREFIX = "BatchApply: dict keys cannot be sorted"
DELETED_PREFIX = "BatchApply: input array has been deleted"
C_ORDER_CHUNKS_PREFIX = "BatchApply: chunk_size on a sharded batch needs row_order"
OPTIONS = frozenset({"f", "num_dims", "in_axes", "out_axes", "chunk_size", "row_order"})
SPLIT_MATRIX_PREFIX = "split_leading_dim: `x` must not be a numpy.matrix"


def is_array(x: object) -> bool:
    """True for the array leaves of SPEC BA-1.1: NumPy arrays and scalars, jax.Array.

    jax is never imported here: a jax.Array can only exist once jax is loaded.
    """
    if isinstance(x, (np.ndarray, np.generic)):
        return True
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.Array)


def _c_order_indices(shape: Sequence[int]) -> itertools.product[tuple[int, ...]]:
    """Every index of ``shape``, last axis fastest (C order)."""
    return itertools.product(*(range(d) for d in shape))


def _is_tracer(x: Any) -> bool:
    """A JAX tracer: an array leaf under a transformation, with no devices or buffer to ask about."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def _is_numpy(x: Any) -> bool:
    """NumPy array leaves; every other array leaf is a ``jax.Array`` (BA-1.1)."""
    return isinstance(x, (np.ndarray, np.generic))


def _numpy_parts(x: Any, copy: Callable[[np.ndarray], np.ndarray]) -> Any:
    """``copy`` of a NumPy array; of a masked array's data and mask alike, keeping its type (BA-5.7)."""
    if not isinstance(x, np.ma.MaskedArray):
        copied = copy(np.asarray(x))
        return copied if type(x) is np.ndarray else copied.view(type(x))  # the subclass stays (BA-5.3)
    mask = np.ma.getmask(x)
    if mask is not np.ma.nomask:
        mask = copy(np.asarray(mask))
    return np.ma.MaskedArray(copy(np.ma.getdata(x)), mask=mask, fill_value=x.fill_value)


def _rows_in_order(leading: tuple[int, ...], counts: tuple[int, ...] | None) -> Sequence[tuple[int, ...]]:
    """The leading index of every merged row: C order (BA-5.1), or shard-major by ``counts`` (BA-14.2)."""
    return list(_c_order_indices(leading)) if counts is None else _order.row_indices(leading, counts)


def _replicated(x: Any) -> Any:
    """``x`` replicated on its own devices when it is sharded over Explicit mesh axes.

    jax's reshape refuses to move rows between devices implicitly there (a ``ShardingTypeError``);
    the reference does not mind the communication (BA-14.6 binds only ``batchapply``), and the
    devices stay those of ``x`` (BA-5.6).
    """
    jax = sys.modules["jax"]
    mesh = getattr(getattr(x, "sharding", None), "mesh", None)
    if isinstance(x, jax.core.Tracer) or jax.sharding.AxisType.Explicit not in getattr(
        mesh, "axis_types", ()
    ):
        return x
    return jax.sharding.reshard(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def _jax_merge(x: Any, num_dims: int, counts: tuple[int, ...] | None) -> Any:
    """``x`` merged by its own ``reshape`` (C order); with ``counts``, shard-major (BA-14.2, BA-5.6).

    Leading dim ``d_i`` is read as ``(s_i, d_i // s_i)``, index ``(k_i, l_i)``;
    moving every ``k_i`` before every ``l_i`` orders the rows by ``(k_1..k_n, l_1..l_n)``.
    """
    leading, trailing = tuple(x.shape[:num_dims]), tuple(x.shape[num_dims:])
    x = _replicated(x)
    if counts is not None:
        n, r = num_dims, len(trailing)
        x = x.reshape(tuple(p for d, s in zip(leading, counts, strict=True) for p in (s, d // s)) + trailing)
        x = x.transpose(*range(0, 2 * n, 2), *range(1, 2 * n, 2), *range(2 * n, 2 * n + r))
    return x.reshape((math.prod(leading),) + trailing)


def _jax_split(y: Any, leading: tuple[int, ...], counts: tuple[int, ...] | None) -> Any:
    """The inverse of :func:`_jax_merge`: ``y`` split by its own ``reshape`` and ``transpose``."""
    trailing = tuple(y.shape[1:])
    y = _replicated(y)
    if counts is not None:
        n, r = len(leading), len(trailing)
        local = tuple(d // s for d, s in zip(leading, counts, strict=True))
        y = y.reshape(tuple(counts) + local + trailing)  # (k_1..k_n, l_1..l_n)
        y = y.transpose(*(axis for i in range(n) for axis in (i, n + i)), *range(2 * n, 2 * n + r))
    return y.reshape(leading + trailing)


def _split(y: Any, leading: tuple[int, ...], counts: tuple[int, ...] | None = None) -> Any:
    """``z[rows[i]] = y[i]`` for the merged rows' leading indices ``rows`` (BA-7.2, BA-14.2)."""
    if not _is_numpy(y):
        return _jax_split(y, leading, counts)

    def copy(source: np.ndarray) -> np.ndarray:
        split = np.empty(leading + source.shape[1:], dtype=source.dtype)
        if split.size == 0:
            return split  # BA-1.6: no element to copy, so no row to visit
        for row, index in enumerate(_rows_in_order(leading, counts)):
            split[index] = source[row]
        return split

    return _numpy_parts(y, copy)


def ndim_at_least(x: Any, num_dims: int) -> bool:
    """Whether ``x`` is an array leaf with ``ndim >= num_dims`` (SPEC BA-9.3).

    >>> ndim_at_least(np.zeros((2, 3)), 2), ndim_at_least("abc", 0)
    (True, False)
    """
    return is_array(x) and x.ndim >= num_dims


def merge_leading_dims(x: Any, num_dims: int) -> Any:
    """Merge the leading ``num_dims`` dims of an array leaf into one (SPEC BA-9.1).

    Anything else (non-arrays, arrays of lower rank) is returned as it is.

    >>> merge_leading_dims(np.arange(6).reshape(2, 3), 2)
    array([0, 1, 2, 3, 4, 5])
    """
    if not ndim_at_least(x, num_dims):
        return x
    if isinstance(x, np.matrix):
        raise TypeError(_helper_matrix_message("merge_leading_dims", x))
    return _merged_rows(x, num_dims)


def _helper_matrix_message(helper: str, x: np.matrix) -> str:
    """E29: a helper given a ``numpy.matrix``, which is 2-D whatever it is reshaped to."""
    return (
        f"{helper}: `x` must not be a numpy.matrix; got one of shape {x.shape}. A matrix stays 2-D "
        "under reshape, so its rows cannot be merged or split. Pass np.asarray(x)."
    )


def _leaves_with_paths(tree: Any, axes: Any, root: str) -> list[tuple[str, Any, Any]]:
    """``_tree.leaves_with_paths``, with E27 for a dict whose keys cannot be sorted (BA-1.7)."""
    try:
        return _tree.leaves_with_paths(tree, axes, root)
    except TypeError:
        _raise_if_unsortable(tree, root)
        raise


def _raise_if_unsortable(tree: Any, root: str) -> None:
    """E27 (BA-1.7) for the first dict in ``tree`` (leaf order) whose keys cannot be sorted."""
    found = _unsortable_dict(tree, root)
    if found is None:
        return
    path, keys = found
    kinds = ", ".join(sorted({type(key).__name__ for key in keys}))
    raise TypeError(
        f"{DICT_KEYS_PREFIX}: the dict at {path} has keys of types {kinds} that cannot be "
        "compared, and a dict's children are in sorted key order (SPEC BA-1.3). Use keys of "
        "one type (all str, say), or a collections.OrderedDict, which keeps insertion order."
    ) from None


def _unsortable_dict(tree: Any, path: str) -> tuple[str, list[Any]] | None:
    """The path and keys of the first dict (leaf order) whose keys cannot be sorted, or None."""
    stack = [(path, tree)]
    while stack:
        where, node = stack.pop()
        if type(node) in (dict, collections.defaultdict):
            try:
                sorted(node)
            except TypeError:
                return where, list(node)
        opened = _tree._open(node)
        if opened is not None:
            stack.extend(reversed([(where + key, child) for key, child in opened[1]]))
    return None


def _check_not_matrix(entries: list[tuple[str, Any]], what: str) -> None:
    """E26: no ``numpy.matrix`` among the ``(path, leaf)`` pairs to merge or split."""
    for path, leaf in entries:
        if isinstance(leaf, np.matrix):
            raise TypeError(
                f"{MATRIX_PREFIX}: {path} is a numpy.matrix of shape {leaf.shape}, which stays "
                f"2-D under reshape, so its rows cannot be {what}. Pass np.asarray of it (an ndarray), "
                "or pass it through unmerged with `in_axes=None` / `out_axes=None`."
            )


def _merged_rows(
    x: Any, num_dims: int, chosen: Sequence[int] | None = None, counts: tuple[int, ...] | None = None
) -> Any:
    """The merged rows numbered ``chosen`` (all rows when None) of ``x``.

    In C order (BA-5.1), or shard-major by ``counts`` (BA-14.2). NumPy: copied row by row.
    """
    leading = tuple(x.shape[:num_dims])
    if not _is_numpy(x):
        merged = _jax_merge(x, num_dims, counts)
        if chosen is None or len(chosen) == merged.shape[0]:
            return merged  # every row, in order (one chunk holds them all)
        if list(chosen) == list(range(chosen[0], chosen[0] + len(chosen))):
            return merged[chosen[0] : chosen[0] + len(chosen)]
        return merged[np.asarray(chosen)]

    def copy(source: np.ndarray) -> np.ndarray:
        size = math.prod(leading) if chosen is None else len(chosen)
        rows = np.empty((size,) + source.shape[num_dims:], dtype=source.dtype)
        if rows.size == 0:
            return rows  # BA-1.6: no element to copy, so no row to visit
        indices = _rows_in_order(leading, counts)
        for row, merged_row in enumerate(range(len(rows)) if chosen is None else chosen):
            rows[row] = source[indices[merged_row]]
        return rows

    return _numpy_parts(x, copy)


def split_leading_dim(x: Any, to_dim: Sequence[int]) -> Any:
    """Split the leading dim of ``x`` into ``to_dim``; one ``-1`` is inferred (SPEC BA-9.2).

    >>> split_leading_dim(np.arange(6), (2, -1))
    array([[0, 1, 2],
           [3, 4, 5]])
    """
    if not is_array(x):
        raise TypeError(
            f"{SPLIT_TYPE_PREFIX} (numpy or jax); got {type(x).__name__}. "
            "Only array leaves have a leading dim to split."
        )
    if isinstance(x, np.matrix):
        raise TypeError(_helper_matrix_message("split_leading_dim", x))
    if x.ndim == 0:
        raise ValueError(
            f"{SPLIT_SHAPE_PREFIX} shape () into to_dim {to_dim}: x has rank 0; expected rank >= 1."
        )
    return _split(x, _split_shape(tuple(x.shape), _to_dim(tuple(x.shape), to_dim)))


def _to_dim(shape: tuple[Any, ...], to_dim: Any) -> tuple[int, ...]:
    """``to_dim`` as a tuple of ints: a tuple or list of integers, bool excluded (BA-9.2, E13)."""
    entries = []
    for entry in to_dim if isinstance(to_dim, (tuple, list)) else [None]:
        try:
            if isinstance(entry, bool):
                raise TypeError
            entries.append(operator.index(entry))  # type: ignore[arg-type]  # TypeError for None
        except TypeError:
            raise ValueError(
                f"{SPLIT_SHAPE_PREFIX} shape {shape} into to_dim {to_dim!r}: to_dim must be a tuple "
                "or list of integers (bool excluded). Pass e.g. (2, 3), or (-1, 3) to infer one size."
            ) from None
    return tuple(entries)


def _split_shape(shape: tuple[Any, ...], to_dim: tuple[Any, ...]) -> tuple[Any, ...]:
    """``to_dim`` with its one ``-1`` inferred from the leading size, as in ``numpy.reshape`` (BA-9.2).

    Raises E13 when no such shape has the leading size ``shape[0]``.
    """
    leading = shape[0]
    holes = [i for i, d in enumerate(to_dim) if isinstance(d, int | np.integer) and d == -1]
    known = [d for i, d in enumerate(to_dim) if i not in holes]
    size = math.prod(known)
    why = None
    if len(holes) > 1 or any(d < 0 for d in known):
        why = "its entries must be sizes >= 0, with at most one -1 (inferred, as in numpy.reshape)"
    elif holes and size == 0:
        why = "the other entries multiply to 0, so the -1 cannot be inferred"
    elif holes and leading % size != 0:
        why = f"the -1 cannot be inferred: {leading} is not a multiple of {size}, the product of the others"
    elif not holes and size != leading:
        why = f"its product is {size}, not {leading}"
    if why is not None:
        raise ValueError(
            f"{SPLIT_SHAPE_PREFIX} shape {shape} (leading size {leading}) into to_dim {to_dim}: {why}. "
            f"Pass sizes whose product is {leading}, or -1 for one of them."
        )
    return tuple(leading // size if i in holes else d for i, d in enumerate(to_dim))


def arbitrary_mergeable_leaf(num_dims: int, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The first array leaf with ``ndim >= num_dims``, args before kwargs, or None (BA-9.4).

    >>> arbitrary_mergeable_leaf(2, ("text", np.zeros((2, 3))), {}).shape
    (2, 3)
    """
    entries = _leaves_with_paths(tuple(args), 0, "args") + _leaves_with_paths(dict(kwargs), 0, "kwargs")
    for _, leaf, _ in entries:  # E27 for an unsortable dict (BA-1.7)
        if ndim_at_least(leaf, num_dims):
            return leaf
    return None


def _check_axes(axes: Any, name: str) -> None:
    """Every leaf of an axes tree is the int 0 or None (SPEC BA-2.4); E27 first (BA-10.3)."""
    _raise_if_unsortable(axes, name)
    for axis in _tree.axis_leaves(axes):
        if axis is None or (type(axis) is int and axis == 0):
            continue
        raise ValueError(
            f"{AXIS_VALUE_PREFIX}; `{name}` contains {axis!r}. Use 0 to merge (or split) "
            "a leaf and None to pass it through unchanged; to batch over another "
            "axis, move it to the front first (jnp.moveaxis)."
        )


PyTree: TypeAlias = Any
"""A pytree: tuples, lists, dicts and other registered containers of leaves."""


class BatchApply:
    """Merge leading dims of the inputs, call ``f`` once, split the outputs (SPEC BA-2.1).

    The options mean what they mean for ``batchapply.BatchApply``, on NumPy arrays.

    Args:
        f: the function to call on the merged inputs, written for one batch dimension.
        num_dims: how many leading dims to merge into one, >= 1 (BA-2.2).
        in_axes: which positional arguments are merged: 0 (all), None (none), or one
            entry per positional argument, each 0, None or a pytree prefix of it (BA-4).
        out_axes: which outputs are split: 0 (all), None (none), or a pytree prefix of
            the output (BA-7).
        chunk_size: None, or the most merged rows ``f`` sees at once (SPEC section 13).
        row_order: the order of the merged rows: "C", "shard_major" (the counts read
            from the inputs' shardings) or the shard counts (SPEC section 14).

    >>> double_rows = BatchApply(lambda x: x * 2, num_dims=2)
    >>> double_rows(np.ones((2, 3, 4))).shape
    (2, 3, 4)
    """

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
        if not callable(f):
            raise TypeError(f"{F_PREFIX}; got {type(f).__name__}.")
        if isinstance(num_dims, bool):
            raise TypeError(f"{NUM_DIMS_TYPE_PREFIX}; got bool {num_dims!r}.")
        try:
            num_dims = operator.index(num_dims)
        except TypeError:
            raise TypeError(f"{NUM_DIMS_TYPE_PREFIX}; got {type(num_dims).__name__} {num_dims!r}.") from None
        if num_dims < 1:
            raise ValueError(f"{NUM_DIMS_VALUE_PREFIX}; got {num_dims}. It counts the leading dims to merge.")
        if isinstance(in_axes, list):
            in_axes = tuple(in_axes)  # as jax.vmap does
        if not (in_axes is None or type(in_axes) in (int, tuple)):
            raise ValueError(
                f"{IN_AXES_TYPE_PREFIX} with one entry per positional argument; "
                f"got {type(in_axes).__name__}. Keyword arguments are always merged."
            )
        _check_axes(in_axes, "in_axes")
        _check_axes(out_axes, "out_axes")
        if chunk_size is not None:  # BA-13.1
            if isinstance(chunk_size, bool):
                raise TypeError(f"{CHUNK_SIZE_TYPE_PREFIX} or None; got bool {chunk_size!r}.")
            try:
                chunk_size = operator.index(chunk_size)
            except TypeError:
                raise TypeError(
                    f"{CHUNK_SIZE_TYPE_PREFIX} or None; got {type(chunk_size).__name__} {chunk_size!r}."
                ) from None
            if chunk_size < 1:
                raise ValueError(
                    f"{CHUNK_SIZE_VALUE_PREFIX}; got {chunk_size}. It is the most merged rows f sees at once."
                )
        self.row_order = _order.check_row_order(row_order, num_dims)  # SPEC section 14
        self.f = f
        self.num_dims = num_dims
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.chunk_size = chunk_size

    def __setattr__(self, name: str, value: Any) -> None:
        """The options are read-only once set (BA-2.6): their checks run at construction only."""
        if name in OPTIONS and name in self.__dict__:
            raise AttributeError(
                f"BatchApply: `{name}` is read-only (SPEC BA-2.6): the options are checked at "
                "construction. Build a new BatchApply with the option you want."
            )
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

    def _input_axes(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """One axes prefix per positional argument (SPEC BA-4.1 to BA-4.3)."""
        if not isinstance(self.in_axes, tuple):
            return (self.in_axes,) * len(args)
        if len(self.in_axes) != len(args):
            raise ValueError(
                f"{IN_AXES_LENGTH_PREFIX} {len(self.in_axes)} entries but f was called "
                f"with {len(args)} positional arguments. Give one entry (0 or None, or a "
                "pytree prefix of the argument) per positional argument."
            )
        return self.in_axes

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # BA-6.2: any keyword name reaches f
        n = self.num_dims
        _raise_if_unsortable(args, "args")  # E27 comes first (BA-10.4)
        _raise_if_unsortable(kwargs, "kwargs")
        arg_axes = self._input_axes(args)
        try:
            entries = _leaves_with_paths(args, arg_axes, "args")
        except _tree.PrefixError as e:
            raise ValueError(
                f"{IN_AXES_PREFIX_PREFIX} of the positional arguments {e}. Each entry of "
                "`in_axes` must be 0, None, or a container of the same type and keys as its argument."
            ) from None
        entries += _leaves_with_paths(kwargs, 0, "kwargs")  # BA-4.5

        mergeable = [(path, leaf) for path, leaf, axis in entries if axis == 0 and ndim_at_least(leaf, n)]
        if not mergeable:
            raise ValueError(
                f"{NO_MERGEABLE_PREFIX}{n}, got none. Pass at least one array with "
                f"{n} or more dims, or lower `num_dims`."
            )
        _check_not_matrix(mergeable, "merged")  # E26, before E9
        first_path, first_leaf = mergeable[0]
        leading = tuple(first_leaf.shape[:n])
        disagreeing = [
            (path, tuple(leaf.shape[:n])) for path, leaf in mergeable if tuple(leaf.shape[:n]) != leading
        ]
        if disagreeing:
            listed = ", ".join(f"{path} has {shape}" for path, shape in disagreeing)
            raise ValueError(
                f"{LEADING_SHAPE_PREFIX} (the first {n} dims of every merged input): "
                f"{first_path} has {leading}, {listed}. If an argument is not batched "
                "(a weight matrix, say), pass it through unmerged with `in_axes=None` "
                "for it, e.g. BatchApply(f, in_axes=(0, None))."
            )

        _check_not_deleted(mergeable)  # E28, after E9 and before the counts (BA-5.9, BA-10.4)
        counts = _order.call_counts(self.row_order, leading, [leaf for _, leaf in mergeable])
        if self.row_order == "C" and self.chunk_size is not None and math.prod(leading) > self.chunk_size:
            _check_c_order_chunks(mergeable, n)  # E25 (BA-14.11)
        if self.chunk_size is not None:
            _order.check_chunk_size(self.chunk_size, counts)  # BA-14.9: E24
        order = None if all(s == 1 for s in counts) else counts  # None: the C order

        def merge(path: str, leaf: Any, axis: Any) -> Any:
            return _merged_rows(leaf, n, counts=order) if axis == 0 and ndim_at_least(leaf, n) else leaf

        if self.chunk_size is not None:
            chunked = self._call_in_chunks(args, arg_axes, kwargs, leading, order, math.prod(counts))
            return self._split_outputs(chunked, leading, order)
        merged_args = _tree.map_leaves(merge, args, arg_axes, "args")
        merged_kwargs = _tree.map_leaves(merge, kwargs, 0, "kwargs")
        outputs = self.f(*merged_args, **merged_kwargs)
        return self._split_outputs(outputs, leading, order)

    def _call_in_chunks(
        self,
        args: Any,
        arg_axes: Any,
        kwargs: Any,
        leading: tuple[int, ...],
        order: tuple[int, ...] | None,
        shards: int,
    ) -> Any:
        """Call f once per chunk of merged rows, in order, and gather the outputs (section 13).

        BA-13.2, BA-13.3, BA-14.9: ``_order.chunk_rows`` lists the merged rows of every chunk.
        """
        n, size, c = self.num_dims, math.prod(leading), self.chunk_size
        assert c is not None
        chunks = _order.chunk_rows(size, shards, c)
        chunk_outputs: list[list[tuple[str, Any, Any]]] = []
        first_output = None
        for k, chosen in enumerate(chunks):

            def rows(path: str, leaf: Any, axis: Any, chosen: Sequence[int] = chosen) -> Any:
                if axis == 0 and ndim_at_least(leaf, n):
                    return _merged_rows(leaf, n, chosen, order)
                return leaf

            output = self.f(
                *_tree.map_leaves(rows, args, arg_axes, "args"), **_tree.map_leaves(rows, kwargs, 0, "kwargs")
            )
            entries = self._chunk_entries(output, len(chosen))
            if k == 0:
                first_output = output
            else:
                where = _describe_chunk(k, chosen, shards)
                _check_chunk_agrees(where, output, entries, first_output, chunk_outputs[0])
            chunk_outputs.append(entries)

        # BA-13.5, BA-13.8, BA-14.9: merged row m of the output is m's row of its chunk's output.
        # Concatenated in chunk order, row i holds merged row ``in_chunk_order[i]``.
        back = None  # one shard or one chunk: the rows are already in merged row order
        if shards > 1 and len(chunks) > 1:
            back = np.argsort([merged_row for chosen in chunks for merged_row in chosen])
        concatenated = []
        for j in range(len(chunk_outputs[0])):
            pieces = [entries[j][1] for entries in chunk_outputs]
            if len(pieces) == 1:  # BA-13.2: one call, as without chunk_size (a subclass stays)
                joined = pieces[0]
            elif not all(_is_numpy(piece) for piece in pieces):  # jax: its own concatenate (BA-5.6)
                joined = sys.modules["jax.numpy"].concatenate(_exact_jax_pieces(pieces))
            elif any(isinstance(piece, np.ma.MaskedArray) for piece in pieces):  # BA-5.7, BA-13.8
                joined = np.ma.concatenate(pieces)
            else:
                joined = np.concatenate(pieces)
            concatenated.append(joined if back is None else joined[back])
        replacements = iter(concatenated)
        return _tree.map_leaves(lambda path, leaf, axis: next(replacements), first_output, None, "output")

    def _output_entries(self, output: Any) -> list[tuple[str, Any, Any]]:
        """The (path, leaf, axis) triples of an output of f; E27, then E11 (BA-10.5, BA-10.6)."""
        _raise_if_unsortable(output, "output")
        try:
            return _leaves_with_paths(output, self.out_axes, "output")
        except _tree.PrefixError as e:
            raise ValueError(
                f"{OUT_AXES_PREFIX_PREFIX} of the output of f {e}. `out_axes` must be 0, "
                "None, or a container of the same type and keys as the output."
            ) from None

    def _chunk_entries(self, output: Any, rows: int) -> list[tuple[str, Any, Any]]:
        """The (path, leaf, axis) triples of one chunk's output, checked (BA-7.5, BA-13.6)."""
        entries = self._output_entries(output)
        unchunkable = [
            f"{path} ({'not selected by out_axes' if axis is None else 'a ' + type(leaf).__name__})"
            for path, leaf, axis in entries
            if axis is None or not is_array(leaf)
        ]
        if unchunkable:
            raise ValueError(
                f"{CHUNK_OUTPUT_PREFIX} leaves: {', '.join(unchunkable)}. With `chunk_size`, every "
                "output leaf must be an array split by `out_axes` (0), since the chunks' outputs are "
                "concatenated. Compute unbatched values (a loss, say) outside f, or drop `chunk_size`."
            )
        _check_not_matrix([(path, leaf) for path, leaf, _ in entries], "split")
        unsplittable = [
            f"{path} has shape {tuple(leaf.shape)}"
            for path, leaf, _ in entries
            if leaf.ndim == 0 or leaf.shape[0] != rows
        ]
        if unsplittable:
            raise ValueError(
                f"{OUTPUT_PREFIX} leaves of a chunk of {rows} rows: {', '.join(unsplittable)}; "
                f"expected rank >= 1 and a leading size of {rows}. Each chunk's output must have "
                "one row per row of the chunk; compute unbatched values (a loss, say) outside f."
            )
        return entries

    def _split_outputs(
        self, outputs: Any, leading: tuple[int, ...], order: tuple[int, ...] | None = None
    ) -> Any:
        size = math.prod(leading)
        out_entries = self._output_entries(outputs)
        _check_not_matrix([(path, leaf) for path, leaf, axis in out_entries if axis == 0], "split")
        unsplittable = [
            f"{path} has shape {tuple(leaf.shape)}"
            for path, leaf, axis in out_entries
            if axis == 0 and is_array(leaf) and (leaf.ndim == 0 or leaf.shape[0] != size)
        ]
        if unsplittable:
            raise ValueError(
                f"{OUTPUT_PREFIX} leaves into the leading shape {leading}: "
                f"{', '.join(unsplittable)}; expected rank >= 1 and a leading size of {size}. "
                "If an output is not batched (a loss, say), return it unsplit with "
                "`out_axes=None` for it."
            )

        def split(path: str, leaf: Any, axis: Any) -> Any:
            if axis != 0 or not is_array(leaf):
                return leaf
            return _split(leaf, leading, order)  # BA-7.2; shard-major by ``order`` (BA-14.2)

        return _tree.map_leaves(split, outputs, self.out_axes, "output")


def _describe_chunk(k: int, chosen: Sequence[int], shards: int) -> str:
    """``chunk 2 (rows 8 to 9)``; with several shards, the rows it takes from each (BA-14.9)."""
    if shards == 1:
        return f"{CHUNK_DISAGREE_PREFIX}: chunk {k} (rows {chosen[0]} to {chosen[-1]})"
    # Block 0 starts at merged row 0: its merged rows are the local rows of every shard.
    per_shard = len(chosen) // shards
    return (
        f"{CHUNK_DISAGREE_PREFIX}: chunk {k} (local rows {chosen[0]} to {chosen[per_shard - 1]} "
        f"of each of the {shards} shards)"
    )


def _check_chunk_agrees(
    where: str,
    output: Any,
    entries: list[tuple[str, Any, Any]],
    first_output: Any,
    first_entries: list[tuple[str, Any, Any]],
) -> None:
    """A chunk's output has the structure, dtypes and trailing shapes of chunk 0's (BA-13.7)."""
    advice = "f must return the same structure, dtypes and trailing shapes (shape[1:]) for every chunk."
    if _tree.structure(output) != _tree.structure(first_output):
        raise ValueError(
            f"{where} returned the leaves {', '.join(path for path, _, _ in entries)}, chunk 0 returned "
            f"{', '.join(path for path, _, _ in first_entries)} (in another structure); {advice}"
        )
    for (path, leaf, _), (_, first, _) in zip(entries, first_entries, strict=True):
        got = (leaf.dtype, tuple(leaf.shape[1:]))  # not np.dtype: a PRNG key dtype is none
        want = (first.dtype, tuple(first.shape[1:]))
        if got != want:
            raise ValueError(
                f"{where} returned {path} with dtype {got[0]} and shape {tuple(leaf.shape)}, chunk 0 "
                f"returned it with dtype {want[0]} and shape {tuple(first.shape)}; {advice}"
            )
        if _committed_devices(leaf) != _committed_devices(first) and None not in (
            _committed_devices(leaf),
            _committed_devices(first),
        ):  # BA-13.7: no device to join them on without a transfer
            raise ValueError(
                f"{where} returned {path} on devices {_committed_devices(leaf)}, chunk 0 returned it "
                f"on devices {_committed_devices(first)}; f must return every chunk's output on the "
                "same devices (or uncommitted)."
            )


def _committed_devices(x: Any) -> list[int] | None:
    """The device ids of a committed ``jax.Array``; None for anything else (BA-13.7)."""
    if _is_numpy(x) or _is_tracer(x) or not x.committed:
        return None
    return sorted(device.id for device in x.sharding.device_set)


def _exact_jax_pieces(pieces: list[Any]) -> list[Any]:
    """NumPy chunk outputs that JAX would narrow (64-bit, x64 off) as 64-bit jax.Arrays (BA-13.8)."""
    jax = sys.modules["jax"]
    if all(not _is_numpy(p) or jax.dtypes.canonicalize_dtype(p.dtype) == p.dtype for p in pieces):
        return pieces
    with jax.enable_x64(True):
        return [jax.numpy.asarray(p) if _is_numpy(p) else p for p in pieces]


def _check_not_deleted(mergeable: list[tuple[str, Any]]) -> None:
    """E28 (BA-5.9): a mergeable ``jax.Array`` deleted before the call."""
    for path, x in mergeable:
        if not _is_numpy(x) and not _is_tracer(x) and x.is_deleted():
            raise ValueError(
                f"{DELETED_PREFIX}: {path} (shape {tuple(x.shape)}, dtype {x.dtype}) was deleted "
                "before this call (by x.delete(), or donated to a jitted function with donate_argnums). "
                "Pass a live array: keep a copy, or stop donating it."
            )


def _check_c_order_chunks(mergeable: list[tuple[str, Any]], num_dims: int) -> None:
    """E25 (BA-14.11): C-order chunks of a concrete batch whose leading dims are sharded."""
    jax = sys.modules.get("jax")
    for path, x in mergeable:
        if _is_numpy(x) or jax is None or _is_tracer(x):
            continue  # a tracer's counts: `batchapply` only (BA-10.7)
        counts = _order.leaf_counts(x, num_dims)
        if any(s > 1 for s in counts):
            shards = math.prod(counts)
            raise ValueError(
                f"{C_ORDER_CHUNKS_PREFIX}: {path} is {jax.typeof(x)}, cut into shard counts "
                f"{counts} over its leading dims, and row_order='C' would cut chunks of consecutive "
                "rows, which sit on one device at a time (or move rows between devices). For local "
                "chunks, pass row_order='shard_major' (or the counts, "
                f"row_order={counts}) with a chunk_size that is a multiple of {shards}: each chunk "
                f"then takes chunk_size / {shards} rows from every shard (SPEC BA-14.9). Or reshard "
                "the batch to one device (jax.sharding.reshard) to chunk in C order."
            )
