"""The input space users pass (issue 11): every call mixes leaf kinds, containers and options.

:func:`wide_calls` draws one :class:`WideCall`: each leaf on its own is a NumPy array
(numeric, 64-bit, masked, str/bytes/object/structured/datetime64/float0), a
``jax.Array`` (plain, weak-typed, x64 made under ``jax.enable_x64`` and used
outside it, a typed PRNG key array, committed to a non-default device when
several exist) or a Python object; containers are dict, list, tuple,
namedtuple, ``OrderedDict``, ``defaultdict``, the custom nodes of
:mod:`batchapply_conformance.nodes` and a list nested 600 deep; keyword names
include ``self`` and ``f``; ``chunk_size`` is drawn too. Some calls are
forbidden on purpose: a merged ``numpy.matrix`` (E26), a dict with unsortable
keys (E27), a deleted ``jax.Array`` (E28, ``batchapply`` only).

:data:`CLASSES` names every class of input, and ``WideCall.classes`` the ones a
call contains: ``tests/property/test_input_space.py`` fails when a class is
never drawn in the ci profile, and docs/testing.md tabulates them. Needs jax.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import reprlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from hypothesis import strategies as st

from batchapply_conformance.golden import matrix
from batchapply_conformance.strategies import Point

try:  # the custom nodes registered in JAX and in the reference alike (SPEC BA-1.3)
    from batchapply_conformance.nodes import NODE_TYPES
except ImportError:  # pragma: no cover - a kit without the reference's node registry
    NODE_TYPES = ()

NUMERIC = (
    "bool",
    "int8",
    "int32",
    "uint8",
    "float16",
    "bfloat16",
    "float32",
    "complex64",
    "float8_e4m3fn",
    "int4",
)
"""Dtypes of the plain NumPy and jax.Array leaves (held exactly by JAX without x64)."""

NON_NUMERIC = ("str", "bytes", "object", "structured", "datetime64", "float0")
"""NumPy dtypes that JAX cannot hold; merged, they must reach ``f`` as NumPy, exactly."""

LEAF_KINDS = (
    "numpy",
    "numpy 64-bit",
    "numpy masked",
    *(f"numpy {dtype}" for dtype in NON_NUMERIC),
    "jax",
    "jax weak-typed",
    "jax x64",
    "jax PRNG key",
    "jax on another device",
    "python",
)
"""Kinds of valid leaves, drawn per leaf."""

CONTAINERS = (
    "dict",
    "list",
    "tuple",
    "namedtuple",
    "OrderedDict",
    "defaultdict",
    "nested 600 deep",
    *(f"node {cls.__name__}" for cls in NODE_TYPES),
)
"""Kinds of containers around the leaves."""

KEYWORDS = ("x", "self", "f", "args", "kwargs", "num_dims", "chunk_size")
"""Keyword argument names: ``self``, ``f`` and the option names belong to ``f`` too (BA-6.2)."""

FUNCTIONS = ("identity", "array_leaves", "numpy_leaves")
"""The ``f`` of a wide call (:data:`WIDE_FUNCTIONS`); with ``chunk_size``, not identity (E16)."""

ERRORS = ("E26 numpy.matrix", "E27 mixed-key dict", "E28 deleted jax.Array")
"""The forbidden inputs, one per call at most."""

DEEP = 600
"""Depth of the deeply nested list: deeper than Python's default recursion limit allows a walk."""

CLASSES: dict[str, str] = {
    **{f"leaf: {kind}": "leaf kind" for kind in LEAF_KINDS},
    **{f"container: {kind}": "container" for kind in CONTAINERS},
    **{f"keyword: {name}": "keyword name" for name in KEYWORDS},
    **{f"f: {name}": "function" for name in FUNCTIONS},
    **{f"error: {row}": "forbidden input" for row in ERRORS},
    "call: NumPy and jax.Array leaves mixed": "call",
    "option: chunk_size": "option",
    "option: chunk_size with several chunks": "option",
    "option: no chunk_size": "option",
    "shape: zero-size rows": "shape",
    "shape: no rows (N = 0)": "shape",
}
"""Every class of input that :func:`wide_calls` draws, and what it is."""

MULTI_DEVICE_CLASSES = frozenset({"leaf: jax on another device"})
"""Classes drawn only when JAX sees several devices."""


@dataclasses.dataclass(frozen=True)
class WideCall:
    """One call ``BatchApply(WIDE_FUNCTIONS[function], num_dims, chunk_size=...)(*args, **kwargs)``.

    Attributes:
        function: A key of :data:`WIDE_FUNCTIONS`.
        args: Positional arguments (NumPy, jax and Python leaves mixed).
        kwargs: Keyword arguments.
        num_dims: The number of leading dims.
        chunk_size: None, or the chunk size.
        classes: The :data:`CLASSES` this call contains.
        error: The SPEC row the call must raise (``"E26"``), or None.
    """

    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    num_dims: int
    chunk_size: int | None
    classes: frozenset[str]
    error: str | None = None
    in_axes: Any = 0
    out_axes: Any = 0
    row_order: Any = "C"

    def options(self) -> dict[str, Any]:
        """The constructor's options this call sets (those left at their defaults are not passed)."""
        found = {"in_axes": self.in_axes, "out_axes": self.out_axes, "chunk_size": self.chunk_size}
        found["row_order"] = self.row_order
        defaults = {"in_axes": 0, "out_axes": 0, "chunk_size": None, "row_order": "C"}
        return {k: v for k, v in found.items() if not (type(v) is type(defaults[k]) and v == defaults[k])}

    def __repr__(self) -> str:  # shallow: a list nested 600 deep has no printable repr
        short = reprlib.Repr()  # Python 3.11: no keyword arguments
        short.maxlevel, short.maxother, short.maxstring = 4, 80, 40
        fields = ", ".join(
            f"{field.name}={short.repr(getattr(self, field.name))}" for field in dataclasses.fields(self)
        )
        return f"WideCall({fields})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints falsifying examples so
        printer.text(repr(self))


def is_array(x: object) -> bool:
    """SPEC BA-1.1: NumPy arrays and scalars, jax.Array."""
    return isinstance(x, (np.ndarray, np.generic, jax.Array))


def is_key(x: object) -> bool:
    """Whether ``x`` is a typed PRNG key array."""
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _array_leaves(tree: Any) -> list[Any]:
    return [leaf for leaf in jax.tree_util.tree_leaves(tree) if is_array(leaf)]


def identity(*args: Any, **kwargs: Any) -> Any:
    return args, kwargs


def array_leaves(*args: Any, **kwargs: Any) -> Any:
    """Every array leaf, in leaf order (so chunks can be concatenated: every one is merged)."""
    return _array_leaves((args, kwargs))


def numpy_leaves(*args: Any, **kwargs: Any) -> Any:
    """Every array leaf, ``jax.Array`` ones (but PRNG keys) as NumPy (SPEC BA-13.8: NumPy out)."""
    return [
        np.asarray(leaf) if isinstance(leaf, jax.Array) and not is_key(leaf) else leaf
        for leaf in _array_leaves((args, kwargs))
    ]


WIDE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "identity": identity,
    "array_leaves": array_leaves,
    "numpy_leaves": numpy_leaves,
}

_STRUCTURED = np.dtype([("a", np.int64), ("b", np.float64)])


def _numpy_leaf(kind: str, shape: tuple[int, ...], rng: np.random.Generator, dtype: str) -> Any:
    """A NumPy leaf of ``kind``: values that a 32-bit or lossy copy would not keep."""
    size = math.prod(shape)
    ints = rng.integers(0, 2**20, size=size)
    if kind == "numpy":
        np_dtype = getattr(ml_dtypes, dtype) if hasattr(ml_dtypes, dtype) else np.dtype(dtype)
        if dtype == "complex64":
            return ((ints + 1j * ints[::-1]) / 4).astype(np.complex64).reshape(shape)
        if dtype == "int4":
            return (ints % 16 - 8).astype(np_dtype).reshape(shape)
        return (ints % 200 - 100).astype(np_dtype).reshape(shape)
    if kind == "numpy 64-bit":
        which = rng.integers(0, 4)
        if which == 0:
            return (ints.astype(np.int64) + 2**40).reshape(shape)
        if which == 1:
            return (ints.astype(np.uint64) + np.uint64(2**63)).reshape(shape)
        if which == 2:
            return (ints / 3 + 2**30).reshape(shape)
        return (ints / 3 + 1j * (ints + 2**40)).reshape(shape)
    if kind == "numpy masked":
        return np.ma.masked_array((ints / 4).reshape(shape), mask=(ints % 3 == 0).reshape(shape))
    if kind == "numpy str":
        return np.array([f"r{v}" for v in ints], dtype=str).reshape(shape)
    if kind == "numpy bytes":
        return np.array([f"b{v}".encode() for v in ints], dtype=bytes).reshape(shape)
    if kind == "numpy object":
        objects = np.empty(size, dtype=object)
        objects[:] = [2**70 + int(v) for v in ints]  # Python ints wider than any dtype
        return objects.reshape(shape)
    if kind == "numpy structured":
        return np.array([(int(v) + 2**40, v / 3) for v in ints], dtype=_STRUCTURED).reshape(shape)
    if kind == "numpy datetime64":
        return ints.astype("datetime64[s]").reshape(shape)
    if kind == "numpy float0":
        return np.zeros(shape, dtype=jax.dtypes.float0)
    raise ValueError(kind)


def _jax_leaf(kind: str, shape: tuple[int, ...], rng: np.random.Generator, dtype: str) -> Any:
    """A ``jax.Array`` leaf of ``kind``."""
    if kind == "jax":
        return jnp.asarray(_numpy_leaf("numpy", shape, rng, dtype))
    if kind == "jax weak-typed":  # as jnp.ones(...) * 1.5 is not; a Python scalar broadcast is
        return jax.lax.broadcast(float(rng.integers(0, 100)) / 4, shape)
    if kind == "jax x64":  # made inside enable_x64, used outside it: 64 bits (issue 11, finding 6)
        with jax.enable_x64(True):
            return jnp.asarray(_numpy_leaf("numpy 64-bit", shape, rng, dtype))
    if kind == "jax PRNG key":
        data = rng.integers(0, 2**32, size=(*shape, 2), dtype=np.uint32)
        return jax.random.wrap_key_data(jnp.asarray(data))
    if kind == "jax on another device":
        return jax.device_put(jnp.asarray(_numpy_leaf("numpy", shape, rng, dtype)), jax.devices()[-1])
    raise ValueError(kind)


class _Drawer:
    """Builds one call's leaves and containers, recording the classes it uses."""

    def __init__(self, draw: st.DrawFn, leading: tuple[int, ...], rng: np.random.Generator) -> None:
        self.draw, self.leading, self.rng = draw, leading, rng
        self.classes: set[str] = set()
        self.kinds = [k for k in LEAF_KINDS if k != "jax on another device" or jax.device_count() > 1]
        self.containers = list(CONTAINERS)
        # A few kinds per call. One call in two is lean (one NumPy kind that JAX can hold as a
        # tracer or nearly, one jax kind, chunked): an exotic leaf steers a call off the paths that
        # turn NumPy leaves into tracers, so the kitchen sink alone would rarely reach them.
        numpy_kinds = [k for k in self.kinds if k.startswith("numpy")]
        jax_kinds = [k for k in self.kinds if k.startswith("jax")]
        self.lean = draw(st.booleans())
        if self.lean:
            self.palette = [
                draw(st.sampled_from(["numpy", "numpy 64-bit", "numpy masked"])),
                draw(st.sampled_from(jax_kinds)),
            ]
        else:
            self.palette = [
                *draw(st.lists(st.sampled_from(numpy_kinds[1:]), max_size=3, unique=True)),
                *draw(st.lists(st.sampled_from(jax_kinds), max_size=2, unique=True)),
                *(["python"] if draw(st.booleans()) else []),
            ] or ["numpy"]

    def shape(self) -> tuple[int, ...]:
        trailing = tuple(self.draw(st.lists(st.sampled_from([1, 2, 3, 0]), max_size=2)))
        if 0 in trailing and math.prod(self.leading) > 0:
            self.classes.add("shape: zero-size rows")
        return self.leading + trailing

    def leaf(self, kind: str | None = None) -> Any:
        if kind is None:
            kind = self.draw(st.sampled_from(self.palette))
        self.classes.add(f"leaf: {kind}")
        if kind == "python":
            return self.draw(
                st.one_of(st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=2), st.none(), st.booleans())
            )
        dtype = self.draw(st.sampled_from(NUMERIC))
        if kind.startswith("numpy"):
            return _numpy_leaf(kind, self.shape(), self.rng, dtype)
        return _jax_leaf(kind, self.shape(), self.rng, dtype)

    def tree(self, depth: int = 0, deep: bool = True) -> Any:
        """A leaf or a container of trees; ``deep``: a list nested 600 deep may be drawn (not inside
        another: SPEC BA-1.5 promises 500 levels, and JAX's own walk stops near 1000)."""
        if depth >= 2 or self.draw(st.integers(0, 2)) == 0:
            return self.leaf()
        kind = self.draw(st.sampled_from([c for c in self.containers if deep or c != "nested 600 deep"]))
        self.classes.add(f"container: {kind}")
        inner = deep and kind != "nested 600 deep"
        children = [self.tree(depth + 1, inner) for _ in range(self.draw(st.integers(1, 3)))]
        if kind == "nested 600 deep":
            tree: Any = children
            for _ in range(DEEP):
                tree = [tree]
            return tree
        if kind == "list":
            return children
        if kind == "tuple":
            return tuple(children)
        if kind == "namedtuple":
            return Point(children[0], children[-1])
        keys = ["zeta", "b", "a"][: len(children)]  # insertion order is not sorted order
        if kind == "dict":
            return dict(zip(keys, children, strict=True))
        if kind == "OrderedDict":
            return collections.OrderedDict(zip(keys, children, strict=True))
        if kind == "defaultdict":
            return collections.defaultdict(list, zip(keys, children, strict=True))
        cls = NODE_TYPES[[f"node {c.__name__}" for c in NODE_TYPES].index(kind)]
        return cls(children[0], children[-1])


@st.composite
def wide_calls(draw: st.DrawFn) -> WideCall:
    """Calls across the whole input space of issue 11; see the module docstring."""
    leading = tuple(draw(st.lists(st.sampled_from([2, 3, 1, 0, 2]), min_size=1, max_size=3)))
    num_dims = len(leading)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    drawer = _Drawer(draw, leading, rng)
    args = [drawer.tree() for _ in range(draw(st.integers(0, 3)))]
    names = draw(st.lists(st.sampled_from(KEYWORDS), max_size=3, unique=True))
    kwargs = {name: drawer.tree() for name in names}
    args += [drawer.leaf(kind) for kind in drawer.palette if f"leaf: {kind}" not in drawer.classes]
    drawer.classes.update(f"keyword: {name}" for name in names)
    if not any(is_array(leaf) for leaf in jax.tree_util.tree_leaves((args, kwargs))):
        kwargs["batch"] = _numpy_leaf("numpy", drawer.shape(), rng, "int32")  # one mergeable leaf
    leaves = jax.tree_util.tree_leaves((args, kwargs))
    if any(isinstance(x, jax.Array) for x in leaves) and any(isinstance(x, np.ndarray) for x in leaves):
        drawer.classes.add("call: NumPy and jax.Array leaves mixed")
    if math.prod(leading) == 0:
        drawer.classes.add("shape: no rows (N = 0)")

    error = draw(st.sampled_from(ERRORS)) if draw(st.integers(0, 3)) == 0 else None
    row = None
    if error is not None:
        drawer.classes.add(f"error: {error}")
        row = error.split()[0]
        if row == "E26":  # a matrix is 2-D: mergeable when num_dims <= 2
            shape = leading if num_dims == 2 else leading + (2,) if num_dims == 1 else None
            if shape is None:
                leading, num_dims, shape = leading[:2], 2, leading[:2]  # the rest is trailing
            bad: Any = matrix(np.arange(math.prod(shape)).reshape(shape))
        elif row == "E27":
            bad = {1: drawer.leaf(), "a": drawer.leaf()}
        else:
            bad = jnp.zeros(leading + (2,))
            bad.delete()
        kwargs["bad"] = bad
    size = math.prod(leading)
    chunking = (
        "several chunks" if drawer.lean else draw(st.sampled_from(["several chunks", "none", "one chunk"]))
    )
    if chunking == "none":
        chunk_size = None
    elif chunking == "several chunks" and size > 1:
        chunk_size = draw(st.integers(1, size - 1))
    else:
        chunk_size = draw(st.integers(max(size, 1), size + 3))
    if chunk_size is None:
        drawer.classes.add("option: no chunk_size")
    else:
        drawer.classes.add("option: chunk_size")
        if math.prod(leading) > chunk_size:
            drawer.classes.add("option: chunk_size with several chunks")
    functions = FUNCTIONS if chunk_size is None else FUNCTIONS[1:]
    function = draw(st.sampled_from(functions))
    drawer.classes.add(f"f: {function}")
    return WideCall(function, tuple(args), kwargs, num_dims, chunk_size, frozenset(drawer.classes), row)


def mismatch(actual: Any, expected: Any) -> str | None:
    """How ``actual`` differs from ``expected``, or None: structure (JAX's treedef), then per leaf
    the type, dtype, shape, weak type, devices, mask and bytes (key data for PRNG keys)."""
    got, got_def = jax.tree_util.tree_flatten_with_path(actual)
    want: list[Any]
    want_def: Any  # jax's stubs type it PyTreeDef | None
    want, want_def = jax.tree_util.tree_flatten_with_path(expected)
    if got_def != want_def:
        return f"structure {got_def} != {want_def}"
    for (path, a), (_, e) in zip(got, want, strict=True):
        where = "output" + jax.tree_util.keystr(path)
        problem = _leaf_mismatch(a, e)
        if problem is not None:
            return f"{where}: {problem}"
    return None


def _leaf_mismatch(a: Any, e: Any) -> str | None:
    if isinstance(e, jax.Array):
        if not isinstance(a, jax.Array):
            return f"{type(a).__name__}, expected a jax.Array"
        got = (a.dtype, a.shape, getattr(a, "weak_type", False))  # a PRNG key array has no weak_type
        want = (e.dtype, e.shape, getattr(e, "weak_type", False))
        if got != want:
            return f"dtype, shape, weak type {got}, expected {want}"
        if a.devices() != e.devices():
            return f"on {a.devices()}, expected {e.devices()}"
        if is_key(e):
            a, e = jax.random.key_data(a), jax.random.key_data(e)
        if np.asarray(a).tobytes() != np.asarray(e).tobytes():
            return f"values differ:\n{a!r}\n{e!r}"
        return None
    if isinstance(e, (np.ndarray, np.generic)):
        if type(a) is not type(e):
            return f"{type(a).__name__}, expected {type(e).__name__}"
        if (a.dtype, a.shape) != (e.dtype, e.shape):
            return f"{a.dtype}{a.shape}, expected {e.dtype}{e.shape}"
        if isinstance(e, np.ma.MaskedArray):
            if not np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(e)):
                return "masks differ"
            a, e = a.data, e.data
        if e.dtype == object:
            return None if np.asarray(a).tolist() == np.asarray(e).tolist() else "values differ"
        same = np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(e).tobytes()
        return None if same else f"values differ:\n{a!r}\n{e!r}"
    if type(a) is not type(e) or not (a is e or a == e):
        return f"{a!r}, expected {e!r}"
    return None


# ---- the kit's calls: every option, functions that show row order and chunks -------------------

SIDES = (2, 3, 2, 3, 1, 0)
"""Sizes of the leading dims of a kit call: mostly 2 or 3, so that a wrong row order shows."""

KIT_FUNCTIONS = ("identity", "rows", "rolled", "numpy_rows", "closure")
"""The ``f`` of a kit call (:func:`kit_function`). ``rolled`` moves every row to the one before it
(a row-mixing permutation that no transpose of the leading dims undoes) and tags each output row
with the index of the call of ``f`` that made it, that call's number of rows and the row's position
among all rows ``f`` saw (so a chunk's rows, size and order show); ``closure`` also returns a value
read from a cell that the check changes between two calls of one BatchApply object."""

MODES = ("plain", "chunk", "order", "axes", "closure")
"""What a kit call exercises: no option, ``chunk_size``, ``row_order``, ``in_axes``/``out_axes``, and an
``f`` whose closure changes between calls."""


@dataclasses.dataclass
class FunctionState:
    """What one ``f`` of :func:`kit_function` saw: its calls and rows, and the closure's cell."""

    calls: int = 0
    rows: int = 0
    scale: float = 1.0


def _rows_of(args: Any, kwargs: Any) -> list[Any]:
    """The leaves of the merged rows: array leaves whose leading size is that of ``batch``."""
    m = kwargs["batch"].shape[0]
    return [x for x in _array_leaves((args, kwargs)) if getattr(x, "ndim", 0) >= 1 and x.shape[0] == m]


def _roll(x: Any) -> Any:
    m = x.shape[0]
    return x if m < 2 else x[np.r_[1:m, 0]]


def kit_function(name: str) -> tuple[Callable[..., Any], FunctionState]:
    """A fresh ``f`` named ``name`` (a key of :data:`KIT_FUNCTIONS` or :data:`WIDE_FUNCTIONS`) and
    its state: each BatchApply under test gets its own, so that the counters start at 0."""
    state = FunctionState()
    if name in WIDE_FUNCTIONS:
        plain = WIDE_FUNCTIONS[name]

        def counted(*args: Any, **kwargs: Any) -> Any:
            state.calls += 1
            return plain(*args, **kwargs)

        return counted, state

    def f(*args: Any, **kwargs: Any) -> Any:
        rows = _rows_of(args, kwargs)
        m = kwargs["batch"].shape[0]
        tags = {
            "call": np.full((m,), state.calls, np.int32),
            "size": np.full((m,), m, np.int32),
            "position": np.arange(state.rows, state.rows + m, dtype=np.int32),
        }
        state.calls += 1
        state.rows += m
        if name == "rows":
            return rows
        if name == "numpy_rows":
            return [np.asarray(x) if isinstance(x, jax.Array) and not is_key(x) else x for x in rows]
        out: dict[str, Any] = {"rows": [_roll(x) for x in rows], "tags": tags}
        if name == "closure":
            out["scale"] = np.full((m,), state.scale, np.float32)
        return out

    return f, state


def _divisors(d: int) -> list[int]:
    return [s for s in range(1, d + 1) if d % s == 0] if d > 0 else [1]


def _chunk_size(draw: st.DrawFn, size: int, multiple: int, classes: set[str]) -> int:
    """A chunk size of each kind: dividing the rows, not dividing them, 1, at least the rows."""
    candidates = {
        "divides": [c for c in range(multiple, size, multiple) if size % c == 0],
        "does not divide": [c for c in range(multiple, size, multiple) if size % c != 0],
        "1": [1] if multiple == 1 else [],
        "at least N": [c for c in range(max(size, 1), max(size, 1) + 3) if c % multiple == 0] or [multiple],
    }
    kind = draw(st.sampled_from([k for k, v in candidates.items() if v]))
    classes.add(f"chunk_size: {kind}")
    return draw(st.sampled_from(candidates[kind]))


def _sharded(leaf: Any, leading: tuple[int, ...]) -> Any:
    """``leaf`` as a jax.Array split over 2 devices along its first leading dim of even size (Auto
    axes), or None when there is none."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    dims = [i for i, d in enumerate(leading) if d % 2 == 0 and d > 0]
    if not dims or jax.device_count() < 2:
        return None
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("d",))
    spec = P(*([None] * dims[0] + ["d"]))
    if not isinstance(leaf, jax.Array) and not (type(leaf) is np.ndarray and leaf.dtype.kind in "biufc"):
        return None  # JAX cannot hold it as it is
    try:
        return jax.device_put(leaf, NamedSharding(mesh, spec))
    except (TypeError, ValueError):  # a 64-bit or masked NumPy leaf
        return None


def _axes_entry(draw: st.DrawFn, arg: Any) -> Any:
    """0, None, or for a dict/list/tuple argument a container of 0 and None entries."""
    choice = draw(st.sampled_from(["0", "None", "container"]))
    if choice == "0":
        return 0
    if choice == "None" or type(arg) not in (dict, list, tuple):
        return None
    if type(arg) is dict:
        return {k: draw(st.sampled_from([0, None])) for k in arg}
    return type(arg)(draw(st.sampled_from([0, None])) for _ in arg)


@st.composite
def kit_calls(draw: st.DrawFn, mode: str = "plain", chunking: bool = True) -> WideCall:
    """Calls of the kit's differential checks (:data:`MODES`): ``num_dims`` 1 to 4 with leading dims
    mostly 2 or 3, the leaves and containers of :func:`wide_calls`, a merged keyword leaf ``batch``
    that ``f`` reads its number of rows from, and the options of ``mode`` (``chunking=False``: the
    closure mode draws no ``chunk_size``, for a target that does not take it)."""
    num_dims = draw(st.integers(1, 4))
    leading = tuple(draw(st.lists(st.sampled_from(SIDES), min_size=num_dims, max_size=num_dims)))
    if math.prod(leading) > 36:  # at most 36 rows: the reference copies row by row
        leading = tuple(min(d, 2) for d in leading)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    drawer = _Drawer(draw, leading, rng)
    drawer.classes.add(f"num_dims: {num_dims}")
    if draw(st.sampled_from(["mixed", "jax only", "mixed"])) == "jax only":  # an all-jax fast path
        jax_kinds = [k for k in drawer.kinds if k.startswith("jax")]
        drawer.palette = draw(st.lists(st.sampled_from(jax_kinds), min_size=1, max_size=2, unique=True))
        drawer.classes.add("call: jax.Array leaves only")
    args = [drawer.tree() for _ in range(draw(st.integers(0, 2)))]
    names = draw(st.lists(st.sampled_from(KEYWORDS), max_size=2, unique=True))
    kwargs = {name: drawer.tree() for name in names}
    arrays = [k for k in drawer.palette if k != "python"] or ["numpy"]
    kwargs["batch"] = drawer.leaf(draw(st.sampled_from(arrays)))
    drawer.classes.update(f"keyword: {name}" for name in names)
    size = math.prod(leading)
    if size == 0:
        drawer.classes.add("shape: no rows (N = 0)")
    if not any(is_array(x) for x in jax.tree_util.tree_leaves(args)):
        drawer.classes.add("call: array leaves in keywords only")
    options: dict[str, Any] = {}
    # ``rolled`` first (hypothesis draws the first element most) and most: only it shows the order.
    functions = ["rolled", "rolled", "identity", "rows"]
    if mode == "chunk":
        options["chunk_size"] = _chunk_size(draw, size, 1, drawer.classes)
        functions = ["rolled", "rolled", "rows", "numpy_rows"]
    elif mode == "order":
        functions = ["rolled"]
        if jax.device_count() >= 2 and draw(st.booleans()):
            sharded = _sharded(kwargs["batch"], leading)
            if sharded is not None:
                kwargs["batch"] = sharded
                drawer.classes.add("row_order: shard_major on a sharded input")
                options["row_order"] = "shard_major"
                # An unsharded leaf first: the first leaf with a sharded leading dim decides (BA-14.4).
                args.insert(0, _numpy_leaf("numpy", leading + (2,), rng, "int32"))
        if "row_order" not in options:
            options["row_order"] = tuple(draw(st.sampled_from(_divisors(d))) for d in leading)
            drawer.classes.add("row_order: shard counts")
        if draw(st.booleans()):
            counts = options["row_order"]
            shards = (
                math.prod(counts)
                if counts != "shard_major"
                else math.prod(
                    d // s if s else 1
                    for d, s in zip(leading, kwargs["batch"].sharding.shard_shape(leading), strict=False)
                )
            )
            options["chunk_size"] = _chunk_size(draw, size, shards, drawer.classes)
    elif mode == "axes":
        functions = ["rolled", "rows"]
        form = draw(st.sampled_from(["tuple", "list", "None", "0"]))
        drawer.classes.add(f"in_axes: {form}")
        if form in ("tuple", "list"):
            entries = [_axes_entry(draw, arg) for arg in args]
            options["in_axes"] = tuple(entries) if form == "tuple" else entries
        elif form == "None":
            options["in_axes"] = None
        out = draw(st.sampled_from(["0", "None", "rows only", "per tag"]))
        drawer.classes.add(f"out_axes: {out}")
        options["out_axes"] = {
            "0": 0,
            "None": None,
            "rows only": {"rows": 0, "tags": None},
            "per tag": {"rows": 0, "tags": {"call": None, "size": 0, "position": 0}},
        }[out]
        if out != "0":
            functions = ["rolled"]
    elif mode == "closure":
        functions = ["closure"]
        if chunking and draw(st.booleans()):
            options["chunk_size"] = _chunk_size(draw, size, 1, drawer.classes)
    function = draw(st.sampled_from(functions))
    drawer.classes.add(f"f: {function}")
    return WideCall(
        function,
        tuple(args),
        kwargs,
        num_dims,
        options.get("chunk_size"),
        frozenset(drawer.classes),
        None,
        options.get("in_axes", 0),
        options.get("out_axes", 0),
        options.get("row_order", "C"),
    )
