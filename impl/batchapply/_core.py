"""BatchApply for JAX: merge leading dims, call ``f`` once, split the outputs.

The behaviour is defined by SPEC.md; the clause each piece implements is named
next to it. ``batchapply_reference`` is the slow oracle this code is fuzzed
against.

Performance (issues 6 and 12). Under a trace (jit, grad, vmap, scan) every leaf is reshaped
with a plain ``reshape``, so the traced program is the hand-written one. In eager
mode the concrete ``jax.Array`` leaves are reshaped by cached jitted functions, one per
direction: on a signature's first call (leaf shapes, dtypes and leading shape) one leaf per
dispatch, with one small program per leaf signature, so that a first call compiles what a
per-leaf reshape compiles; once the signature repeats, groups of at most 128 leaves per
dispatch (O(leaves / 128) dispatches, and compile times that grow linearly with the leaves,
where one program over every leaf grows faster). NumPy leaves are reshaped as NumPy views,
with no dispatch. The per-call Python work is one flatten per direction and a few C-level
passes over the leaves; checks that need a leaf's shape run at trace time of the fused
function (once per signature), and pytree paths are computed only when an error is raised.

Chunking (issue 17, SPEC section 13). Eagerly, ``f`` runs once per chunk on rows taken
straight from the inputs and the outputs are concatenated and split once; nothing of ``f`` is
compiled, so nothing stale is ever reused. A ``jax.Array`` on a CPU device is sliced and
concatenated in host memory (``_on_host``: no compile); other ``jax.Array`` leaves by one cached
jitted slice per chunk and one jitted concatenation; NumPy leaves as NumPy views. Under a
trace, the full chunks go through one ``jax.lax.map``.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import itertools
import math
import operator
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax import tree_util

from batchapply import _sharding

PyTree: TypeAlias = Any
"""A jax pytree: tuples, lists, dicts and other registered containers of leaves."""

try:  # private; only used to keep the traced program unchanged inside a trace
    from jax._src.core import trace_state_clean as _trace_state_clean
except ImportError:  # pragma: no cover - a jax without it: leaf types decide alone

    def _trace_state_clean() -> bool:
        return True


try:  # private; the eager chunks' host path (_on_host) needs to see the transfer guards in force
    from jax._src import config as _jax_config

    _HOST_STATES: tuple[Any, ...] = (
        _jax_config.transfer_guard_host_to_device,
        _jax_config.transfer_guard_device_to_host,
        _jax_config.transfer_guard_device_to_device,
    )
except (ImportError, AttributeError):  # pragma: no cover - a jax without them: no host path
    _HOST_STATES = ()


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
CHUNK_SIZE_TYPE_PREFIX = "BatchApply: `chunk_size` must be an int"
CHUNK_SIZE_VALUE_PREFIX = "BatchApply: `chunk_size` must be >= 1"
CHUNK_OUTPUT_PREFIX = "BatchApply: cannot chunk output"
CHUNK_DISAGREE_PREFIX = "BatchApply: chunk outputs disagree"
CHUNK_SYMBOLIC_PREFIX = "BatchApply: `chunk_size` needs a known number of merged rows"
MATRIX_PREFIX = "BatchApply: cannot merge or split a numpy.matrix"
DICT_KEYS_PREFIX = "BatchApply: dict keys cannot be sorted"
DELETED_PREFIX = "BatchApply: input array has been deleted"
SPLIT_MATRIX_PREFIX = "split_leading_dim: `x` must not be a numpy.matrix"
OPTIONS = frozenset({"f", "num_dims", "in_axes", "out_axes", "chunk_size", "row_order"})


def ndim_at_least(x: Any, num_dims: int) -> bool:
    """Whether ``x`` is an array leaf with ``ndim >= num_dims`` (SPEC BA-9.3).

    Unlike Haiku's, it never converts ``x``: a string is simply not an array.

    >>> import jax.numpy as jnp
    >>> ndim_at_least(jnp.zeros((2, 3)), 2), ndim_at_least("abc", 0)
    (True, False)

    Args:
        x: any value; only NumPy arrays, NumPy scalars and ``jax.Array`` count.
        num_dims: the least rank.

    Returns:
        ``True`` for an array leaf of rank ``>= num_dims``, else ``False``.
    """
    return isinstance(x, _ARRAY_TYPES) and x.ndim >= num_dims


def merge_leading_dims(x: Any, num_dims: int) -> Any:
    """Merge the leading ``num_dims`` dims of an array leaf into one (SPEC BA-9.1).

    Anything else (non-arrays, arrays of lower rank) is returned as it is.

    >>> import jax.numpy as jnp
    >>> merge_leading_dims(jnp.zeros((2, 3, 4)), 2).shape
    (6, 4)

    Args:
        x: a NumPy or jax array, or any other value.
        num_dims: how many leading dims to merge.

    Returns:
        ``x`` reshaped to ``(prod(x.shape[:num_dims]),) + x.shape[num_dims:]``, or
        ``x`` itself if it is not an array of rank ``>= num_dims``.

    Raises:
        TypeError: ``x`` is a ``numpy.matrix``, which stays 2-D under reshape.
    """
    if not ndim_at_least(x, num_dims):
        return x
    if isinstance(x, np.matrix):
        raise TypeError(_helper_matrix_message("merge_leading_dims", x))
    return x.reshape((math.prod(x.shape[:num_dims]),) + tuple(x.shape[num_dims:]))


def _helper_matrix_message(helper: str, x: np.matrix) -> str:
    """E29: a helper given a ``numpy.matrix``, which is 2-D whatever it is reshaped to."""
    return (
        f"{helper}: `x` must not be a numpy.matrix; got one of shape {x.shape}. A matrix stays 2-D "
        "under reshape, so its rows cannot be merged or split. Pass np.asarray(x)."
    )


def split_leading_dim(x: Any, to_dim: Sequence[Any]) -> Any:
    """Split the leading dim of ``x`` into ``to_dim`` (SPEC BA-9.2).

    One entry of ``to_dim`` may be ``-1``: it is inferred from the leading size,
    as ``numpy.reshape`` does.

    >>> import jax.numpy as jnp
    >>> x = jnp.zeros((6, 4))
    >>> split_leading_dim(x, (2, 3)).shape, split_leading_dim(x, (-1, 3)).shape
    ((2, 3, 4), (2, 3, 4))

    Args:
        x: a NumPy or jax array of rank ``>= 1``.
        to_dim: the sizes to split the leading dim into; their product is
            ``x.shape[0]``.

    Returns:
        ``x`` reshaped to ``tuple(to_dim) + x.shape[1:]``.

    Raises:
        TypeError: ``x`` is not an array, or is a ``numpy.matrix``.
        ValueError: ``x`` has rank 0, or ``to_dim`` does not multiply to ``x.shape[0]``.
    """
    if not isinstance(x, _ARRAY_TYPES):
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
    to_dim = _split_shape(tuple(x.shape), _to_dim(tuple(x.shape), to_dim))
    return x.reshape(to_dim + tuple(x.shape[1:]))


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

    >>> import jax.numpy as jnp
    >>> arbitrary_mergeable_leaf(2, ("text", jnp.zeros((2, 3))), {}).shape
    (2, 3)

    Args:
        num_dims: the least rank of a mergeable leaf.
        args: the positional arguments, pytrees.
        kwargs: the keyword arguments, pytrees.

    Returns:
        The first leaf, in pytree order, for which ``ndim_at_least(leaf, num_dims)``;
        ``None`` if there is none.
    """
    args, kwargs = tuple(args), dict(kwargs)
    for leaf in _flatten((args, kwargs), (args, kwargs), ("args", "kwargs"))[0]:  # E27 (BA-1.7)
        if ndim_at_least(leaf, num_dims):
            return leaf
    return None


def _is_axis_leaf(x: Any) -> bool:
    return x is None


def _check_axes(axes: Any, name: str) -> None:
    """Every leaf of an axes tree is the int 0 or None (SPEC BA-2.4); E27 first (BA-10.3)."""
    try:
        leaves = tree_util.tree_leaves(axes, is_leaf=_is_axis_leaf)
    except (TypeError, ValueError) as e:
        _raise_if_unsortable(axes, name, e, 0)
        raise
    for axis in leaves:
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


def _flatten(tree: Any, roots: tuple[Any, ...], names: tuple[str, ...]) -> tuple[list[Any], Any]:
    """``tree_flatten(tree)``; E27 when a dict in it has keys that cannot be sorted (BA-1.3).

    ``roots`` are the parts of ``tree`` named ``names`` in paths (``args``, ``kwargs``, ``output``).
    """
    try:
        return tree_util.tree_flatten(tree)
    except (TypeError, ValueError) as e:
        above = 0 if len(roots) == 1 and roots[0] is tree else 1  # containers above each root
        for root, name in zip(roots, names, strict=True):
            _raise_if_unsortable(root, name, e, above)
        raise


def _raise_if_unsortable(tree: Any, root: str, error: Exception | None = None, above: int = 0) -> None:
    """E27 (BA-1.7) for the first dict in ``tree`` (leaf order) whose keys cannot be sorted.

    ``error``: what jax's flatten raised on a tree holding ``tree`` under ``above`` containers;
    its failed sort cost the recursion budget one level per container above the dict, which
    is given back here (``_give_back_recursion``), so that the process stays usable (BA-1.5).
    """
    found = _unsortable_dict(tree, root)
    if found is not None:
        path, keys, depth = found
        if error is not None and "Comparator raised exception" in str(error):
            _give_back_recursion(above + depth)
        kinds = ", ".join(sorted({type(key).__name__ for key in keys}))
        raise TypeError(
            f"{DICT_KEYS_PREFIX}: the dict at {path} has keys of types {kinds} that cannot be "
            "compared, and a dict's children are in sorted key order (SPEC BA-1.3). Use keys of "
            "one type (all str, say), or a collections.OrderedDict, which keeps insertion order."
        ) from None


def _unsortable_dict(tree: Any, path: str) -> tuple[str, list[Any], int] | None:
    """The path, keys and depth (containers above it) of the first dict in ``tree`` (leaf order)
    whose keys cannot be sorted, or None.

    A walk with its own stack, one level of jax's flatten at a time: no Python recursion, so
    a dict 500 levels deep raises E27, not ``RecursionError`` (BA-1.5).
    """
    stack = [(path, tree, 0)]
    while stack:
        where, node, depth = stack.pop()
        if type(node) in (dict, collections.defaultdict):
            try:
                sorted(node)
            except TypeError:
                return where, list(node), depth
        try:  # one level: the children of this node
            children = tree_util.tree_flatten_with_path(node, is_leaf=lambda x, node=node: x is not node)[0]
        except (TypeError, ValueError):
            continue
        if len(children) == 1 and children[0][0] == ():  # a leaf
            continue
        stack.extend((where + tree_util.keystr(key), child, depth + 1) for key, child in reversed(children))
    return None


def _recursion_headroom() -> int:
    """How many more Python frames this one could nest before ``RecursionError``."""
    depth = [0]

    def deeper() -> None:
        depth[0] += 1
        deeper()

    with contextlib.suppress(RecursionError):
        deeper()
    return depth[0]


@functools.cache
def _flatten_leaks_recursion() -> bool:
    """Whether jax's flatten, failing to sort a dict's keys, leaks one level of the recursion
    budget per container above the dict (jaxlib 0.10.2 does: after a few such errors every
    deep flatten, then every deep Python call, fails). Measured once, on a dict one level down."""
    before = _recursion_headroom()
    with contextlib.suppress(TypeError, ValueError):
        tree_util.tree_flatten([{1: 0, "a": 0}])
    leaked = before - _recursion_headroom()
    _leave_recursive_calls(leaked)
    return leaked == 1


def _leave_recursive_calls(count: int) -> None:
    leave: Callable[[], None] | None = getattr(ctypes.pythonapi, "Py_LeaveRecursiveCall", None)
    if leave is not None:
        for _ in range(count):
            leave()


def _give_back_recursion(levels: int) -> None:
    """Give back what a failed sort in jax's flatten took from the recursion budget (N1)."""
    if _flatten_leaks_recursion():
        _leave_recursive_calls(levels)


def _raise_matrix(
    leaves: list[Any], indices: Sequence[int], paths: Callable[[], list[str]], what: str
) -> None:
    """E26 for the first ``numpy.matrix`` among ``leaves[i]`` for ``i`` in ``indices``."""
    for i in indices:
        if _kind(leaves[i]) == _MATRIX:
            raise TypeError(
                f"{MATRIX_PREFIX}: {paths()[i]} is a numpy.matrix of shape {leaves[i].shape}, which stays "
                f"2-D under reshape, so its rows cannot be {what}. Pass np.asarray of it (an ndarray), "
                "or pass it through unmerged with `in_axes=None` / `out_axes=None`."
            )


# Leaf kinds (SPEC BA-1.1), cached per type: type(x) and a dict lookup per leaf.
_NOT_ARRAY, _NUMPY, _CONCRETE, _TRACER, _MATRIX = 0, 1, 2, 3, 4
_KINDS: dict[type, int] = {}


def _kind(x: Any) -> int:
    """The kind of one leaf. Tracer types are not cached: ``isinstance(t, jax.Array)``
    depends on the tracer's aval, not only on its type."""
    t = type(x)
    kind = _KINDS.get(t)
    if kind is not None:
        return kind
    if issubclass(t, jax.core.Tracer):
        return _TRACER if isinstance(x, jax.Array) else _NOT_ARRAY
    if issubclass(t, np.matrix):
        kind = _MATRIX  # always 2-D: it cannot hold merged or split rows (E26)
    elif issubclass(t, (np.ndarray, np.generic)):
        kind = _NUMPY
    elif isinstance(x, jax.Array):
        kind = _CONCRETE
    else:
        kind = _NOT_ARRAY
    _KINDS[t] = kind
    return kind


def _kinds(leaves: list[Any]) -> list[int]:
    """``_kind`` of every leaf; the common case (all types known) runs at C speed."""
    kinds: list[Any] = list(map(_KINDS.get, map(type, leaves)))
    if None in kinds:
        kinds = [_kind(x) if k is None else k for x, k in zip(leaves, kinds, strict=True)]
    return kinds


def _eager(leaves: list[Any]) -> bool:
    """Whether this call runs outside any JAX trace: no tracer leaf, no transformation tracing."""
    return _TRACER not in _kinds(leaves) and _trace_state_clean()


class _Mismatch(Exception):
    """Raised while tracing a fused reshape; the caller rebuilds the SPEC error on the slow path."""


class _NotLocal(ValueError):
    """A fused reshape would move rows between devices; the leaf-by-leaf path decides (E23)."""


# What a fused reshape raises when the leaf-by-leaf path must decide: _NotLocal, or jax's own
# ShardingTypeError where its reshape would move rows (Explicit mesh axes); ValueError also
# covers leaves committed to different devices.
_NOT_LOCAL: tuple[type[Exception], ...] = (_NotLocal, *_sharding.SHARDING_TYPE_ERRORS)
_REFUSED: tuple[type[Exception], ...] = (ValueError, *_sharding.SHARDING_TYPE_ERRORS)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _merge_fused(xs: list[jax.Array], num_dims: int, leading: tuple[int, ...]) -> list[jax.Array | None]:
    """Merge every leaf of rank >= ``num_dims`` in one dispatch; None marks the others.

    The leading-shape check (BA-3.2) runs here, at trace time: once per signature.
    """
    size = math.prod(leading)
    merged: list[jax.Array | None] = []
    for x in xs:
        if x.ndim < num_dims:
            merged.append(None)  # pass-through; the caller keeps the very object (BA-1.2)
        elif tuple(x.shape[:num_dims]) != leading:
            raise _Mismatch
        elif not _sharding.c_order_is_local(x, num_dims):
            raise _NotLocal  # the leaf-by-leaf path raises SPEC E23 with its path
        else:
            merged.append(x.reshape((size,) + tuple(x.shape[num_dims:])))
    return merged


@functools.partial(jax.jit, static_argnums=1)
def _split_fused(ys: list[jax.Array], leading: tuple[int, ...]) -> list[jax.Array]:
    """Split every leaf in one dispatch; the BA-7.3 check runs at trace time."""
    size = math.prod(leading)
    if any(y.ndim == 0 or y.shape[0] != size for y in ys):
        raise _Mismatch
    if not all(_sharding.c_order_is_local(y, 1) for y in ys):
        raise _NotLocal
    return [y.reshape(leading + tuple(y.shape[1:])) for y in ys]


# Eager fused reshapes (issue 12). A signature's first call reshapes leaf by leaf, each leaf by
# a one-leaf program cached per leaf signature (as jax caches its eager primitives), so it
# compiles no more than the per-leaf reshape of flax.linen.BatchApply, and dispatches faster.
# When the signature repeats, the leaves go through programs of at most _GROUP_SIZE leaves:
# their compile time is bounded and grows linearly with the number of leaves (one program
# over all leaves grows faster), and groups with the same leaf signatures share one program.
_GROUP_SIZE = 128
_aval = operator.attrgetter("aval")


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


class _Fused:
    """A jitted reshape (``_merge_fused``, ``_split_fused``) with its static arguments, run over
    the concrete ``jax.Array`` leaves of a call: one leaf per dispatch on a signature's first
    call, groups of at most ``_GROUP_SIZE`` leaves once it repeats (issue 12).

    ``min_ndim``: leaves of lower rank come back as None (kept as they are) with no dispatch
    on the leaf-by-leaf path, as the program would return them.
    """

    __slots__ = ("min_ndim", "program", "static")

    def __init__(self, program: Callable[..., list[Any]], static: tuple[Any, ...], min_ndim: int = 0) -> None:
        self.program = program
        self.static = static
        self.min_ndim = min_ndim

    def __call__(self, xs: list[Any], at: Sequence[int], one: Callable[[Any, int], Any]) -> list[Any]:
        """Every leaf of ``xs`` reshaped (None: kept); ``at`` their indices, for ``one``."""
        if _SIGNATURES.repeats((self.program, self.static, tuple(map(_aval, xs)))):
            if len(xs) <= _GROUP_SIZE:  # the steady state of up to 128 leaves: one dispatch
                try:
                    return self.program(xs, *self.static)
                except _REFUSED:  # as in _group
                    return [one(x, i) for x, i in zip(xs, at, strict=True)]
            ys: list[Any] = []
            for start in range(0, len(xs), _GROUP_SIZE):
                ys += self._group(xs[start : start + _GROUP_SIZE], start, at, one)
            return ys
        n = self.min_ndim
        return [self._group([x], j, at, one)[0] if x.ndim >= n else None for j, x in enumerate(xs)]

    def _group(
        self, group: list[Any], start: int, at: Sequence[int], one: Callable[[Any, int], Any]
    ) -> list[Any]:
        """The program over ``group`` (``xs[start:]``); leaf by leaf with ``one`` where it refuses."""
        try:
            return self.program(group, *self.static)
        except _REFUSED:  # see _REFUSED; `one` raises E23 with the leaf's path
            return [one(x, at[start + j]) for j, x in enumerate(group)]


def _reshape_leaves(
    leaves: list[Any],
    selected: Sequence[int] | None,
    fused: _Fused | None,
    one: Callable[[Any, int], Any],
) -> list[Any]:
    """``leaves`` with every selected array leaf reshaped; raises ``_Mismatch`` on a bad shape.

    Outside a trace, the concrete ``jax.Array`` leaves go through ``fused`` (a None in its
    result keeps the leaf). NumPy leaves, tracers, and leaves that ``fused`` rejects (e.g.
    committed to different devices) go through ``one``, leaf by leaf: NumPy views, or the
    reshapes the hand-written code would record into the trace. ``selected`` None means every leaf.
    """
    kinds = _kinds(leaves)
    n_concrete = kinds.count(_CONCRETE)
    fuse = fused is not None and n_concrete > 0 and _TRACER not in kinds and _trace_state_clean()
    if fuse and not _one_placement([x for x, k in zip(leaves, kinds, strict=True) if k == _CONCRETE]):
        fuse = False  # one program would move the uncommitted leaves to the committed ones' devices
    if fuse and selected is None and n_concrete == len(leaves):  # the common eager case
        assert fused is not None
        ys = fused(leaves, range(len(leaves)), one)
        if any(map(operator.is_, ys, itertools.repeat(None))):  # C-level scan, no == on arrays
            return [x if y is None else y for x, y in zip(leaves, ys, strict=True)]
        return ys
    order = range(len(leaves)) if selected is None else selected
    todo = [i for i in order if kinds[i] != _NOT_ARRAY]
    out = list(leaves)
    if fuse:
        assert fused is not None
        concrete = [i for i in todo if kinds[i] == _CONCRETE]
        ys = fused([leaves[i] for i in concrete], concrete, one)
        for i, y in zip(concrete, ys, strict=True):
            if y is not None:
                out[i] = y
        todo = [i for i in todo if kinds[i] != _CONCRETE]
    for i in todo:
        out[i] = one(leaves[i], i)
    return out


def _raise_if_deleted(leaves: list[Any], indices: Sequence[int], paths: Callable[[], list[str]]) -> None:
    """E28 for the first deleted ``jax.Array`` among ``leaves[i]`` for ``i`` in ``indices``."""
    for i in indices:
        x = leaves[i]
        if _kind(x) == _CONCRETE and x.is_deleted():
            raise ValueError(
                f"{DELETED_PREFIX}: {paths()[i]} (shape {tuple(x.shape)}, dtype {x.dtype}) was deleted "
                "before this call (by x.delete(), or donated to a jitted function with donate_argnums). "
                "Pass a live array: keep a copy, or stop donating it."
            ) from None


@functools.cache
def _several_devices() -> bool:
    return jax.device_count() > 1


def _one_placement(xs: Sequence[jax.Array]) -> bool:
    """Whether one jitted program over ``xs`` keeps every leaf on its devices (BA-5.3, BA-5.6).

    jit places uncommitted arrays with the committed ones: with several devices, a mix of
    committed and uncommitted leaves goes leaf by leaf (committed leaves on different devices
    make jit raise, and the callers then go leaf by leaf too).
    """
    if not _several_devices():
        return True
    committed = {x.committed for x in xs}
    return len(committed) == 1


def _chunk_bounds(size: int, chunk_size: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` merged rows of every chunk, in chunk order (SPEC BA-13.2, BA-13.3)."""
    if size <= chunk_size:
        return [(0, size)]
    return [(start, min(start + chunk_size, size)) for start in range(0, size, chunk_size)]


def _on_host(x: Any) -> bool:
    """Whether ``x`` is a ``jax.Array`` in CPU memory that NumPy can view and ``device_put`` can
    give back exactly (eager chunking, BA-13.4; a benchmark in BENCHMARKS.md, "Eager chunking").

    On a CPU device, ``np.asarray`` of an array is a view of its buffer and ``jax.device_put`` of
    a NumPy view aliases it: the chunks' rows and their concatenation then cost a slice and one
    copy, and no compile (a jitted slice or concatenation is a compile of about 50 ms per shape,
    a quarter of a small model's first call). Only where nothing can differ: one CPU device, a
    canonical dtype that is not weak, extended or sub-byte, and no transfer guard in force. An
    uncommitted array comes back uncommitted, on the default device, as from a jitted slice.
    """
    if not _HOST_STATES or _kind(x) != _CONCRETE or x.is_deleted():
        return False
    dtype = x.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended) or getattr(x, "weak_type", True):
        return False  # typed PRNG keys; weak types (device_put of NumPy rows makes them strong)
    devices = x.sharding.device_set
    if len(devices) != 1:
        return False
    (device,) = devices
    return (
        device.platform == "cpu"
        and jax.dtypes.canonicalize_dtype(dtype) == dtype
        and jax.dtypes.itemsize_bits(dtype) >= 8
        and all(state.value in (None, "allow") for state in _HOST_STATES)
    )


def _to_device(rows: np.ndarray, like: jax.Array) -> jax.Array:
    """``rows`` (host memory) as a ``jax.Array`` placed and committed as ``like`` (see ``_on_host``)."""
    return jax.device_put(rows, like.sharding if like.committed else None)


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


@functools.partial(jax.jit, static_argnums=1)
def _concatenate_fused(columns: list[list[jax.Array]], leading: tuple[int, ...] | None) -> list[jax.Array]:
    """Each column's chunk outputs along the leading dim, split into ``leading`` (None: not split).

    One dispatch for every output leaf (BA-13.5); the split is BA-7.2's, done in the same program
    so that the result is written once.
    """
    out = []
    for column in columns:
        y = jnp.concatenate(column)
        if leading is not None:
            if not _sharding.c_order_is_local(y, 1):
                raise _NotLocal
            y = y.reshape(leading + tuple(y.shape[1:]))
        out.append(y)
    return out


# NumPy numbers that jnp.issubdtype calls numbers but no jax.Array can hold: the extended
# precisions, where they are wider than 64 bits (timedelta64, a signed integer to NumPy, by kind).
_WIDE_DTYPES = frozenset({np.dtype(np.longdouble), np.dtype(np.clongdouble)}) - {
    np.dtype(np.float64),
    np.dtype(np.complex128),
}


def _jax_holds(y: Any) -> bool:
    """Whether a merged NumPy leaf becomes a tracer with the same values, dtype and meaning.

    Not for subclasses (a masked array would lose its mask), nor for dtypes that
    ``jnp.asarray`` changes (64-bit ones without ``jax_enable_x64``) or cannot hold
    (str, bytes, object, structured, datetime64, float0): BA-13.4.
    """
    if type(y) is not np.ndarray:
        return False
    dtype = y.dtype
    if (
        not (dtype == np.bool_ or jnp.issubdtype(dtype, jnp.number))
        or dtype.kind == "m"
        or dtype in _WIDE_DTYPES
    ):
        return False
    return bool(jax.dtypes.canonicalize_dtype(dtype) == dtype)


def _committed_devices(x: Any) -> list[int] | None:
    """The device ids of a committed concrete ``jax.Array``; None for anything else (BA-13.7)."""
    if _kind(x) != _CONCRETE or not x.committed:
        return None
    return sorted(device.id for device in x.sharding.device_set)


def _exact_pieces(column: Sequence[Any]) -> list[Any]:
    """A column of chunk outputs to join as a ``jax.Array``, with every NumPy piece that JAX would
    narrow (64-bit outside ``jax_enable_x64``) made a 64-bit ``jax.Array`` first (BA-13.8)."""
    if all(_kind(x) == _NUMPY for x in column):  # joined by NumPy: nothing to narrow
        return list(column)
    narrowed = [_kind(x) == _NUMPY and jax.dtypes.canonicalize_dtype(x.dtype) != x.dtype for x in column]
    if not any(narrowed):
        return list(column)
    with jax.enable_x64(True):
        return [jnp.asarray(x) if wide else x for x, wide in zip(column, narrowed, strict=True)]


def _as_jax(ys: list[Any]) -> list[Any]:
    """The merged NumPy leaves as jax values, for every chunk of the mapped path (BA-13.4).

    ``jax.lax.map`` turns the full chunks' rows into tracers: the last chunk gets the same
    type, so that ``f`` sees one array type per argument whatever ``chunk_size`` is.
    """
    return [jnp.asarray(y) if _kind(y) == _NUMPY else y for y in ys]


def _inside_haiku_transform(haiku: Any) -> bool:
    """Whether this call runs inside ``haiku.transform`` (Haiku is imported, never by us)."""
    try:
        haiku.running_init()
    except ValueError:
        return False
    return True


class _Chunk:
    """One chunk's output: the tree, its leaves and treedef (SPEC section 13)."""

    def __init__(self, output: Any, leaves: list[Any], treedef: Any) -> None:
        self.output = output
        self.leaves = leaves
        self.treedef = treedef

    @classmethod
    def traced(cls, output_leaves: list[Any], treedef: Any) -> _Chunk:
        """The chunk that ``jax.lax.map`` traced once for all full chunks: the shapes and dtypes
        of the leaves as ``f`` returned them, before the map turned them into jax values (a NumPy
        int64 leaf would read as int32 without ``jax_enable_x64``: a spurious E17, issue 24)."""
        leaves = [jax.ShapeDtypeStruct(tuple(y.shape), y.dtype) for y in output_leaves]
        return cls(tree_util.tree_unflatten(treedef, leaves), leaves, treedef)

    def with_leaves(self, leaves: list[Any]) -> Any:
        return tree_util.tree_unflatten(self.treedef, leaves)

    def check_agrees(self, k: int, start: int, stop: int, first: _Chunk, shards: int = 1) -> None:
        """This chunk (the k-th) has chunk 0's structure, dtypes and trailing shapes (BA-13.7).

        ``start`` and ``stop`` bound its rows; with ``shards`` > 1, its local rows in every shard.
        """
        where = f"{CHUNK_DISAGREE_PREFIX}: chunk {k} (rows {start} to {stop - 1})"
        if shards > 1:
            where = (
                f"{CHUNK_DISAGREE_PREFIX}: chunk {k} "
                f"(local rows {start} to {stop - 1} of each of the {shards} shards)"
            )
        advice = "f must return the same structure, dtypes and trailing shapes (shape[1:]) for every chunk."
        if self.treedef != first.treedef:
            raise ValueError(
                f"{where} returned the leaves {', '.join(_paths(self.output, 'output'))}, chunk 0 returned "
                f"{', '.join(_paths(first.output, 'output'))} (in another structure); {advice}"
            )
        for j, (leaf, want) in enumerate(zip(self.leaves, first.leaves, strict=True)):
            if leaf.dtype != want.dtype or tuple(leaf.shape[1:]) != tuple(want.shape[1:]):
                path = _paths(self.output, "output")[j]
                raise ValueError(
                    f"{where} returned {path} with dtype {leaf.dtype} and shape {tuple(leaf.shape)}, "
                    f"chunk 0 returned it with dtype {want.dtype} and shape {tuple(want.shape)}; {advice}"
                )
            got, wanted = _committed_devices(leaf), _committed_devices(want)
            if got != wanted and got is not None and wanted is not None:  # BA-13.7
                path = _paths(self.output, "output")[j]
                raise ValueError(
                    f"{where} returned {path} on devices {got}, chunk 0 returned it on devices "
                    f"{wanted}; f must return every chunk's output on the same devices (or uncommitted)."
                )

    @staticmethod
    def join(chunks: list[_Chunk], shards: int) -> Any:
        """Every leaf's chunks back in merged row order: ``shards`` blocks (BA-14.9, BA-13.8)."""

        def concatenate(column: tuple[Any, ...]) -> Callable[..., Any]:
            if any(_kind(x) != _NUMPY for x in column):
                return jnp.concatenate
            return (
                np.ma.concatenate if any(isinstance(x, np.ma.MaskedArray) for x in column) else np.concatenate
            )

        columns = [tuple(_exact_pieces(c)) for c in zip(*(chunk.leaves for chunk in chunks), strict=True)]
        return chunks[0].with_leaves([_sharding.join_chunks(c, shards, concatenate(c)) for c in columns])

    @staticmethod
    def concatenate(chunks: list[_Chunk], leading: tuple[int, ...] | None) -> tuple[Any, bool]:
        """Every leaf's chunks along the leading dim, in chunk order (BA-13.5, BA-13.8).

        A leaf is a ``jax.Array`` if any chunk's is one, else a masked array if any chunk's is
        one, else a NumPy array. With ``leading`` (the C order), the leaves are also split into
        it (BA-7.2) when that moves no row between devices; the second result says whether they
        were. The ``jax.Array`` leaves are concatenated (and split) in one dispatch.
        """
        columns = list(zip(*(chunk.leaves for chunk in chunks), strict=True))
        out: list[Any] = [None] * len(columns)
        on_jax = {j for j, column in enumerate(columns) if any(_kind(x) != _NUMPY for x in column)}
        for j in on_jax:  # BA-13.8: 64-bit NumPy pieces stay 64-bit
            columns[j] = tuple(_exact_pieces(columns[j]))
        # CPU outputs: their rows concatenated on the host, one copy and no compile (_on_host).
        on_host = {
            j
            for j in on_jax
            if all(
                _on_host(x)
                and x.sharding == columns[j][0].sharding
                and x.committed == columns[j][0].committed
                for x in columns[j]
            )
        }
        on_jax -= on_host
        for j, column in enumerate(columns):
            if j in on_host:
                out[j] = np.concatenate([np.asarray(x) for x in column])
            elif j not in on_jax:
                masked = any(isinstance(x, np.ma.MaskedArray) for x in column)
                out[j] = np.ma.concatenate(column) if masked else np.concatenate(column)
        split = leading is not None
        if on_jax:
            jax_columns = [list(columns[j]) for j in sorted(on_jax)]
            # Only concrete arrays have a placement: under a trace, tracers carry none (issue 24).
            pieces = [x for column in jax_columns for x in column if _kind(x) == _CONCRETE]
            # One dispatch, unless it would move leaves between devices (then one per leaf).
            groups = [jax_columns] if _one_placement(pieces) else [[column] for column in jax_columns]
            try:
                ys = [y for group in groups for y in _concatenate_fused(group, leading)]
            except _NOT_LOCAL:  # an Explicit-sharded output: BatchApply._split_outputs decides (E23)
                ys, split = [y for group in groups for y in _concatenate_fused(group, None)], False
            for j, y in zip(sorted(on_jax), ys, strict=True):
                out[j] = y
        if split:
            assert leading is not None
            out = [y if j in on_jax else y.reshape(leading + y.shape[1:]) for j, y in enumerate(out)]
        for j in on_host:  # split (a NumPy view) or not, back on the device of the chunks
            out[j] = _to_device(out[j], columns[j][0])
        return chunks[0].with_leaves(out), split


class BatchApply:
    """Merge leading dims of the inputs, call ``f`` once, split the outputs (SPEC BA-2.1).

    A drop-in for ``hk.BatchApply(f, num_dims)`` and ``flax.linen.BatchApply``.
    With ``chunk_size``, ``f`` runs on chunks of at most that many merged rows
    (SPEC section 13), so that peak memory follows the chunk. On sharded inputs,
    ``row_order="shard_major"`` (or the shard counts) keeps every device's rows
    together: no communication, in another row order (SPEC section 14).

    >>> import jax.numpy as jnp
    >>> w = jnp.ones((4, 5))
    >>> apply = BatchApply(lambda x, w: x @ w, in_axes=(0, None))
    >>> apply(jnp.ones((2, 3, 4)), w).shape
    (2, 3, 5)

    Args:
        f: the function to call on the merged inputs, written for one batch
            dimension (``[Batch, Features]``).
        num_dims: how many leading dims to merge into one, ``>= 1`` (BA-2.2).
        in_axes: which positional arguments are merged: ``0`` (all of them),
            ``None`` (none), or one entry per positional argument, each ``0``,
            ``None`` or a pytree prefix of that argument made of ``0`` and
            ``None``, as in ``jax.vmap`` (BA-4). Keyword arguments are always
            merged.
        out_axes: which outputs are split: ``0`` (all of them), ``None`` (none:
            a loss, say, is returned as it is), or a pytree prefix of the output
            (BA-7).
        chunk_size: ``None``, or the most merged rows ``f`` sees at once: ``f``
            runs on chunks of rows, eagerly once per chunk and under a trace in one
            ``jax.lax.map``, so peak memory follows the chunk (SPEC section 13).
        row_order: the order of the rows in the merged batch: ``"C"`` (row-major,
            as a reshape), ``"shard_major"`` (every device's rows together, read
            from the inputs' shardings) or the shard counts ``(s_1, ..., s_n)``
            of the leading dims (SPEC section 14).

    Raises:
        TypeError: ``f`` is not callable, or ``num_dims`` or ``chunk_size`` is not
            an int (SPEC section 10).
        ValueError: ``num_dims`` or ``chunk_size`` is below 1, or ``in_axes``,
            ``out_axes`` or ``row_order`` is malformed. Calls raise ``ValueError``
            or ``TypeError`` naming the offending leaf by its pytree path.
    """

    # One call of f per chunk even on jax.Array inputs, instead of one jax.lax.map: set by the
    # Flax wrappers for callables whose state they cannot lift into a scan (BA-12.12).
    _call_per_chunk = False
    # The full chunks go through _map_chunks eagerly too: the Flax wrappers' lifted scans, so that
    # rng streams and sown values follow the same per-chunk rules in and out of jit (BA-12.12).
    _map_when_eager = False

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
        self.row_order = _sharding.check_row_order(row_order, num_dims)  # SPEC section 14
        self.f = f
        self.num_dims = num_dims
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.chunk_size = chunk_size

    def __setattr__(self, name: str, value: Any) -> None:
        """The options are read-only once set (BA-2.6): their checks run at construction only.

        Subclasses may set them: the Flax wrappers' private ``_Chunked`` (linen.py) sets
        ``out_axes`` from the output it has just seen.
        """
        if name in OPTIONS and name in self.__dict__ and type(self) is BatchApply:
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

    def _arg_axes(self, args: tuple[Any, ...]) -> list[Any]:
        """The axis of every leaf of the positional arguments, for a tuple ``in_axes`` (BA-4.3, BA-4.4)."""
        assert isinstance(self.in_axes, tuple)
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

    def _selected(self, args: tuple[Any, ...], treedef: Any, n_leaves: int) -> list[int]:
        """The indices of the selected leaves of ``(args, kwargs)``, for a non-zero ``in_axes``."""
        n_arg_leaves = treedef.children()[0].num_leaves
        kwarg_leaves = list(range(n_arg_leaves, n_leaves))  # BA-4.5
        if self.in_axes is None:  # BA-4.2
            return kwarg_leaves
        axes = self._arg_axes(args)
        return [i for i, axis in enumerate(axes) if axis == 0] + kwarg_leaves

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # BA-6.2: any keyword name reaches f
        """Merge the selected inputs, call ``f``, split its outputs (SPEC BA-5 to BA-7).

        Args:
            *args: positional inputs; those that ``in_axes`` selects are merged.
            **kwargs: keyword inputs, all merged; any keyword name reaches ``f``.

        Returns:
            ``f``'s output, with the leading dim of every array that ``out_axes``
            selects split back into the leading shape of the inputs.

        Raises:
            ValueError: no input has ``num_dims`` dims, the inputs disagree on their
                leading shape, or an output cannot be split; the message names
                the leaf by its pytree path and says how to fix it.
        """
        n = self.num_dims
        leaves, treedef = _flatten((args, kwargs), (args, kwargs), ("args", "kwargs"))  # leaf order, BA-1.3
        # None: every leaf is selected (in_axes=0, BA-4.1), the common case.
        selected = None if type(self.in_axes) is int else self._selected(args, treedef, len(leaves))
        order = range(len(leaves)) if selected is None else selected
        first = next((i for i in order if ndim_at_least(leaves[i], n)), None)
        if first is None:  # BA-3.3
            raise ValueError(
                f"{NO_MERGEABLE_PREFIX}{n}, got none. Pass at least one array with "
                f"{n} or more dims, or lower `num_dims`."
            )
        leading = tuple(leaves[first].shape[:n])  # BA-3.1
        size = math.prod(leading)

        def paths() -> list[str]:  # for error messages only
            return _paths(args, "args") + _paths(kwargs, "kwargs")

        if _MATRIX in _kinds(leaves):  # E26, before E9
            _raise_matrix(leaves, [i for i in order if ndim_at_least(leaves[i], n)], paths, "merged")

        counts: _sharding.Counts = None  # the C order, and the fused fast path
        shards: _sharding.Counts = None  # the call's shard counts: the chunks follow them (BA-14.9)
        # A symbolic size (jax.export) is not compared here: section 13 decides (BA-13.9).
        chunked = self.chunk_size is not None and isinstance(size, int) and size > self.chunk_size
        if self.row_order != "C" or chunked:  # section 14: the only cases that look at shardings
            mergeable = [i for i in order if ndim_at_least(leaves[i], n)]
            if any(tuple(leaves[i].shape[:n]) != leading for i in mergeable):
                self._raise_leading_shape_error(args, kwargs, leaves, order, leading)
            _raise_if_deleted(leaves, mergeable, paths)  # E28 before the counts (BA-10.4)
            if self.row_order == "C":  # BA-14.11: E25 where the shardings are visible
                _sharding.check_c_order_chunks(
                    [leaves[i] for i in mergeable], n, lambda: [paths()[i] for i in mergeable]
                )
            else:
                shards = _sharding.call_counts(
                    self.row_order,
                    leading,
                    [leaves[i] for i in mergeable],
                    lambda: [paths()[i] for i in mergeable],
                )
                counts = _sharding.order_counts(shards)
                if self.chunk_size is not None and shards is not None:
                    _sharding.check_chunk_size(self.chunk_size, shards)  # BA-14.9: E24

        # Eager chunking (BA-13.4) slices each chunk's rows straight out of a jax.Array input:
        # the whole merged copy would be peak memory that does not follow the chunk.
        c = self.chunk_size
        lazy = (
            c is not None
            and shards is None
            and isinstance(size, int)
            and size > c
            and not self._map_when_eager
            and _eager(leaves)
        )

        def merge_one(x: Any, i: int) -> Any:  # BA-5.1, BA-14.2; lower rank: the very object (BA-1.2)
            if x.ndim < n:
                return x
            if tuple(x.shape[:n]) != leading:
                raise _Mismatch
            if _kind(x) == _CONCRETE and x.is_deleted():
                raise RuntimeError  # E28 below: a merge that keeps the shape (num_dims=1) would not see it
            if lazy and _kind(x) == _CONCRETE and _sharding.c_order_is_local(x, n):
                return x  # merged chunk by chunk, by _take_rows
            return _sharding.merge(x, n, counts, self.row_order, paths, i)

        fused = _Fused(_merge_fused, (n, leading), n) if counts is None and not lazy else None
        try:
            merged = _reshape_leaves(leaves, selected, fused, merge_one)
        except _Mismatch:
            self._raise_leading_shape_error(args, kwargs, leaves, order, leading)
        except RuntimeError:  # E28: jax's "Array has been deleted" names no leaf
            mergeable = [i for i in order if ndim_at_least(leaves[i], n)]
            if any(tuple(leaves[i].shape[:n]) != leading for i in mergeable):  # E9 first (BA-10.4)
                self._raise_leading_shape_error(args, kwargs, leaves, order, leading)
            _raise_if_deleted(leaves, mergeable, paths)
            raise
        if self.chunk_size is not None:  # section 13
            return self._call_in_chunks(
                leaves, merged, treedef, order, leading, counts, lazy, paths, math.prod(shards or ())
            )
        merged_args, merged_kwargs = tree_util.tree_unflatten(treedef, merged)
        outputs = self.f(*merged_args, **merged_kwargs)  # BA-6.1
        return self._split_outputs(outputs, leading, size, counts)

    def _call_in_chunks(
        self,
        leaves: list[Any],
        merged: list[Any],
        treedef: Any,
        order: Sequence[int],
        leading: tuple[Any, ...],
        counts: _sharding.Counts,
        lazy: bool,
        paths: Callable[[], list[str]],
        shards: int = 1,
    ) -> Any:
        """Call f on chunks of at most ``chunk_size`` merged rows; the split outputs (section 13).

        ``lazy``: the concrete ``jax.Array`` inputs in ``merged`` still have their leading dims
        (merged chunk by chunk). ``counts``: the call's row order (None: the C order).
        ``shards`` > 1: the chunks of BA-14.9, ``chunk_size // shards`` local rows of every shard.
        """
        n, c = self.num_dims, self.chunk_size
        assert c is not None
        rows_at = [i for i in order if ndim_at_least(leaves[i], n)]  # the merged leaves
        ys = [merged[i] for i in rows_at]
        size = math.prod(leading)
        if not isinstance(size, int):  # E18 (BA-13.10): a symbolic dim, as under jax.export
            raise ValueError(
                f"{CHUNK_SYMBOLIC_PREFIX}: {paths()[rows_at[0]]} has the leading shape {leading}, so "
                f"there are {size} merged rows, which is not a number yet (a symbolic shape, as in "
                "jax.export). Chunks are cut at trace time: export with a concrete batch size, or drop "
                "`chunk_size` (the exported program then runs f on all rows at once)."
            )

        def call(chunk_ys: Sequence[Any]) -> Any:
            """f with ``chunk_ys`` in place of the merged leaves; every other leaf as it is."""
            chunk = list(merged)
            for i, rows in zip(rows_at, chunk_ys, strict=True):
                chunk[i] = rows
            chunk_args, chunk_kwargs = tree_util.tree_unflatten(treedef, chunk)
            return self.f(*chunk_args, **chunk_kwargs)

        if size <= c:  # BA-13.2: one call, as without chunk_size
            outputs = call(ys)
            self._chunk_leaves(outputs, size)
            return self._split_outputs(outputs, leading, size, counts)
        if shards > 1:  # BA-14.9: every chunk stays on its devices
            outputs = self._call_local_chunks(call, ys, size, shards, _eager(leaves))
            return self._split_outputs(outputs, leading, size, counts)
        dims = n if lazy else 1  # how many leading dims the jax.Array leaves of ys still have
        eager = _eager(leaves)
        # BA-13.4: under a trace, the full chunks in one jax.lax.map (a lifted scan for the Flax
        # wrappers, BA-12.12), unless they call f once per chunk.
        if (not eager or self._map_when_eager) and not self._call_per_chunk and self._maps(ys):
            return self._split_outputs(self._call_mapped(call, ys, size), leading, size, counts)
        # BA-13.4: one call per chunk. Eager, each chunk's jax.Array rows are taken in one dispatch;
        # NumPy rows are NumPy slices (views); under a trace, tracers are sliced in the trace.
        on_jax = [j for j, y in enumerate(ys) if _kind(y) == _CONCRETE] if eager else []
        # CPU leaves: rows of a NumPy view, back on the device without a copy or compile (_on_host).
        host = {j: np.asarray(ys[j]).reshape((size,) + ys[j].shape[dims:]) for j in on_jax if _on_host(ys[j])}
        on_jax = [j for j in on_jax if j not in host]
        taken_by_slicing = sorted(set(range(len(ys))) - set(on_jax) - set(host))

        def take(start: int, stop: int) -> list[Any]:
            """The merged rows ``start`` to ``stop - 1`` of every merged leaf."""
            rows: list[Any] = list(ys)
            for j in taken_by_slicing:
                rows[j] = ys[j][start:stop]
            for j, view in host.items():
                rows[j] = _to_device(view[start:stop], ys[j])
            if on_jax:
                groups = [on_jax] if _one_placement([ys[j] for j in on_jax]) else [[j] for j in on_jax]
                # `start` is a Python int, sent to the device: ours, not a transfer to guard against.
                with jax.transfer_guard_host_to_device("allow"):
                    taken = [
                        y for g in groups for y in _take_rows([ys[j] for j in g], start, stop - start, dims)
                    ]
                for j, y in zip(on_jax, taken, strict=True):
                    rows[j] = y
            return rows

        chunks: list[_Chunk] = []
        for k, (start, stop) in enumerate(_chunk_bounds(size, c)):  # BA-13.3
            output = call(take(start, stop))
            chunk = _Chunk(output, *self._chunk_leaves(output, stop - start))
            if chunks:
                chunk.check_agrees(k, start, stop, chunks[0])
            chunks.append(chunk)
        outputs, split = _Chunk.concatenate(chunks, leading if counts is None else None)
        return outputs if split else self._split_outputs(outputs, leading, size, counts)

    @staticmethod
    def _maps(ys: list[Any]) -> bool:
        """Whether, under a trace, the chunks go through one ``jax.lax.map`` (BA-13.4).

        Yes when some merged leaf is a jax value and every NumPy one becomes a tracer
        with the same values (``_jax_holds``); otherwise f is called once per chunk.
        """
        kinds = _kinds(ys)
        if _TRACER not in kinds and _CONCRETE not in kinds:
            return False
        return all(_jax_holds(y) for y, kind in zip(ys, kinds, strict=True) if kind == _NUMPY)

    def _call_mapped(self, call: Callable[[Sequence[Any]], Any], ys: list[Any], size: int) -> Any:
        """The full chunks in one ``jax.lax.map`` (f traced once), then the rest (BA-13.4)."""
        c = self.chunk_size
        assert c is not None
        n_full, rest = divmod(size, c)
        traced: list[_Chunk] = []
        ys = _as_jax(ys)

        def body(chunk_ys: list[jax.Array]) -> list[Any]:
            out_leaves, out_def = self._chunk_leaves(call(chunk_ys), c)
            traced.append(_Chunk.traced(out_leaves, out_def))
            return out_leaves

        full = ys if not rest else [jax.lax.slice_in_dim(y, 0, n_full * c) for y in ys]
        stacked = [y.reshape((n_full, c) + tuple(y.shape[1:])) for y in full]
        mapped = self._map_chunks(body, stacked)
        first = traced[-1]
        if not rest:
            return first.with_leaves([m.reshape((size,) + tuple(m.shape[2:])) for m in mapped])
        start = n_full * c
        output = call([y[start:] for y in ys])
        last = _Chunk(output, *self._chunk_leaves(output, rest))
        last.check_agrees(n_full, start, size, first)
        return first.with_leaves(
            [
                jnp.concatenate([m.reshape((start,) + tuple(m.shape[2:])), leaf])
                for m, leaf in zip(mapped, last.leaves, strict=True)
            ]
        )

    def _map_chunks(
        self, body: Callable[[list[jax.Array]], list[Any]], stacked: list[jax.Array]
    ) -> list[Any]:
        """``body`` over the full chunks, stacked on a new leading axis: one ``jax.lax.map`` (BA-13.4).

        The Flax wrappers override it with their lifted scans, which carry module state (BA-12.12).
        Inside a Haiku transform, ``haiku.scan`` carries Haiku's state instead: in ``init`` it
        runs the first chunk outside the loop, so that parameters are created outside it.
        """
        haiku = sys.modules.get("haiku")
        if haiku is not None and _inside_haiku_transform(haiku):
            return list(haiku.scan(lambda carry, chunk: (carry, body(chunk)), (), stacked)[1])
        return jax.lax.map(body, stacked)

    def _call_local_chunks(
        self, call: Callable[[Sequence[Any]], Any], ys: list[Any], size: int, shards: int, eager: bool
    ) -> Any:
        """The chunks of BA-14.9, called as BA-13.4 says; the outputs in merged row order."""
        assert self.chunk_size is not None
        block, c = size // shards, self.chunk_size // shards
        if (not eager or self._map_when_eager) and not self._call_per_chunk and self._maps(ys):
            return self._map_local_chunks(ys, call, block, c, shards)
        chunks: list[_Chunk] = []
        for k, start in enumerate(range(0, block, c)):
            stop = min(start + c, block)
            output = call([_sharding.chunk_of(y, shards, start, stop) for y in ys])
            chunk = _Chunk(output, *self._chunk_leaves(output, shards * (stop - start)))
            if chunks:
                chunk.check_agrees(k, start, stop, chunks[0], shards)
            chunks.append(chunk)
        return _Chunk.join(chunks, shards)

    def _map_local_chunks(
        self, ys: list[Any], call: Callable[[Sequence[Any]], Any], block: int, c: int, shards: int
    ) -> Any:
        """BA-13.4 for the chunks of BA-14.9: ``c`` local rows of each of ``shards`` blocks per chunk."""
        n_full, rest = divmod(block, c)
        traced: list[_Chunk] = []
        ys = _as_jax(ys)

        def body(chunk_ys: list[jax.Array]) -> list[Any]:
            out_leaves, out_def = self._chunk_leaves(call(chunk_ys), shards * c)
            traced.append(_Chunk.traced(out_leaves, out_def))
            return out_leaves

        mapped = self._map_chunks(body, [_sharding.stack_chunks(y, shards, n_full, c) for y in ys])
        first = traced[-1]
        if not rest:
            return first.with_leaves([_sharding.unstack_chunks(m, shards) for m in mapped])
        output = call([_sharding.chunk_of(y, shards, n_full * c, block) for y in ys])
        last = _Chunk(output, *self._chunk_leaves(output, shards * rest))
        last.check_agrees(n_full, n_full * c, block, first, shards)
        return first.with_leaves(
            [_sharding.unstack_chunks(m, shards, leaf) for m, leaf in zip(mapped, last.leaves, strict=True)]
        )

    def _output_axes(self, outputs: Any) -> list[Any] | None:
        """The axis of every output leaf, or None when ``out_axes`` is 0 (BA-7.5)."""
        if type(self.out_axes) is int:
            return None
        try:
            return _broadcast_axes(self.out_axes, outputs)
        except ValueError:
            raise ValueError(
                f"{OUT_AXES_PREFIX_PREFIX} of the output of f at output: "
                f"{_structures(self.out_axes, outputs)}. `out_axes` must be 0, None, or a "
                "container of the same type and keys as the output."
            ) from None

    def _chunk_leaves(self, output: Any, rows: Any) -> tuple[list[Any], Any]:
        """The leaves and treedef of one chunk's output, checked (BA-13.6: E27, E16, E26, then E10)."""
        out_leaves, out_def = _flatten(output, (output,), ("output",))
        axes = self._output_axes(output)
        unchunkable = [
            i
            for i, leaf in enumerate(out_leaves)
            if (axes is not None and axes[i] is None) or not ndim_at_least(leaf, 0)
        ]
        if unchunkable:
            paths = _paths(output, "output")
            listed = ", ".join(
                f"{paths[i]} ("
                + (
                    "not selected by out_axes"
                    if axes is not None and axes[i] is None
                    else "a " + type(out_leaves[i]).__name__
                )
                + ")"
                for i in unchunkable
            )
            raise ValueError(
                f"{CHUNK_OUTPUT_PREFIX} leaves: {listed}. With `chunk_size`, every "
                "output leaf must be an array split by `out_axes` (0), since the chunks' outputs are "
                "concatenated. Compute unbatched values (a loss, say) outside f, or drop `chunk_size`."
            )
        if _MATRIX in _kinds(out_leaves):
            _raise_matrix(out_leaves, range(len(out_leaves)), lambda: _paths(output, "output"), "split")
        if any(leaf.ndim == 0 or leaf.shape[0] != rows for leaf in out_leaves):
            paths = _paths(output, "output")
            listed = ", ".join(
                f"{paths[i]} has shape {tuple(leaf.shape)}"
                for i, leaf in enumerate(out_leaves)
                if leaf.ndim == 0 or leaf.shape[0] != rows
            )
            raise ValueError(
                f"{OUTPUT_PREFIX} leaves of a chunk of {rows} rows: {listed}; "
                f"expected rank >= 1 and a leading size of {rows}. Each chunk's output must have "
                "one row per row of the chunk; compute unbatched values (a loss, say) outside f."
            )
        return out_leaves, out_def

    def _raise_leading_shape_error(
        self, args: Any, kwargs: Any, leaves: list[Any], order: Sequence[int], leading: tuple[Any, ...]
    ) -> NoReturn:
        """BA-3.2's message: every disagreeing leaf by path. The slow path, errors only."""
        n = self.num_dims
        mergeable = [i for i in order if ndim_at_least(leaves[i], n)]
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
        ) from None  # raised while handling the internal _Mismatch: hide it

    def _split_outputs(
        self, outputs: Any, leading: tuple[Any, ...], size: Any, counts: _sharding.Counts = None
    ) -> Any:
        out_leaves, out_def = _flatten(outputs, (outputs,), ("output",))
        out_axes = self._output_axes(outputs)
        # None: every output leaf is selected (out_axes=0), the common case.
        selected = None if out_axes is None else [i for i, axis in enumerate(out_axes) if axis == 0]
        if _MATRIX in _kinds(out_leaves):  # E26, before E10
            order = range(len(out_leaves)) if selected is None else selected
            _raise_matrix(out_leaves, order, lambda: _paths(outputs, "output"), "split")

        def split_one(y: Any, i: int) -> Any:  # BA-7.2, BA-7.3, BA-14.2
            if y.ndim == 0 or y.shape[0] != size:
                raise _Mismatch
            return _sharding.split(y, leading, counts, self.row_order, lambda: _paths(outputs, "output"), i)

        fused = _Fused(_split_fused, (leading,)) if counts is None else None
        try:
            split = _reshape_leaves(out_leaves, selected, fused, split_one)
        except _Mismatch:
            order = range(len(out_leaves)) if selected is None else selected
            self._raise_output_error(outputs, out_leaves, order, leading, size)
        return tree_util.tree_unflatten(out_def, split)  # BA-7.1, BA-7.4

    def _raise_output_error(
        self, outputs: Any, out_leaves: list[Any], order: Sequence[int], leading: tuple[Any, ...], size: Any
    ) -> NoReturn:
        """BA-7.3's message: every selected output that cannot be split, by path."""
        paths = _paths(outputs, "output")
        listed = ", ".join(
            f"{paths[i]} has shape {tuple(out_leaves[i].shape)}"
            for i in order
            if ndim_at_least(out_leaves[i], 0) and (out_leaves[i].ndim == 0 or out_leaves[i].shape[0] != size)
        )
        raise ValueError(
            f"{OUTPUT_PREFIX} leaves into the leading shape {leading}: "
            f"{listed}; expected rank >= 1 and a leading size of {size}. "
            "If an output is not batched (a loss, say), return it unsplit with "
            "`out_axes=None` for it."
        ) from None  # raised while handling the internal _Mismatch: hide it
