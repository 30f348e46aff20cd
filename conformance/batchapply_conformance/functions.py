"""Named functions ``f`` for differential tests and golden files, written once for NumPy and JAX.

Each function is written against the array API (``xp = x.__array_namespace__()``),
so the very same code runs on the NumPy arrays the reference passes to ``f`` and
on the ``jax.Array`` (or tracer) the implementation passes; this module never
imports jax.

Every function is called as ``fn(*args, **kwargs)`` on the *merged* inputs of a
call and accepts any pytree of the containers of SPEC BA-1.3. It acts on every
*row leaf* (an array leaf with ``ndim >= 1``, which has rows along axis 0) and
passes every other leaf (Python scalars, strings, ``None``, objects, rank-0
arrays) through untouched, so it copes with whatever
:mod:`batchapply_conformance.strategies` generates. Functions that only make sense
for one kind of dtype (``tanh`` for floats) pass the other row leaves through too.

Two flags say what a test may expect:

- ``exact``: the result is bit-identical whether ``f`` runs on NumPy or on JAX
  arrays (integer and bool arithmetic, data movement). Floating functions are
  compared with a per-dtype tolerance instead.
- ``row_independent``: output row ``i`` depends only on input row ``i`` (as long
  as every row leaf reaching ``f`` is a merged input), so ``f`` on the merged
  batch equals ``f`` on each example alone (``jax.vmap``).

>>> import numpy as np
>>> FUNCTIONS["int_arith"].fn(np.arange(3, dtype=np.int8), "label")
((array([1, 4, 7], dtype=int8), 'label'), {})
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from batchapply_reference import _tree

Pair = collections.namedtuple("Pair", ["first", "second"])
"""The namedtuple that :data:`FUNCTIONS` ``"more_leaves"`` returns."""

_REAL_FLOATING = ("float16", "bfloat16", "float32", "float64")
_INTEGRAL = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
# Dtypes are told apart by name: numpy.isdtype rejects ml_dtypes' bfloat16.


@dataclasses.dataclass(frozen=True)
class Function:
    """A named ``f`` for BatchApply, with what a differential test may expect of it.

    Attributes:
        name: The key of this function in :data:`FUNCTIONS`.
        fn: Called as ``fn(*args, **kwargs)`` on the merged inputs.
        exact: Results must be bit-identical between NumPy and JAX arrays.
        row_independent: Output row ``i`` depends only on input row ``i``.
        description: One line, for humans and golden files.

    >>> FUNCTIONS["identity"].exact
    True
    """

    name: str
    fn: Callable[..., Any]
    exact: bool
    row_independent: bool
    description: str


def is_row_leaf(x: object) -> bool:
    """Whether ``x`` is an array with rows: it has an array namespace and ``ndim >= 1``.

    >>> import numpy as np
    >>> is_row_leaf(np.zeros(3)), is_row_leaf(np.float32(1.0)), is_row_leaf([1, 2])
    (True, False, False)
    """
    return hasattr(x, "__array_namespace__") and getattr(x, "ndim", 0) >= 1


def _is_real_floating(x: Any) -> bool:
    return str(x.dtype) in _REAL_FLOATING


def _compute_dtype(xp: Any, x: Any) -> Any:
    """float64 for float64 inputs, float32 otherwise: floating work is done in it, then cast back."""
    return xp.float64 if str(x.dtype) == "float64" else xp.float32


def _map_row_leaves(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``tree`` with every row leaf ``x`` replaced by ``fn(x)``; other leaves kept as they are."""
    return _tree.map_leaves(
        lambda _path, leaf, _axis: fn(leaf) if is_row_leaf(leaf) else leaf, tree, None, ""
    )


def _row_leaves(tree: Any) -> list[Any]:
    """The row leaves of ``tree``, in leaf order (SPEC BA-1.3)."""
    return [leaf for _, leaf, _ in _tree.leaves_with_paths(tree, None, "") if is_row_leaf(leaf)]


def _on_rows(leaf_fn: Callable[[Any], Any]) -> Callable[..., Any]:
    """``f(*args, **kwargs) -> (args, kwargs)`` with ``leaf_fn`` applied to every row leaf."""

    def fn(*args: Any, **kwargs: Any) -> Any:
        return _map_row_leaves(leaf_fn, (args, kwargs))

    return fn


def _on_floating_rows(leaf_fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """Like :func:`_on_rows`, for real floating row leaves only, computed in float32 (or float64).

    ``leaf_fn(xp, x)`` gets ``x`` cast to the compute dtype; its result is cast
    back to the dtype of the leaf, so the only rounding that can differ between
    NumPy and XLA is the compute dtype's, plus one final rounding.
    """

    def on_leaf(x: Any) -> Any:
        if not _is_real_floating(x):
            return x
        xp = x.__array_namespace__()
        return xp.astype(leaf_fn(xp, xp.astype(x, _compute_dtype(xp, x))), x.dtype)

    return _on_rows(on_leaf)


# ---- exact ------------------------------------------------------------------------


def identity(*args: Any, **kwargs: Any) -> Any:
    """Return the whole ``(args, kwargs)`` structure as it came in."""
    return args, kwargs


def _int_arith(x: Any) -> Any:
    xp = x.__array_namespace__()
    if str(x.dtype) == "bool":
        return xp.logical_not(x)
    if str(x.dtype) in _INTEGRAL:
        return x * 3 + 1  # wraps around the same way in NumPy and XLA
    return x


def _reverse(x: Any) -> Any:
    return x.__array_namespace__().flip(x, axis=0)


def _gather(x: Any) -> Any:
    """Rows ``(3 * i + 1) % n``: a fixed gather that repeats some rows and drops others."""
    xp = x.__array_namespace__()
    n = x.shape[0]
    index = xp.asarray([(3 * i + 1) % n for i in range(n)], dtype=xp.int32)
    return xp.take(x, index, axis=0)


def _flat_features(x: Any) -> Any:
    """``x`` as ``(rows, features)``, features flattened in C order (one feature for a rank-1 leaf)."""
    xp = x.__array_namespace__()
    features = 1
    for d in x.shape[1:]:
        features *= d
    return xp.reshape(x, (x.shape[0], features))


def concat_features(*args: Any, **kwargs: Any) -> Any:
    """One ``(rows, features)`` array per group of row leaves with the same row count and dtype.

    Groups are keyed ``"{dtype}/{k}"``, ``k`` counting the distinct row counts in
    order of appearance (so the keys do not depend on the batch size); each
    concatenates its leaves' flattened features in leaf order.
    """
    row_counts: list[int] = []
    groups: dict[str, list[Any]] = {}
    for leaf in _row_leaves((args, kwargs)):
        if leaf.shape[0] not in row_counts:
            row_counts.append(leaf.shape[0])
        key = f"{leaf.dtype}/{row_counts.index(leaf.shape[0])}"
        groups.setdefault(key, []).append(_flat_features(leaf))
    return {key: leaves[0].__array_namespace__().concat(leaves, axis=1) for key, leaves in groups.items()}


def named_pieces(*args: Any, **kwargs: Any) -> Any:
    """A dict of named pieces; its insertion order differs from its sorted key order."""
    rows = _row_leaves((args, kwargs))
    return {
        "zeta": rows[0] if rows else None,
        "alpha": rows[1:],
        "mid": {"count": len(rows), "kwarg_names": tuple(sorted(kwargs))},
    }


def first_row_leaf(*args: Any, **kwargs: Any) -> Any:
    """Fewer leaves: only the first row leaf (a bare array, not a container)."""
    return _row_leaves((args, kwargs))[0]


def more_leaves(*args: Any, **kwargs: Any) -> Any:
    """More leaves: a :data:`Pair` ``(x, x with its int/bool arithmetic)`` per row leaf, plus a label."""
    return [Pair(x, _int_arith(x)) for x in _row_leaves((args, kwargs))] + ["label"]


def row_counts(*args: Any, **kwargs: Any) -> Any:
    """A rank-0 int32 array per row leaf (its row count): rank-0 outputs, for SPEC E10."""
    counts = []
    for x in _row_leaves((args, kwargs)):
        xp = x.__array_namespace__()
        counts.append(xp.asarray(x.shape[0], dtype=xp.int32))
    return counts


def _pad_row(x: Any) -> Any:
    xp = x.__array_namespace__()
    return xp.concat([x, xp.zeros((1,) + tuple(x.shape[1:]), dtype=x.dtype)], axis=0)


def _row_onehot(x: Any) -> Any:
    """Row ``i`` is the one-hot vector of ``i``: its trailing shape is the batch size.

    Fine without ``chunk_size``; with it, chunks of different sizes disagree (SPEC E17).
    """
    xp = x.__array_namespace__()
    return xp.eye(x.shape[0], dtype=xp.int32)


# ---- floating -----------------------------------------------------------------------


def matmul_weight(*args: Any, **kwargs: Any) -> Any:
    """``x @ w[:k]`` for every real floating leaf ``x`` of rank >= 2 (``k = x.shape[-1]``).

    The weight ``w`` is the last positional argument (pass it with
    ``in_axes=None``): a real floating ``(K, M)`` array with ``K`` at least the
    largest feature size. Returns ``(args[:-1], kwargs)`` with the products in
    place, in the dtype of ``w``; ``w`` itself is not returned.
    """
    *rest, w = args
    xp = w.__array_namespace__()

    def on_leaf(x: Any) -> Any:
        if x.ndim < 2 or not _is_real_floating(x):
            return x
        return xp.matmul(xp.astype(x, w.dtype), w[: x.shape[-1], :])

    return _map_row_leaves(on_leaf, (tuple(rest), kwargs))


def _softmax(xp: Any, x: Any) -> Any:
    if x.ndim < 2 or x.shape[-1] == 0:
        return x
    shifted = x - xp.max(x, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=-1, keepdims=True)


def _feature_sum(xp: Any, x: Any) -> Any:
    return xp.sum(x, axis=tuple(range(1, x.ndim)))


def _batch_mean(xp: Any, x: Any) -> Any:
    """Every row replaced by the mean of all rows (a batch of 0 rows stays empty)."""
    total = xp.sum(x, axis=0, keepdims=True)
    return xp.broadcast_to(total / max(x.shape[0], 1), x.shape)


_ALL = [
    Function("identity", identity, True, True, "(args, kwargs) as they came in"),
    Function("int_arith", _on_rows(_int_arith), True, True, "x * 3 + 1 on ints, logical not on bools"),
    Function("reverse_rows", _on_rows(_reverse), True, False, "every row leaf reversed along axis 0"),
    Function("gather_rows", _on_rows(_gather), True, False, "rows (3i + 1) % n of every row leaf"),
    Function("concat_features", concat_features, True, True, "row leaves concatenated along features"),
    Function("named_pieces", named_pieces, True, True, "dict {zeta, alpha, mid}: another structure"),
    Function("first_row_leaf", first_row_leaf, True, True, "only the first row leaf: fewer leaves"),
    Function("more_leaves", more_leaves, True, True, "a Pair per row leaf, plus a label: more leaves"),
    Function("row_counts", row_counts, True, False, "a rank-0 row count per row leaf (E10)"),
    Function("pad_row", _on_rows(_pad_row), True, False, "a zero row appended: wrong leading size (E10)"),
    Function("row_onehot", _on_rows(_row_onehot), True, False, "one-hot row index: width = batch (E17)"),
    Function("matmul_weight", matmul_weight, False, True, "x @ w[:k], w the last argument, in_axes None"),
    Function("tanh", _on_floating_rows(lambda xp, x: xp.tanh(x)), False, True, "tanh of float leaves"),
    Function("softmax", _on_floating_rows(_softmax), False, True, "softmax over the last axis"),
    Function("feature_sum", _on_floating_rows(_feature_sum), False, True, "sum over every feature axis"),
    Function("batch_mean", _on_floating_rows(_batch_mean), False, False, "mean over rows: mixes rows"),
]

FUNCTIONS: Mapping[str, Function] = {function.name: function for function in _ALL}
"""Every :class:`Function`, keyed by name."""

WRONG_OUTPUT_FUNCTIONS = ("row_counts", "pad_row")
"""Functions whose row outputs cannot be split with ``out_axes=0`` (SPEC E10)."""

WEIGHTED_FUNCTIONS = ("matmul_weight",)
"""Functions whose last positional argument is an unbatched weight (``in_axes=None``)."""
