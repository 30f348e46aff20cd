"""Hypothesis strategies for BatchApply calls: valid ones (:func:`cases`) and forbidden ones.

A :class:`Case` is one call ``BatchApply(f, num_dims, in_axes=..., out_axes=...)(*args,
**kwargs)`` with ``f`` named by :data:`batchapply_conformance.functions.FUNCTIONS`.
Inputs are NumPy only (this module never imports jax); a test converts them to
``jax.Array`` where it wants to.

What is generated (SPEC section 1): pytrees built by ``st.recursive`` from dicts
with str keys (in an insertion order that differs from sorted order), lists,
tuples, namedtuples and ``None``; leaves are *batched* arrays sharing one leading
shape (``st.shared``, 1 to 4 dims, sizes 0 to 3), lower-rank arrays and NumPy
scalars, Python ``int``/``float``/``bool``/``complex``, strings and opaque
objects. Dtypes: :data:`DTYPES` (:data:`X64_DTYPES` adds 64-bit ones, for tests
run under ``jax.enable_x64``). Arrays stay small: the reference copies row by row.

The input space beyond this (per-leaf mixes of NumPy and ``jax.Array`` leaves, jax-only
leaves, masked arrays and non-numeric dtypes, ``OrderedDict``/``defaultdict``/custom
nodes, keyword names such as ``self``) is drawn by
:func:`batchapply_conformance.input_space.wide_calls`, which needs jax.

Requires the ``conformance`` extra (hypothesis, ml_dtypes).

>>> import batchapply_reference
>>> case = Case("tanh", (np.zeros((2, 3, 4), np.float32), "label"), {}, 2, 0, 0)
>>> (x, label), kwargs = run(case, batchapply_reference)
>>> x.shape, label, kwargs
((2, 3, 4), 'label', {})
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import types
from collections.abc import Callable, Sequence
from typing import Any

import ml_dtypes
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from batchapply_conformance.functions import FUNCTIONS, WEIGHTED_FUNCTIONS, WRONG_OUTPUT_FUNCTIONS
from batchapply_reference import _core, _tree

DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "uint8",
    "uint32",
    "float16",
    "bfloat16",
    "float32",
    "complex64",
)
"""Dtype names drawn by default: each exists in NumPy (with ml_dtypes) and in JAX without x64."""

X64_DTYPES = DTYPES + ("int64", "float64")
""":data:`DTYPES` plus 64-bit ones; a test drawing these runs under ``jax.enable_x64(True)``."""

FLOAT_BOUND = 8.0
"""Floating elements lie in [-FLOAT_BOUND, FLOAT_BOUND]: big enough to saturate tanh."""

MAX_SIDE = 3
"""The largest size of any dimension; the weight of ``matmul_weight`` has this many rows."""

SPLIT = "split_leading_dim"
"""``Case.function`` of the error cases of rows E12 and E13: call ``split_leading_dim(*args)``."""

NOT_CALLABLE: dict[str, Any] = {"<int>": 42, "<str>": "f", "<None>": None, "<list>": [abs]}
"""``Case.function`` names for row E1, and the non-callable ``f`` each stands for."""

ERROR_ROWS = tuple(f"E{i}" for i in range(1, 14))
"""Every row of the SPEC error table; :func:`error_cases` builds each of them."""

ERROR_PREFIXES: dict[str, tuple[type[Exception], str]] = {
    "E1": (TypeError, _core.F_PREFIX),
    "E2": (TypeError, _core.NUM_DIMS_TYPE_PREFIX),
    "E3": (ValueError, _core.NUM_DIMS_VALUE_PREFIX),
    "E4": (ValueError, _core.AXIS_VALUE_PREFIX),
    "E5": (ValueError, _core.IN_AXES_TYPE_PREFIX),
    "E6": (ValueError, _core.IN_AXES_LENGTH_PREFIX),
    "E7": (ValueError, _core.IN_AXES_PREFIX_PREFIX),
    "E8": (ValueError, _core.NO_MERGEABLE_PREFIX + "{num_dims}"),
    "E9": (ValueError, _core.LEADING_SHAPE_PREFIX),
    "E10": (ValueError, _core.OUTPUT_PREFIX),
    "E11": (ValueError, _core.OUT_AXES_PREFIX_PREFIX),
    "E12": (TypeError, _core.SPLIT_TYPE_PREFIX),
    "E13": (ValueError, _core.SPLIT_SHAPE_PREFIX),
}
"""SPEC row -> (exception type, message prefix with ``{num_dims}`` unfilled)."""

Point = collections.namedtuple("Point", ["y", "x"])
Triple = collections.namedtuple("Triple", ["c", "b", "a"])

_DICT_KEYS = ("b", "a", "zeta", "c", "x0")
_KWARG_NAMES = ("x", "beta", "alpha", "mask")
_BAD_AXES: tuple[Any, ...] = (1, -1, 2, 0.0, 1.5, False, True, "0", np.int64(0))


class Token:
    """An opaque object leaf with a readable repr: hypothesis prints it in reproducers.

    >>> Token("a")
    Token('a')
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Token({self.name!r})"


@dataclasses.dataclass(frozen=True)
class Case:
    """One BatchApply call, valid or (with ``error`` set) forbidden.

    Attributes:
        function: A key of ``FUNCTIONS``; for row E1 a key of :data:`NOT_CALLABLE`;
            :data:`SPLIT` for rows E12 and E13 (then ``args`` is ``(x, to_dim)``).
        args: The positional arguments (NumPy inputs).
        kwargs: The keyword arguments.
        num_dims: As given to the constructor (not an int in some E2 cases).
        in_axes: As given to the constructor.
        out_axes: As given to the constructor.
        leading: The leading shape of the batched arrays that were drawn.
        x64: Whether inputs have 64-bit dtypes (run under ``jax.enable_x64``).
        error: The SPEC row (``"E9"``) this call must raise, or None if valid.
    """

    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    num_dims: Any
    in_axes: Any
    out_axes: Any
    leading: tuple[int, ...] = ()
    x64: bool = False
    error: str | None = None

    def expected_prefix(self) -> tuple[type[Exception], str]:
        """The exception type and filled-in message prefix of ``error``.

        >>> Case("identity", (), {}, 3, 0, 0, error="E8").expected_prefix()[1]
        'BatchApply requires at least one input with ndim >= 3'
        """
        assert self.error is not None, "a valid case has no expected error"
        kind, prefix = ERROR_PREFIXES[self.error]
        return kind, prefix.replace("{num_dims}", str(self.num_dims))


def function_of(case: Case) -> Any:
    """The ``f`` a case names: a registry function, or a non-callable for row E1.

    >>> function_of(Case("<int>", (), {}, 2, 0, 0, error="E1"))
    42
    """
    if case.function in NOT_CALLABLE:
        return NOT_CALLABLE[case.function]
    return FUNCTIONS[case.function].fn


def run(
    case: Case,
    lib: types.ModuleType,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    f: Callable[..., Any] | None = None,
) -> Any:
    """Run ``case`` with package ``lib`` (``batchapply`` or ``batchapply_reference``).

    Args:
        case: The call.
        lib: The package whose ``BatchApply`` (or ``split_leading_dim``) runs it.
        args: Replaces ``case.args`` (for instance the same inputs as ``jax.Array``).
        kwargs: Replaces ``case.kwargs``.
        f: Replaces the case's function (for instance a wrapper that records calls).

    Returns:
        What the call returns.
    """
    args = case.args if args is None else tuple(args)
    kwargs = case.kwargs if kwargs is None else kwargs
    if case.function == SPLIT:
        return lib.split_leading_dim(*args)
    apply = lib.BatchApply(
        function_of(case) if f is None else f, case.num_dims, in_axes=case.in_axes, out_axes=case.out_axes
    )
    return apply(*args, **kwargs)


def arg_axes(in_axes: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """One axes prefix per positional argument, for a valid ``in_axes``.

    >>> arg_axes(0, ("a", "b")), arg_axes([0, {"w": None}], ("a", {"w": 1}))
    ((0, 0), (0, {'w': None}))
    """
    if isinstance(in_axes, (tuple, list)):
        return tuple(in_axes)
    return (in_axes,) * len(args)


def merged_mask(case: Case) -> tuple[Any, Any]:
    """``(args, kwargs)`` with every leaf replaced by whether it is merged (SPEC BA-1.4).

    >>> x = np.zeros((2, 3))
    >>> merged_mask(Case("identity", (x, np.zeros(3)), {"k": "s"}, 2, 0, 0))
    ((True, False), {'k': False})
    """
    n = case.num_dims

    def is_merged(_path: str, leaf: Any, axis: Any) -> bool:
        return axis == 0 and _core.ndim_at_least(leaf, n)

    return (
        _tree.map_leaves(is_merged, case.args, arg_axes(case.in_axes, case.args), "args"),
        _tree.map_leaves(is_merged, case.kwargs, 0, "kwargs"),
    )


def leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree`` in leaf order (SPEC BA-1.3), containers as the reference models them.

    >>> leaves(({"b": 1, "a": [2, None]}, Point(y=3, x=4)))
    [2, 1, 3, 4]
    """
    return [leaf for _, leaf, _ in _tree.leaves_with_paths(tree, None, "")]


# ---- leaves --------------------------------------------------------------------------


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The NumPy dtype of a dtype name; ``bfloat16`` comes from ml_dtypes.

    >>> numpy_dtype("bfloat16")
    dtype(bfloat16)
    """
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def arrays(dtype: str, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """NumPy arrays of ``dtype`` and ``shape``; floats are finite and bounded by :data:`FLOAT_BOUND`.

    ``from_dtype`` cannot draw bfloat16: it is drawn as float32 and cast.
    """
    if dtype == "bfloat16":
        return arrays("float32", shape).map(lambda a: a.astype(ml_dtypes.bfloat16))
    np_dtype = numpy_dtype(dtype)
    width: Any = 8 * np_dtype.itemsize  # hypothesis types it as a Literal
    if np_dtype.kind == "f":
        elements: st.SearchStrategy[Any] = st.floats(-FLOAT_BOUND, FLOAT_BOUND, width=width)
        return hnp.arrays(np_dtype, shape, elements=elements)
    if np_dtype.kind == "c":
        elements = st.complex_numbers(
            max_magnitude=FLOAT_BOUND, width=width, allow_nan=False, allow_infinity=False
        )
        return hnp.arrays(np_dtype, shape, elements=elements)
    return hnp.arrays(np_dtype, shape)


def leading_shapes() -> st.SearchStrategy[tuple[int, ...]]:
    """Leading shapes: 1 to 4 dims (so ``num_dims`` 1 to 4), sizes 0 to 3, size 0 less often."""
    side = st.sampled_from([1, 2, 3, 0, 1, 2])
    return st.integers(1, 4).flatmap(lambda n: st.tuples(*[side] * n))


LEADING = st.shared(leading_shapes(), key="batchapply_conformance.strategies.leading")
"""The leading shape of one test case: every batched array of the case draws it."""


def trailing_shapes(max_dims: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes of rank 0 to ``max_dims``, sizes 0 to :data:`MAX_SIDE`."""
    return hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=MAX_SIDE)


def batched_arrays(dtypes: Sequence[str]) -> st.SearchStrategy[np.ndarray]:
    """Arrays of shape ``leading + trailing`` (trailing rank 0 to 3), leading from :data:`LEADING`."""
    return st.tuples(LEADING, trailing_shapes(), st.sampled_from(dtypes)).flatmap(
        lambda t: arrays(t[2], t[0] + t[1])
    )


@functools.cache
def _batched_arrays(dtypes: tuple[str, ...]) -> st.SearchStrategy[np.ndarray]:
    return batched_arrays(dtypes)


def low_rank_arrays(dtypes: Sequence[str], rows: bool = True) -> st.SearchStrategy[Any]:
    """Arrays of rank below ``num_dims`` (never merged) and NumPy scalars (rank 0).

    With ``rows=False`` only rank-0 ones (arrays and NumPy scalars).
    """

    def draw_for(t: tuple[tuple[int, ...], str]) -> st.SearchStrategy[Any]:
        leading, dtype = t
        max_dims = len(leading) - 1 if rows else 0
        scalars = arrays(dtype, ()).map(lambda a: a[()])  # a numpy.generic
        return st.one_of(scalars, trailing_shapes(max_dims).flatmap(lambda s: arrays(dtype, s)))

    return st.tuples(LEADING, st.sampled_from(dtypes)).flatmap(draw_for)


def other_leaves() -> st.SearchStrategy[Any]:
    """Leaves that are not arrays: Python scalars, strings, opaque objects."""
    return st.one_of(
        st.integers(),
        st.floats(),
        st.booleans(),
        st.complex_numbers(),
        st.text(max_size=3),
        st.builds(Token, st.text(alphabet="abc", max_size=2)),
    )


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(_DICT_KEYS), children, max_size=3),
        st.builds(Point, children, children),
        st.builds(Triple, children, children, children),
    )


def pytrees(
    dtypes: Sequence[str] = DTYPES,
    *,
    batched: bool = True,
    unmerged_rows: bool = True,
    non_arrays: bool = True,
) -> st.SearchStrategy[Any]:
    """Pytrees (``st.recursive``) of the leaves above, at most 5 leaves.

    One strategy object per set of arguments: a composite that builds the same
    ``st.recursive`` on every draw would have hypothesis validate it again each time
    (most of the kit's run time before this cache).

    Args:
        dtypes: Dtype names of the arrays.
        batched: Whether batched arrays (rank >= ``num_dims``) may appear.
        unmerged_rows: Whether low-rank arrays of rank >= 1 may appear.
        non_arrays: Whether Python scalars, strings and opaque objects may appear.
    """
    return _pytrees(tuple(dtypes), batched, unmerged_rows, non_arrays)


@functools.cache
def _pytrees(dtypes: tuple[str, ...], batched: bool, unmerged_rows: bool, non_arrays: bool) -> Any:
    others = [other_leaves()] if non_arrays else []
    leaf_kinds = [low_rank_arrays(dtypes, rows=unmerged_rows), *others, st.none()]
    if batched:
        leaf_kinds = [batched_arrays(dtypes)] * 4 + leaf_kinds  # more than half: several merged leaves
    return st.recursive(st.one_of(leaf_kinds), _containers, max_leaves=5)


# ---- axes ----------------------------------------------------------------------------


def _rebuild_like(tree: Any, children: list[Any]) -> Any:
    """A container of ``tree``'s type (dict keys in their sorted order) holding ``children``."""
    if type(tree) is dict:
        return dict(zip(sorted(tree), children, strict=True))
    if _tree.is_namedtuple(tree):
        return type(tree)(*children)
    return type(tree)(children)


def _children(tree: Any) -> list[Any] | None:
    """The children of a container in leaf order; None for a leaf, [] for ``None``."""
    if tree is None:
        return []
    if type(tree) is dict:
        return [tree[key] for key in sorted(tree)]
    if type(tree) in (list, tuple) or _tree.is_namedtuple(tree):
        return list(tree)
    return None


def _draw_prefix(draw: st.DrawFn, tree: Any, leaf_axes: Callable[[Any], list[Any]]) -> Any:
    """A random axes prefix of ``tree``: ``leaf_axes(leaf)`` lists the allowed axes of each leaf.

    A subtree whose leaves all got the same axis may collapse to that axis.
    """
    children = _children(tree)
    if children is None:
        return draw(st.sampled_from(leaf_axes(tree)))
    if tree is None:  # a container without children: any axis leaf will do
        return draw(st.sampled_from([0, None]))
    child_axes = [_draw_prefix(draw, child, leaf_axes) for child in children]
    below = [axis for child in child_axes for axis in _tree.axis_leaves(child)]
    if len({axis is None for axis in below}) <= 1 and draw(st.booleans()):
        return below[0] if below else draw(st.sampled_from([0, None]))
    axes = _rebuild_like(tree, child_axes)
    if type(axes) is dict and draw(st.booleans()):
        axes = dict(reversed(list(axes.items())))  # key order does not matter (BA-4.4)
    return axes


def _in_axes_strategy(draw: st.DrawFn, args: tuple[Any, ...], weighted: bool, allow_none: bool) -> Any:
    """A valid ``in_axes`` for ``args``; a weight (the last argument) always gets None."""
    choices = [0, None] if allow_none else [0]
    shape = draw(st.sampled_from(["int", "tuple", "list"]))
    if shape == "int" and not weighted:
        return draw(st.sampled_from(choices))
    if shape == "int" and allow_none:
        return None
    batched_args = args[:-1] if weighted else args
    entries = tuple(_draw_prefix(draw, arg, lambda _leaf: choices) for arg in batched_args)
    if weighted:
        entries += (None,)
    return list(entries) if shape == "list" else entries


def _out_axes_strategy(draw: st.DrawFn, output: Any, size: int) -> Any:
    """A valid ``out_axes`` for ``output``: 0 only over leaves that can be split (BA-7.2)."""

    def allowed(leaf: Any) -> list[Any]:
        if not _core.is_array(leaf):
            return [0, None]
        if leaf.ndim >= 1 and leaf.shape[0] == size:
            return [0, 0, None]
        return [None]

    return _draw_prefix(draw, output, allowed)


def _weight(x64: bool) -> np.ndarray:
    """The ``(MAX_SIDE, 2)`` weight of ``matmul_weight``: fixed, distinct, exactly representable values."""
    dtype = np.float64 if x64 else np.float32
    return np.asarray([[(2 * i + j - 2.5) / 4 for j in range(2)] for i in range(MAX_SIDE)], dtype=dtype)


def _has_mergeable(args: tuple[Any, ...], kwargs: dict[str, Any], in_axes: Any, n: int) -> bool:
    entries = _tree.leaves_with_paths(args, arg_axes(in_axes, args), "args")
    entries += _tree.leaves_with_paths(kwargs, 0, "kwargs")
    return any(axis == 0 and _core.ndim_at_least(leaf, n) for _, leaf, axis in entries)


@st.composite
def _inputs(
    draw: st.DrawFn,
    function: str,
    dtypes: Sequence[str],
    unmerged_rows: bool,
    non_arrays: bool = True,
) -> tuple[tuple[Any, ...], dict[str, Any], Any, tuple[int, ...]]:
    """``(args, kwargs, in_axes, leading)`` with at least one mergeable leaf."""
    leading = draw(LEADING)
    x64 = any(d in ("int64", "float64") for d in dtypes)
    trees = pytrees(dtypes, unmerged_rows=unmerged_rows, non_arrays=non_arrays)
    args = tuple(draw(st.lists(trees, max_size=3)))
    kwargs = draw(st.dictionaries(st.sampled_from(_KWARG_NAMES), trees, max_size=2))
    weighted = function in WEIGHTED_FUNCTIONS
    if weighted:
        args += (_weight(x64),)
    in_axes = _in_axes_strategy(draw, args, weighted, allow_none=unmerged_rows)
    if not _has_mergeable(args, kwargs, in_axes, len(leading)):
        kwargs = {**kwargs, "batch": draw(_batched_arrays(tuple(dtypes)))}  # kwargs are always merged
    return args, kwargs, in_axes, leading


@st.composite
def cases(
    draw: st.DrawFn,
    functions: Sequence[str] | None = None,
    dtypes: Sequence[str] = DTYPES,
    unmerged_rows: bool = True,
    non_arrays: bool = True,
) -> Case:
    """Valid BatchApply calls: every one returns a result (SPEC sections 3 to 7).

    Args:
        draw: Supplied by ``st.composite``.
        functions: Names from ``FUNCTIONS`` to draw from; all of them by default.
        dtypes: Dtype names of the arrays; any 64-bit one sets ``Case.x64``.
        unmerged_rows: With False, the only array leaves of rank >= 1 that reach
            ``f`` unmerged are a weight; useful for laws about rows.
        non_arrays: With False, every leaf is an array (or None): no Python
            scalars, strings or opaque objects.

    Returns:
        A :class:`Case` whose ``out_axes`` selects only splittable outputs.
    """
    function = draw(st.sampled_from(sorted(functions or FUNCTIONS)))
    args, kwargs, in_axes, leading = draw(_inputs(function, dtypes, unmerged_rows, non_arrays))
    n = len(leading)
    # What f returns, unsplit, tells which outputs may be split.
    output = _core.BatchApply(FUNCTIONS[function].fn, n, in_axes=in_axes, out_axes=None)(*args, **kwargs)
    out_axes = _out_axes_strategy(draw, output, math.prod(leading))
    x64 = any(d in ("int64", "float64") for d in dtypes)
    return Case(function, args, kwargs, n, in_axes, out_axes, leading, x64)


# ---- forbidden calls -----------------------------------------------------------------


def _bad_prefix(draw: st.DrawFn, tree: Any) -> Any:
    """An axes tree that is *not* a pytree prefix of ``tree`` (SPEC BA-4.4, BA-7.5)."""
    children = _children(tree)
    if children is None or tree is None:  # a leaf or None: any non-empty container... or ()
        return draw(st.sampled_from([(0,), [None], {"k": 0}, (), [], Point(0, 0)]))
    options = ["wrong_type", "wrong_length"]
    if children:
        options.append("deeper")
    choice = draw(st.sampled_from(options))
    if choice == "deeper":
        i = draw(st.integers(0, len(children) - 1))
        child_axes = [
            _bad_prefix(draw, child) if j == i else draw(st.sampled_from([0, None]))
            for j, child in enumerate(children)
        ]
        return _rebuild_like(tree, child_axes)
    if choice == "wrong_type":
        if type(tree) is dict:
            return [0] * len(tree)
        if _tree.is_namedtuple(tree):
            return tuple([0] * len(tree))
        return (list if type(tree) is tuple else tuple)([0] * len(tree))
    # wrong length (for a dict: another key set; a namedtuple cannot change length)
    if type(tree) is dict:
        return {**dict.fromkeys(tree, 0), "not_a_key": 0}
    if _tree.is_namedtuple(tree):
        return tuple([0] * (len(tree) + 1))
    return type(tree)([0] * (len(tree) + 1))


def _with_bad_axis(draw: st.DrawFn, axes: Any) -> Any:
    """``axes`` with one leaf (or the whole tree) replaced by a forbidden axis value (BA-2.4)."""
    bad = draw(st.sampled_from(_BAD_AXES))
    children = _children(axes)
    if not children:
        return bad
    i = draw(st.integers(0, len(children) - 1))
    return _rebuild_like(axes, [_with_bad_axis(draw, c) if j == i else c for j, c in enumerate(children)])


@st.composite
def _construction_error(draw: st.DrawFn, row: str) -> Case:
    """Rows E1 to E5, possibly with lower-precedence violations too (SPEC section 10)."""
    case = draw(cases(functions=["identity"]))
    function, num_dims, in_axes, out_axes = case.function, case.num_dims, case.in_axes, case.out_axes
    # Precedence E1 > E2/E3 > E5 > E4: a row's case may add violations of later rows.
    order = ["E1", "E2", "E5", "E4"]
    rank = order.index("E2" if row == "E3" else row)
    extra = [r for r in order[rank + 1 :] if draw(st.booleans())]
    if row == "E1":
        function = draw(st.sampled_from(sorted(NOT_CALLABLE)))
    if row == "E2" or "E2" in extra:
        num_dims = draw(st.sampled_from([2.5, "2", True, False, None, [2], 2.0]))
    if row == "E3":
        num_dims = draw(st.sampled_from([0, -1, -4, np.int64(0)]))
    if row == "E5" or "E5" in extra:
        in_axes = draw(st.sampled_from([{"x": 0}, "x", 0.0, True, np.int64(0), frozenset(), Point(0, None)]))
    if row == "E4" or "E4" in extra:
        where = draw(st.sampled_from(["in_axes", "out_axes"] if row == "E4" else ["out_axes"]))
        if where == "in_axes" and row == "E4":
            if not isinstance(in_axes, (tuple, list)) or not in_axes:
                in_axes = draw(st.sampled_from([1, -1, 2, (1,), [0, -1], ({"k": 2.0},)]))
            else:
                in_axes = _with_bad_axis(draw, tuple(in_axes))
        else:
            out_axes = _with_bad_axis(draw, out_axes)
    return dataclasses.replace(
        case, function=function, num_dims=num_dims, in_axes=in_axes, out_axes=out_axes, error=row
    )


@st.composite
def _call_error(draw: st.DrawFn, row: str) -> Case:
    """Rows E6 to E11: the constructor accepts, the call raises."""
    if row == "E8":
        leading = draw(LEADING)
        trees = pytrees(batched=False)
        args = tuple(draw(st.lists(pytrees(), max_size=3)))
        in_axes: Any = draw(st.sampled_from([None, "tuple"]))
        if in_axes == "tuple":  # every positional argument unselected, or without batched leaves
            in_axes = tuple(None for _ in args)
        kwargs = draw(st.dictionaries(st.sampled_from(_KWARG_NAMES), trees, max_size=2))
        more = tuple(draw(st.lists(trees, max_size=2)))
        if isinstance(in_axes, tuple):
            in_axes += tuple(draw(st.sampled_from([0, None])) for _ in more)
        args += more
        return Case("identity", args, kwargs, len(leading), in_axes, 0, leading, error=row)
    function = draw(
        st.sampled_from(WRONG_OUTPUT_FUNCTIONS) if row == "E10" else st.sampled_from(sorted(FUNCTIONS))
    )
    case = draw(cases(functions=[function]))
    if row == "E6":
        entries = list(arg_axes(case.in_axes, case.args))
        if len(entries) > 0 and draw(st.booleans()):
            entries.pop(draw(st.integers(0, len(entries) - 1)))
        else:
            entries.append(draw(st.sampled_from([0, None])))
        return dataclasses.replace(case, in_axes=tuple(entries), error=row)
    if row == "E7":
        if not case.args:
            case = dataclasses.replace(case, args=(draw(pytrees()),))
        entries = [draw(st.sampled_from([0, None])) for _ in case.args]
        if case.function in WEIGHTED_FUNCTIONS:
            entries[-1] = None
        i = draw(st.integers(0, len(case.args) - 1))
        entries[i] = _bad_prefix(draw, case.args[i])
        return dataclasses.replace(case, in_axes=tuple(entries), error=row)
    if row == "E9":
        n = len(case.leading)
        other = draw(st.tuples(*[st.integers(0, MAX_SIDE)] * n).filter(lambda shape: shape != case.leading))
        trailing = draw(trailing_shapes())
        stray = draw(arrays(draw(st.sampled_from(DTYPES)), other + trailing))
        kwargs = {**case.kwargs, draw(st.sampled_from(["stray", "a_stray"])): stray}
        return dataclasses.replace(case, kwargs=kwargs, error=row)
    if row == "E10":
        return dataclasses.replace(case, out_axes=0, error=row)
    # E11: an out_axes that is not a prefix of what f returns.
    output = _core.BatchApply(
        FUNCTIONS[case.function].fn, case.num_dims, in_axes=case.in_axes, out_axes=None
    )(*case.args, **case.kwargs)
    return dataclasses.replace(case, out_axes=_bad_prefix(draw, output), error=row)


@st.composite
def _split_error(draw: st.DrawFn, row: str) -> Case:
    """Rows E12 and E13: ``split_leading_dim`` on a non-array, or the wrong rank or size."""
    to_dim = draw(st.tuples(*[st.integers(0, MAX_SIDE)] * draw(st.integers(1, 3))))
    if row == "E12":
        x = draw(st.one_of(other_leaves(), st.none(), st.lists(st.integers(), max_size=3)))
    else:
        shape = draw(trailing_shapes().filter(lambda s: not s or s[0] != math.prod(to_dim)))
        x = draw(arrays(draw(st.sampled_from(DTYPES)), shape))
    return Case(SPLIT, (x, to_dim), {}, None, None, None, error=row)


def error_cases(rows: Sequence[str] = ERROR_ROWS) -> st.SearchStrategy[Case]:
    """Forbidden calls, one kind per SPEC error row; ``Case.error`` names the row.

    Args:
        rows: The rows to draw from; all of :data:`ERROR_ROWS` by default.

    Returns:
        A strategy of :class:`Case` with ``error`` set.
    """
    by_row = []
    for row in rows:
        if row in ("E1", "E2", "E3", "E4", "E5"):
            by_row.append(_construction_error(row))
        elif row in ("E12", "E13"):
            by_row.append(_split_error(row))
        else:
            by_row.append(_call_error(row))
    return st.one_of(by_row)
