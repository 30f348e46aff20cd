"""BatchApply for JAX: merge leading dims, call ``f`` once, split the outputs.

The behaviour is defined by SPEC.md; the clause each piece implements is named
next to it. ``batchapply_reference`` is the slow oracle this code is fuzzed
against.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax import tree_util

from batchapply import _sharding

_ARRAY_TYPES = (np.ndarray, np.generic, jax.Array)

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


def ndim_at_least(x: Any, num_dims: int) -> bool:
    """Whether ``x`` is an array leaf with ``ndim >= num_dims`` (SPEC BA-9.3).

    Unlike Haiku's, it never converts ``x``: a string is simply not an array.

    >>> import jax.numpy as jnp
    >>> ndim_at_least(jnp.zeros((2, 3)), 2), ndim_at_least("abc", 0)
    (True, False)
    """
    return isinstance(x, _ARRAY_TYPES) and x.ndim >= num_dims


def merge_leading_dims(x: Any, num_dims: int) -> Any:
    """Merge the leading ``num_dims`` dims of an array leaf into one (SPEC BA-9.1).

    Anything else (non-arrays, arrays of lower rank) is returned as it is.

    >>> import jax.numpy as jnp
    >>> merge_leading_dims(jnp.zeros((2, 3, 4)), 2).shape
    (6, 4)
    """
    if not ndim_at_least(x, num_dims):
        return x
    return x.reshape((math.prod(x.shape[:num_dims]),) + tuple(x.shape[num_dims:]))


def split_leading_dim(x: Any, to_dim: Sequence[Any]) -> Any:
    """Split the leading dim of ``x`` into ``to_dim`` (SPEC BA-9.2).

    >>> import jax.numpy as jnp
    >>> split_leading_dim(jnp.zeros((6, 4)), (2, 3)).shape
    (2, 3, 4)
    """
    to_dim = tuple(to_dim)
    if not isinstance(x, _ARRAY_TYPES):
        raise TypeError(
            f"{SPLIT_TYPE_PREFIX} (numpy or jax); got {type(x).__name__}. "
            "Only array leaves have a leading dim to split."
        )
    if x.ndim == 0 or x.shape[0] != math.prod(to_dim):
        raise ValueError(
            f"{SPLIT_SHAPE_PREFIX} shape {tuple(x.shape)} into leading shape {to_dim}: "
            f"expected rank >= 1 and a leading size of {math.prod(to_dim)}."
        )
    return x.reshape(to_dim + tuple(x.shape[1:]))


def arbitrary_mergeable_leaf(num_dims: int, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The first array leaf with ``ndim >= num_dims``, args before kwargs, or None (BA-9.4).

    >>> import jax.numpy as jnp
    >>> arbitrary_mergeable_leaf(2, ("text", jnp.zeros((2, 3))), {}).shape
    (2, 3)
    """
    for leaf in tree_util.tree_leaves((tuple(args), kwargs)):
        if ndim_at_least(leaf, num_dims):
            return leaf
    return None


def _is_axis_leaf(x: Any) -> bool:
    return x is None


def _check_axes(axes: Any, name: str) -> None:
    """Every leaf of an axes tree is the int 0 or None (SPEC BA-2.4)."""
    for axis in tree_util.tree_leaves(axes, is_leaf=_is_axis_leaf):
        if axis is None or (type(axis) is int and axis == 0):
            continue
        raise ValueError(
            f"{AXIS_VALUE_PREFIX}; `{name}` contains {axis!r}. Use 0 to merge (or split) "
            "a leaf and None to pass it through unchanged; to batch over another "
            "axis, move it to the front first (jnp.moveaxis)."
        )


def _broadcast_axes(axes: Any, tree: Any) -> list[Any]:
    """The axis of every leaf of ``tree``, from ``axes``, a pytree prefix of it.

    Raises ValueError (jax's message) when ``axes`` is not a prefix of ``tree``.
    """
    axes_def: Any  # jax's stubs do not declare flatten_up_to / num_leaves
    axis_leaves, axes_def = tree_util.tree_flatten(axes, is_leaf=_is_axis_leaf)
    subtrees = axes_def.flatten_up_to(tree)
    return [
        axis
        for axis, subtree in zip(axis_leaves, subtrees, strict=True)
        for _ in range(len(tree_util.tree_leaves(subtree)))
    ]


def _structures(axes: Any, tree: Any) -> str:
    """Both tree structures, for a prefix-mismatch message (no array data in it)."""
    axes_def = tree_util.tree_structure(axes, is_leaf=_is_axis_leaf)
    return f"the axes have structure {axes_def}, the value has structure {tree_util.tree_structure(tree)}"


def _paths(tree: Any, root: str) -> list[str]:
    """``root`` + keystr of every leaf path of ``tree``; computed only for error messages."""
    return [root + tree_util.keystr(path) for path, _ in tree_util.tree_flatten_with_path(tree)[0]]


class BatchApply:
    """Merge leading dims of the inputs, call ``f`` once, split the outputs (SPEC BA-2.1).

    A drop-in for ``hk.BatchApply(f, num_dims)`` and ``flax.linen.BatchApply``. On sharded
    inputs, ``row_order="shard_major"`` (or the shard counts) keeps every device's rows
    together: no communication, in another row order (SPEC section 14).

    >>> import jax.numpy as jnp
    >>> w = jnp.ones((4, 5))
    >>> apply = BatchApply(lambda x, w: x @ w, in_axes=(0, None))
    >>> apply(jnp.ones((2, 3, 4)), w).shape
    (2, 3, 5)
    """

    def __init__(
        self,
        f: Callable[..., Any],
        num_dims: int = 2,
        *,
        in_axes: Any = 0,
        out_axes: Any = 0,
        row_order: Any = "C",
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
        self.row_order = _sharding.check_row_order(row_order, num_dims)  # SPEC section 14
        self.f = f
        self.num_dims = num_dims
        self.in_axes = in_axes
        self.out_axes = out_axes

    def _arg_axes(self, args: tuple[Any, ...], n_leaves: int) -> list[Any]:
        """The axis of every leaf of the positional arguments (SPEC BA-4.1 to BA-4.4)."""
        if not isinstance(self.in_axes, tuple):
            return [self.in_axes] * n_leaves
        if len(self.in_axes) != len(args):
            raise ValueError(
                f"{IN_AXES_LENGTH_PREFIX} {len(self.in_axes)} entries but f was called "
                f"with {len(args)} positional arguments. Give one entry (0 or None, or a "
                "pytree prefix of the argument) per positional argument."
            )
        axes: list[Any] = []
        for i, (arg_axes, arg) in enumerate(zip(self.in_axes, args, strict=True)):
            try:
                axes += _broadcast_axes(arg_axes, arg)
            except ValueError:
                raise ValueError(
                    f"{IN_AXES_PREFIX_PREFIX} of the positional arguments at args[{i}]: "
                    f"{_structures(arg_axes, arg)}. Each entry of `in_axes` must be 0, None, or a "
                    "container of the same type and keys as its argument."
                ) from None
        return axes

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        n = self.num_dims
        arg_leaves, arg_def = tree_util.tree_flatten(args)
        kwarg_leaves, kwarg_def = tree_util.tree_flatten(kwargs)
        leaves = arg_leaves + kwarg_leaves
        axes = self._arg_axes(args, len(arg_leaves)) + [0] * len(kwarg_leaves)  # BA-4.5

        mergeable = [
            i
            for i, (leaf, axis) in enumerate(zip(leaves, axes, strict=True))
            if axis == 0 and ndim_at_least(leaf, n)
        ]
        if not mergeable:
            raise ValueError(
                f"{NO_MERGEABLE_PREFIX}{n}, got none. Pass at least one array with "
                f"{n} or more dims, or lower `num_dims`."
            )
        leading = tuple(leaves[mergeable[0]].shape[:n])
        if any(tuple(leaves[i].shape[:n]) != leading for i in mergeable):
            self._raise_leading_shape_error(args, kwargs, leaves, mergeable, leading)

        size = math.prod(leading)

        def paths() -> list[str]:  # for error messages only
            return _paths(args, "args") + _paths(kwargs, "kwargs")

        counts = _sharding.call_counts(
            self.row_order, leading, [leaves[i] for i in mergeable], lambda: [paths()[i] for i in mergeable]
        )
        for i in mergeable:
            leaves[i] = _sharding.merge(leaves[i], n, counts, self.row_order, paths, i)
        merged_args = tree_util.tree_unflatten(arg_def, leaves[: len(arg_leaves)])
        merged_kwargs = tree_util.tree_unflatten(kwarg_def, leaves[len(arg_leaves) :])
        outputs = self.f(*merged_args, **merged_kwargs)
        return self._split_outputs(outputs, leading, size, counts)

    def _raise_leading_shape_error(
        self, args: Any, kwargs: Any, leaves: list[Any], mergeable: list[int], leading: tuple[Any, ...]
    ) -> None:
        n = self.num_dims
        paths = _paths(args, "args") + _paths(kwargs, "kwargs")
        listed = ", ".join(
            f"{paths[i]} has {tuple(leaves[i].shape[:n])}"
            for i in mergeable
            if tuple(leaves[i].shape[:n]) != leading
        )
        raise ValueError(
            f"{LEADING_SHAPE_PREFIX} (the first {n} dims of every merged input): "
            f"{paths[mergeable[0]]} has {leading}, {listed}. If an argument is not batched "
            "(a weight matrix, say), pass it through unmerged with `in_axes=None` "
            "for it, e.g. BatchApply(f, in_axes=(0, None))."
        )

    def _split_outputs(
        self, outputs: Any, leading: tuple[Any, ...], size: Any, counts: _sharding.Counts = None
    ) -> Any:
        out_leaves, out_def = tree_util.tree_flatten(outputs)
        if type(self.out_axes) is int:  # 0, checked at construction
            out_axes = [0] * len(out_leaves)
        else:
            try:
                out_axes = _broadcast_axes(self.out_axes, outputs)
            except ValueError:
                raise ValueError(
                    f"{OUT_AXES_PREFIX_PREFIX} of the output of f at output: "
                    f"{_structures(self.out_axes, outputs)}. `out_axes` must be 0, None, or a "
                    "container of the same type and keys as the output."
                ) from None
        selected = [
            i
            for i, (leaf, axis) in enumerate(zip(out_leaves, out_axes, strict=True))
            if axis == 0 and ndim_at_least(leaf, 0)
        ]
        if any(out_leaves[i].ndim == 0 or out_leaves[i].shape[0] != size for i in selected):
            paths = _paths(outputs, "output")
            listed = ", ".join(
                f"{paths[i]} has shape {tuple(out_leaves[i].shape)}"
                for i in selected
                if out_leaves[i].ndim == 0 or out_leaves[i].shape[0] != size
            )
            raise ValueError(
                f"{OUTPUT_PREFIX} leaves into the leading shape {leading}: "
                f"{listed}; expected rank >= 1 and a leading size of {size}. "
                "If an output is not batched (a loss, say), return it unsplit with "
                "`out_axes=None` for it."
            )
        for i in selected:
            out_leaves[i] = _sharding.split(
                out_leaves[i], leading, counts, self.row_order, lambda: _paths(outputs, "output"), i
            )
        return tree_util.tree_unflatten(out_def, out_leaves)
