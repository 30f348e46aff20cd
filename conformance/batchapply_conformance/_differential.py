"""The kit's differential checks: the target against the reference on the whole input space.

One engine for the CLI and the project's own tests: the calls come from
:func:`batchapply_conformance.input_space.kit_calls` (leaves of every kind, NumPy and
``jax.Array`` mixed, bfloat16/float8/int4/x64/weak types/PRNG keys/committed devices,
custom nodes and keyword names, ``num_dims`` 1 to 4 with leading dims mostly 2 or 3,
``chunk_size`` of every kind, ``row_order`` counts and ``"shard_major"`` on sharded
inputs, ``in_axes``/``out_axes``), with functions that show the row order, the chunks
(which rows, how many, in which order) and how often ``f`` ran, and an ``f`` whose
closure changes between two calls of one BatchApply object.
``tests/property/test_input_space.py`` runs :func:`problems` on ``batchapply`` itself, so a
check cannot be stronger in the project's tests than in the kit.

A failing property is charged to the clause that states it. Where the call used an option,
the call is rerun without it: a fault that goes away is the option's (its section's clauses),
one that stays is the base clause's.
"""

from __future__ import annotations

import collections
import functools
import reprlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from batchapply_conformance import _sides as _by_side
from batchapply_conformance._checks import Check, Outcome, Outcomes, Target, describe_error

Problem = tuple[tuple[str, ...], str, dict[str, Any]]
"""The clauses it is charged to, what differs, the example (JSON-able)."""

BASE: dict[str, tuple[str, ...]] = {
    "structure": ("BA-7.1",),
    "array_type": ("BA-5.3", "BA-7.2"),
    "dtype": ("BA-5.2", "BA-7.2"),
    "jax": ("BA-5.6",),
    "jax dtype": ("BA-5.2", "BA-5.6", "BA-7.2"),
    "mask": ("BA-5.7",),
    "values": ("BA-5.1", "BA-7.2"),
    "rank0": ("BA-7.3",),
    "leaf": ("BA-1.2", "BA-7.4"),
    "mutation": ("BA-5.5",),
    "calls": ("BA-6.1",),
    "closure": ("BA-6.1",),
    "raised in f": ("BA-5.1",),
}
"""The clause that states each property, on a call without options."""

CHUNKED: dict[str, tuple[str, ...]] = {
    "structure": ("BA-13.5",),
    "array_type": ("BA-13.8",),
    "dtype": ("BA-13.8",),
    "jax": ("BA-5.6", "BA-13.8"),
    "jax dtype": ("BA-5.6", "BA-13.8"),
    "mask": ("BA-13.8",),
    "values": ("BA-13.3", "BA-13.5"),
    "rank0": ("BA-13.6",),
    "tag call": ("BA-13.4",),
    "tag size": ("BA-13.3",),
    "tag position": ("BA-13.3",),
    "calls": ("BA-13.4",),
    "closure": ("BA-13.4",),
    "raised": ("BA-13.3",),
}
"""A property that fails only with ``chunk_size`` (``N > chunk_size``; otherwise BA-13.2)."""

OPTION_CLAUSES: dict[str, tuple[str, ...]] = {
    "row_order": ("BA-14.2",),
    "row_order shard_major": ("BA-14.2", "BA-14.4"),
    "row_order chunked": ("BA-14.9",),
    "in_axes None": ("BA-4.2",),
    "in_axes tuple": ("BA-4.3", "BA-4.4"),
    "in_axes list": ("BA-2.5", "BA-4.3"),
    "out_axes": ("BA-7.2", "BA-7.4"),
}
"""A property that fails only with this option set: the clauses of the option's section."""

CLASS_CLAUSES: dict[str, tuple[str, ...]] = {
    "keyword: self": ("BA-6.2",),
    "keyword: f": ("BA-6.2",),
    "keyword: args": ("BA-6.2",),
    "keyword: kwargs": ("BA-6.2",),
    "keyword: num_dims": ("BA-6.2",),
    "keyword: chunk_size": ("BA-6.2",),
    "container: nested 600 deep": ("BA-1.5",),
    "container: OrderedDict": ("BA-1.3",),
    "container: defaultdict": ("BA-1.3",),
    "container: namedtuple": ("BA-1.3",),
    "leaf: numpy masked": ("BA-5.7",),
    "leaf: jax weak-typed": ("BA-5.6",),
    "leaf: jax x64": ("BA-5.6",),
    "leaf: jax PRNG key": ("BA-5.6",),
    "leaf: jax on another device": ("BA-5.6",),
    "leaf: python": ("BA-1.2",),
    "shape: zero-size rows": ("BA-1.6",),
    "shape: no rows (N = 0)": ("BA-5.4",),
    "call: array leaves in keywords only": ("BA-4.5",),
}
"""Where a call that the reference answers makes the target raise: the clauses of what the call holds."""

CHECKS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "plain": (
        (
            "BA-1.2",
            "BA-1.3",
            "BA-1.5",
            "BA-1.6",
            "BA-5.1",
            "BA-5.2",
            "BA-5.3",
            "BA-5.4",
            "BA-5.5",
            "BA-5.6",
            "BA-5.7",
            "BA-6.1",
            "BA-6.2",
            "BA-7.1",
            "BA-7.2",
            "BA-7.4",
        ),
        None,
    ),
    "chunk": (("BA-13.2", "BA-13.3", "BA-13.4", "BA-13.5", "BA-13.8"), "chunk_size"),
    "order": (("BA-14.2", "BA-14.3", "BA-14.9"), "row_order"),
    "axes": (("BA-4.1", "BA-4.2", "BA-4.3", "BA-4.4", "BA-4.5", "BA-7.2", "BA-7.4"), "in_axes+out_axes"),
    "closure": (("BA-6.1", "BA-13.4"), None),
}
"""Per mode of :func:`input_space.kit_calls`: the clauses its check cites, and the option it needs."""

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxother, _SHORT.maxstring, _SHORT.maxlist = 4, 200, 60, 8


def _make(factory: Callable[..., Any], call: Any) -> tuple[Any, Any]:
    from batchapply_conformance import input_space

    f, state = input_space.kit_function(call.function)
    return factory(f, call.num_dims, **call.options()), state


def _stack_depth() -> int:
    frame: Any = sys._getframe()
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


DEFAULT_RECURSION_LIMIT = 1000
"""Python's default: a user's call has about this many frames free (hypothesis raises the limit
while it runs a test, which would hide a recursive walk of a deeply nested input, BA-1.5)."""


def outcome(factory: Callable[..., Any], call: Any) -> tuple[str, Any, int]:
    """("ok", output, calls of f) or ("error", exception, calls). A closure call returns the
    outputs of two calls of one BatchApply object, the closure's cell changed in between. The call
    runs with Python's default recursion limit above the caller's frames."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + DEFAULT_RECURSION_LIMIT)
    try:
        return _outcome(factory, call)
    finally:
        sys.setrecursionlimit(limit)


def _outcome(factory: Callable[..., Any], call: Any) -> tuple[str, Any, int]:
    try:
        apply, state = _make(factory, call)
        if call.function != "closure":
            return "ok", apply(*call.args, **call.kwargs), state.calls
        saved = _saved_arrays(call)
        out = apply(*call.args, **call.kwargs)
        for x, before in saved:  # a first call that changes its inputs (BA-5.5's) leaves the second's
            x[...] = before
        state.scale = 2.0
        return "ok", [out, apply(*call.args, **call.kwargs)], state.calls
    except Exception as e:
        return "error", e, -1


def _leaf_difference(a: Any, e: Any) -> tuple[str, str] | None:
    """The kind of the first property in which output leaf ``a`` differs from the reference's ``e``."""
    import jax
    import numpy as np

    from batchapply_conformance.input_space import is_key

    if getattr(e, "shape", None) == () and getattr(a, "shape", ()) != ():
        return "rank0", f"shape {a.shape}, expected {e.shape}"
    if isinstance(e, jax.Array):
        if not isinstance(a, jax.Array):
            return "array_type", f"a {type(a).__name__}, expected a jax.Array"
        if a.dtype != e.dtype:  # BA-5.6 keeps a jax.Array's dtype, 64 bits and keys included
            return "jax dtype", f"dtype {a.dtype}, expected {e.dtype}"
        if a.shape != e.shape:
            return _shape_kind(e), f"shape {a.shape}, expected {e.shape}"
        if getattr(a, "weak_type", False) != getattr(e, "weak_type", False):
            return "jax", f"weak_type {getattr(a, 'weak_type', False)}, expected {e.weak_type}"
        if a.devices() != e.devices():
            return "jax", f"on {a.devices()}, expected {e.devices()}"
        if is_key(e):
            a, e = jax.random.key_data(a), jax.random.key_data(e)
        if np.asarray(a).tobytes() != np.asarray(e).tobytes():
            return (
                "values",
                f"values differ: {_SHORT.repr(np.asarray(a))}, expected {_SHORT.repr(np.asarray(e))}",
            )
        return None
    if isinstance(e, (np.ndarray, np.generic)):
        if type(a) is not type(e):
            masked = isinstance(e, np.ma.MaskedArray) or isinstance(a, np.ma.MaskedArray)
            kind = "mask" if masked else "array_type"
            return kind, f"a {type(a).__name__}, expected a {type(e).__name__}"
        if a.dtype != e.dtype:
            return "dtype", f"dtype {a.dtype}, expected {e.dtype}"
        if a.shape != e.shape:
            return _shape_kind(e), f"shape {a.shape}, expected {e.shape}"
        masks = (np.ma.getmaskarray(a), np.ma.getmaskarray(e)) if isinstance(e, np.ma.MaskedArray) else None
        if masks is not None:
            a, e = a.data, e.data
        if e.dtype == object:
            same = np.asarray(a).tolist() == np.asarray(e).tolist()
        else:
            same = np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(e).tobytes()
        if not same:
            return "values", f"values differ: {_SHORT.repr(a)}, expected {_SHORT.repr(e)}"
        if masks is not None and not np.array_equal(*masks):
            return "mask", "masks differ (the data agree)"
        return None
    if a is e or (type(a) is type(e) and a == e):
        return None
    return "leaf", f"{_SHORT.repr(a)}, expected {_SHORT.repr(e)}"


def _shape_kind(expected: Any) -> str:
    """``rank0`` where a rank-0 array was expected (split or broadcast, where BA-7.3 wants E10 or
    the array as it is), else ``values``."""
    return "rank0" if expected.shape == () else "values"


def differences(expected: Any, got: Any, closure: bool = False) -> list[tuple[str, str, str]]:
    """``(kind, path, what)`` for the first leaf that differs in each kind (``structure`` alone when
    the pytree structures differ). ``closure``: both are the outputs of two calls, and a second call
    that alone differs is a ``closure`` problem (a stale ``f``)."""
    import jax

    if closure and isinstance(got, list) and len(got) == 2:
        first = differences(expected[0], got[0])
        if first:
            return first
        return [("closure", path, what) for _, path, what in differences(expected[1], got[1])][:1]

    want: list[Any]
    have: list[Any]
    want_def: Any
    have_def: Any
    want, want_def = jax.tree_util.tree_flatten_with_path(expected)
    have, have_def = jax.tree_util.tree_flatten_with_path(got)
    if want_def != have_def:
        return [
            ("structure", "output", f"structure {_SHORT.repr(have_def)}, expected {_SHORT.repr(want_def)}")
        ]
    found: dict[str, tuple[str, str, str]] = {}
    for (path, e), (_, a) in zip(want, have, strict=True):
        where = "output" + jax.tree_util.keystr(path)
        problem = _leaf_difference(a, e)
        if problem is not None:
            kind = problem[0]
            if kind == "values" and "['tags']" in where:  # a chunk's rows, size or order show
                kind = "tag " + where.split("['tags']['", 1)[1].split("'", 1)[0]
            found.setdefault(kind, (kind, where, f"{where}: {problem[1]}"))
    return list(found.values())


def _snapshot(call: Any) -> tuple[Any, list[Any]]:
    import jax
    import numpy as np

    leaves, treedef = jax.tree_util.tree_flatten((call.args, call.kwargs))
    return treedef, [x.copy() if isinstance(x, np.ndarray) else x for x in leaves]


def _saved_arrays(call: Any) -> list[tuple[Any, Any]]:
    """Each writeable plain NumPy array of ``call``'s inputs and a copy of it, to put back after a
    call (the containers are left as drawn); none where jax cannot flatten the inputs."""
    import jax
    import numpy as np

    try:
        leaves = jax.tree_util.tree_leaves((call.args, call.kwargs))
    except Exception:
        return []
    return [(x, x.copy()) for x in leaves if type(x) is np.ndarray and x.flags.writeable]


def _mutation(call: Any, before: tuple[Any, list[Any]]) -> tuple[str, str, str] | None:
    import jax
    import numpy as np

    leaves, treedef = jax.tree_util.tree_flatten((call.args, call.kwargs))
    if treedef != before[0]:
        return "mutation", "inputs", "the call changed the containers of its inputs"
    for x, old in zip(leaves, before[1], strict=True):
        if isinstance(old, np.ndarray) and (
            x.shape != old.shape or np.ascontiguousarray(x).tobytes() != np.ascontiguousarray(old).tobytes()
        ):
            return "mutation", "inputs", "the call changed an input array in place"
    return None


def _compare(target: Target, call: Any, want: Any, want_calls: int) -> list[tuple[str, str, str]]:
    before = _snapshot(call)
    kind, got, calls = outcome(target.factory, call)
    changed = _mutation(call, before)
    if kind == "error" and _raised_in_f(got):
        why = "raised in the kit's f, which reads its rows from the merged leaf batch (shape (N,) + F)"
        found = [("raised in f", "call", f"expected an output, got {describe_error(got)} ({why})")]
    elif kind == "error":
        found = [("raised", "call", f"expected an output, got {describe_error(got)}")]
    else:
        found = differences(want, got, closure=call.function == "closure")
        if calls != want_calls and not any(k.startswith("tag") or k == "closure" for k, _, _ in found):
            found.append(("calls", "f", f"f was called {calls} times, expected {want_calls}"))
    return found + ([changed] if changed else [])


def _raised_in_f(error: BaseException) -> bool:
    """Whether ``error`` came out of the kit's own ``f`` (:func:`input_space.kit_function`), which
    raises only when it was not given the merged rows: a merge fault (BA-5.1), whatever the call holds."""
    from batchapply_conformance import input_space

    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == input_space.__file__ and code.co_name in ("f", "counted"):
            return True
        tb = tb.tb_next
    return False


def _without(call: Any, options: tuple[str, ...]) -> Any:
    import dataclasses

    defaults = {"in_axes": 0, "out_axes": 0, "chunk_size": None, "row_order": "C"}
    return dataclasses.replace(call, **{o: defaults[o] for o in options})


def _option_keys(call: Any) -> list[str]:
    return list(call.options())


def _leading_of(call: Any) -> tuple[int, ...]:
    """The leading shape: of the keyword leaf ``batch`` of a kit call, else of the first array leaf
    with ``num_dims`` dims or more."""
    import jax

    from batchapply_conformance.input_space import is_array

    if "batch" in call.kwargs:
        return tuple(call.kwargs["batch"].shape[: call.num_dims])
    for x in jax.tree_util.tree_leaves((call.args, call.kwargs)):
        if is_array(x) and x.ndim >= call.num_dims:
            return tuple(x.shape[: call.num_dims])
    return ()


def _option_clauses(call: Any, option: str, kind: str) -> tuple[str, ...]:
    import math

    if option == "chunk_size":
        rows = math.prod(_leading_of(call))
        if rows <= call.chunk_size:
            return ("BA-13.2",)
        return CHUNKED.get(kind, ("BA-13.3",))
    if option == "row_order":
        if call.chunk_size is not None:
            return OPTION_CLAUSES["row_order chunked"]
        return OPTION_CLAUSES["row_order shard_major" if call.row_order == "shard_major" else "row_order"]
    if option == "in_axes":
        form = "None" if call.in_axes is None else "list" if isinstance(call.in_axes, list) else "tuple"
        return OPTION_CLAUSES[f"in_axes {form}"]
    return OPTION_CLAUSES["out_axes"]


def _children(node: Any) -> list[Any]:
    import jax

    return jax.tree_util.tree_leaves(node, is_leaf=lambda y: y is not node)


def _classes_of(tree: Any, leading: tuple[int, ...]) -> set[str]:
    """The :data:`CLASS_CLAUSES` classes that ``tree`` (one argument of a call) holds."""
    import collections

    import jax
    import numpy as np

    from batchapply_conformance.input_space import is_key

    found: set[str] = set()
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        x, depth = stack.pop()
        if type(x) is list and _chain(x)[0] > DEEP_CHAIN:  # and what the chain holds
            found.add("container: nested 600 deep")
            stack.append((_chain(x)[1], depth + 1))
            continue
        if depth > DEEP_CHAIN:
            found.add("container: nested 600 deep")
            continue
        if isinstance(x, np.ma.MaskedArray):
            found.add("leaf: numpy masked")
        elif isinstance(x, np.ndarray):
            if x.dtype.kind in "USOVMm" or x.dtype == jax.dtypes.float0:
                found.add("leaf: numpy non-numeric")
        elif isinstance(x, jax.Array):
            if is_key(x):
                found.add("leaf: jax PRNG key")
            elif getattr(x, "weak_type", False):
                found.add("leaf: jax weak-typed")
            elif x.dtype.itemsize == 8:
                found.add("leaf: jax x64")
            elif x.devices() != {jax.devices()[0]}:
                found.add("leaf: jax on another device")
        elif isinstance(x, (collections.OrderedDict, collections.defaultdict)):
            found.add(f"container: {type(x).__name__}")
            stack.extend((v, depth + 1) for v in x.values())
        elif isinstance(x, tuple) and hasattr(x, "_fields"):
            found.add("container: namedtuple")
            stack.extend((v, depth + 1) for v in x)
        elif isinstance(x, dict):
            stack.extend((v, depth + 1) for v in x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend((v, depth + 1) for v in x)
        elif x is None:
            found.add("container: None")
            continue
        elif not jax.tree_util.all_leaves([x]):
            children = _children(x)
            found.add("container: custom node")
            stack.extend((v, depth + 1) for v in children)
        else:
            found.add("leaf: python")
        shape = getattr(x, "shape", None)
        if shape is not None and len(shape) > len(leading) and 0 in shape[len(leading) :]:
            found.add("shape: zero-size rows")
    return found


CLASS_CLAUSES.update(
    {
        "leaf: numpy non-numeric": ("BA-1.1",),
        "container: custom node": ("BA-1.3",),
        "container: None": ("BA-1.3",),
    }
)


DEEP_CHAIN = 100
"""A chain of one-element lists longer than this is the class ``container: nested 600 deep``."""


def _chain(x: Any) -> tuple[int, Any]:
    """The length of the chain of one-element lists that starts at ``x``, and what it holds."""
    depth = 0
    while type(x) is list and len(x) == 1:
        x, depth = x[0], depth + 1
    return depth, x


def _container_class(x: Any) -> str | None:
    """The :data:`CLASS_CLAUSES` container class of ``x`` itself (None: a plain or no container)."""
    import collections

    import jax

    if x is None:
        return "container: None"  # SPEC BA-1.3: a container with no children
    if type(x) is list and _chain(x)[0] > DEEP_CHAIN:
        return "container: nested 600 deep"
    if isinstance(x, (collections.OrderedDict, collections.defaultdict)):
        return f"container: {type(x).__name__}"
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return "container: namedtuple"
    if type(x) in (dict, list, tuple) or jax.tree_util.all_leaves([x]):
        return None
    return "container: custom node"


def _only(tree: Any, keep: str) -> Any:
    """``tree`` with every container of a class other than ``keep`` made plain, its children
    kept: a deep chain becomes one list, a namedtuple or custom node a list, an OrderedDict or
    defaultdict a dict. The one aspect ``keep`` stays; every other is benign."""

    def plain(x: Any) -> Any:
        kind = _container_class(x)
        if kind == "container: None":
            return x if kind == keep else []
        if kind == "container: nested 600 deep":
            depth, inner = _chain(x)
            if kind != keep:
                return [plain(inner)]
            rebuilt = plain(inner)
            for _ in range(depth):
                rebuilt = [rebuilt]
            return rebuilt
        if isinstance(x, dict):
            children = {k: plain(v) for k, v in x.items()}
            if kind == "container: defaultdict" and kind == keep:
                return collections.defaultdict(x.default_factory, children)  # type: ignore[attr-defined]
            return type(x)(children) if kind == keep else children
        if isinstance(x, (list, tuple)) and kind != "container: custom node":
            items = [plain(v) for v in x]
            if kind == keep:
                return type(x)(*items)  # a namedtuple
            return items if type(x) is list or kind is not None else tuple(items)
        if kind == "container: custom node":
            import jax

            if kind == keep:
                return jax.tree_util.tree_map(plain, x, is_leaf=lambda y: y is not x)
            return [plain(v) for v in _children(x)]
        return x

    return plain(tree)  # a deep chain is walked by _chain: the recursion is as deep as the rest


def _container_culprits(value: Any, leading: tuple[int, ...], run: Callable[[Any], str]) -> set[str]:
    """The container classes of ``value`` that make the target raise one at a time: the call is
    rerun with each class alone kept (:func:`_only`), every other container plain. Where no class
    raises alone (they raise together), every container class of ``value``."""
    classes = sorted(
        c for c in _classes_of(value, leading) if c.startswith("container") and c in CLASS_CLAUSES
    )
    if len(classes) <= 1:
        return set(classes)
    alone = set()
    for kind in classes:
        try:
            variant = _only(value, kind)
        except Exception:
            return set(classes)
        if run(variant) != "ok":
            alone.add(kind)
    return alone or set(classes)


def _raise_culprits(target: Target, call: Any) -> set[str] | None:
    """The classes of the aspects of ``call`` without which the target no longer raises its error
    (None: none found), by taking each aspect away in turn (attribution rule 3 of
    docs/conformance.md). An aspect stays away when the target still raises the same error without
    it (:func:`_error_key`), so that a second fault in the same call does not hide the first:

    1. the arrays without elements (every ``0`` in a shape made ``1``: BA-5.4 or BA-1.6);
    2. array leaves in keywords only (the rows passed positionally too: BA-4.5);
    3. each keyword name of :data:`CLASS_CLAUSES` (renamed: BA-6.2);
    4. the kind of the leaf ``batch`` (a plain array of its library instead);
    5. each argument but ``batch`` (dropped); of one that is needed, its containers, one class at
       a time (:func:`_container_culprits`), or else a minimal set of its leaves, each of a
       special kind replaced by a plain array where that kind is not needed.
    """
    import dataclasses

    import jax

    first = outcome(target.factory, call)
    if first[0] != "error":
        return None
    error = _error_key(first[1])

    def fails(reduced: Any) -> bool:
        kind, got, _ = outcome(target.factory, reduced)
        return kind == "error" and _error_key(got) == error

    leading = _leading_of(call)
    found: set[str] = set()
    current = call
    empty = "shape: no rows (N = 0)" if 0 in leading else "shape: zero-size rows"

    def without(aspect: Any, classes: set[str]) -> None:
        nonlocal current
        if aspect is None or not classes:
            return
        if fails(aspect):
            current = aspect  # not needed: it stays away
        else:
            found.update(classes)

    without(_filled(current), {empty})
    keywords_only = "call: array leaves in keywords only"
    if keywords_only in call.classes and type(call.in_axes) is int and "batch" in call.kwargs:
        rows = _plain_like(call.kwargs["batch"])  # the same rows passed positionally too
        without(dataclasses.replace(current, args=(*current.args, rows)), {keywords_only})
    for name in list(call.kwargs):
        if name != "batch" and f"keyword: {name}" in CLASS_CLAUSES:
            renamed = {(f"renamed_{k}" if k == name else k): v for k, v in current.kwargs.items()}
            without(dataclasses.replace(current, kwargs=renamed), {f"keyword: {name}"})
    batch = current.kwargs.get("batch")
    kinds = {c for c in _classes_of(batch, leading) if c.startswith("leaf") and c in CLASS_CLAUSES}
    if kinds and hasattr(batch, "shape"):
        plain = dataclasses.replace(current, kwargs={**current.kwargs, "batch": _plain_like(batch)})
        without(plain, kinds)
    if current.in_axes not in (0, None):
        return found or None

    def blame(value: Any, with_arg: Callable[[Any, Any], Any], drop: Callable[[Any], Any]) -> None:
        nonlocal current

        def replace(v: Any) -> Any:
            return with_arg(v, current)

        dropped = drop(current)
        if fails(dropped):
            current = dropped  # not this argument
            return
        flat = jax.tree_util.tree_leaves(value)  # the same leaves without their containers
        if not fails(replace(flat)):
            run = lambda v: "error" if fails(replace(v)) else "ok"  # noqa: E731
            found.update(_container_culprits(value, leading, run))
            return
        blamed = list(flat)  # drop every leaf the target still raises without: a minimal failing set
        for leaf in flat[:32]:
            rest = [x for x in blamed if x is not leaf]
            if fails(replace(rest)):
                blamed = rest
        for i, leaf in enumerate(blamed):  # a needed array of a special kind: is its kind needed?
            if _classes_of(leaf, leading) & _SPECIAL_ARRAYS:
                plain = [*blamed[:i], _plain_like(leaf), *blamed[i + 1 :]]
                if fails(replace(plain)):
                    blamed = plain
        found.update(c for c in _classes_of(blamed, leading) if c.startswith("leaf"))

    for i in reversed(range(len(call.args))):  # from the last: dropping one moves those after it
        blame(current.args[i], functools.partial(_with_arg, i), functools.partial(_with_arg, i, DROP))
    for name in [n for n in current.kwargs if n != "batch"]:
        blame(
            current.kwargs[name],
            functools.partial(_with_kwarg, name),
            functools.partial(_with_kwarg, name, DROP),
        )
    return found or None


_SPECIAL_ARRAYS = {c for c in CLASS_CLAUSES if c.startswith("leaf") and c != "leaf: python"}
"""The array kinds of :data:`CLASS_CLAUSES` (a plain array of the same library and shape has none)."""


DROP = object()
"""For :func:`_with_arg` and :func:`_with_kwarg`: the argument is taken out of the call."""


def _with_arg(i: int, value: Any, call: Any) -> Any:
    import dataclasses

    middle = () if value is DROP else (value,)
    return dataclasses.replace(call, args=(*call.args[:i], *middle, *call.args[i + 1 :]))


def _with_kwarg(name: str, value: Any, call: Any) -> Any:
    import dataclasses

    kwargs = {k: v for k, v in call.kwargs.items() if k != name}
    return dataclasses.replace(call, kwargs=kwargs if value is DROP else {**call.kwargs, name: value})


def _error_key(error: BaseException) -> tuple[type, str]:
    """An exception's type and first line with its numbers blanked: the same fault raises the same
    key on a smaller call (shapes and sizes change), two faults of one type mostly do not."""
    import re

    lines = str(error).strip().splitlines()
    return type(error), re.sub(r"\d+", "#", lines[0] if lines else "")[:200]


def _plain_like(x: Any) -> Any:
    """A plain int32 array of ``x``'s shape, of its array library (a jax.Array on the default device)."""
    import numpy as np

    if type(x).__module__.startswith(("jax", "jaxlib")):
        import jax.numpy as jnp

        return jnp.zeros(x.shape, jnp.int32)
    return np.zeros(x.shape, np.int32)


def _filled_jax(x: Any, shape: tuple[int, ...], device: Any) -> Any:
    import jax
    import jax.numpy as jnp

    from batchapply_conformance.input_space import is_key

    if is_key(x):
        data = jax.random.key_data(x)
        zeros = jnp.zeros(shape + data.shape[x.ndim :], data.dtype)
        return jax.device_put(jax.random.wrap_key_data(zeros, impl=jax.random.key_impl(x)), device)
    return jax.device_put(jnp.zeros_like(x, shape=shape), device)  # (device=... drops weak_type)


def _filled(call: Any) -> Any:
    """``call`` with every array leaf without elements given 1 where its shape has 0 (same kind,
    dtype and device), or None when it has none or one cannot be rebuilt (a sharded leaf)."""
    import dataclasses

    import jax
    import numpy as np

    changed = [False]

    def fill(x: Any) -> Any:
        shape = getattr(x, "shape", None)
        if shape is None or 0 not in shape or not hasattr(x, "dtype"):
            return x
        new = tuple(d or 1 for d in shape)
        changed[0] = True
        if isinstance(x, np.ma.MaskedArray):
            return np.ma.masked_array(np.zeros(new, x.dtype), mask=np.zeros(new, bool))
        if isinstance(x, np.ndarray):
            return np.zeros(new, x.dtype)
        if isinstance(x, jax.Array):
            if len(x.devices()) != 1:
                raise ValueError("sharded")
            device = next(iter(x.devices()))
            with jax.enable_x64(True):  # a 64-bit leaf is made under enable_x64 and kept outside it
                return _filled_jax(x, new, device)
        raise ValueError("an array without elements of another kind")

    try:
        args, kwargs = jax.tree_util.tree_map(fill, (list(call.args), dict(call.kwargs)))
    except Exception:
        return None
    if not changed[0]:
        return None
    return dataclasses.replace(call, args=tuple(args), kwargs=kwargs)


def _base_clauses(call: Any, kind: str, culprits: set[str] | None = None) -> tuple[str, ...]:
    if kind == "raised":
        classes = culprits if culprits is not None else call.classes
        found = [c for name in sorted(classes) for c in CLASS_CLAUSES.get(name, ())]
        return tuple(dict.fromkeys(found)) or ("BA-5.1",)
    if kind.startswith("tag"):
        return BASE["calls"] if kind == "tag call" else BASE["values"]
    return BASE[kind]


RECURSION = "got RecursionError"
"""A raise that BA-1.5 names (``no RecursionError``) on a call holding a list nested 600 deep."""


def _example(call: Any, want: Any, detail: str) -> dict[str, Any]:
    return {
        "function": call.function,
        "num_dims": call.num_dims,
        "options": _SHORT.repr(call.options()),
        "args": _SHORT.repr(call.args),
        "kwargs": _SHORT.repr(call.kwargs),
        "expected": _SHORT.repr(want),
        "got": detail,
    }


def problems(target: Target, call: Any) -> list[Problem]:
    """How the target's answer to ``call`` differs from the reference's, each difference charged to
    its clauses; [] when they agree or the reference refuses the call (its error rows have checks)."""
    import batchapply_reference

    kind, want, want_calls = outcome(batchapply_reference.BatchApply, call)
    if kind == "error":
        return []
    found = _compare(target, call, want, want_calls)
    if not found:
        return []
    used = _option_keys(call)
    culprits: list[str] = []
    if used:
        plain = _without(call, tuple(used))
        p_kind, p_want, p_calls = outcome(batchapply_reference.BatchApply, plain)
        if p_kind == "ok" and not _compare(target, plain, p_want, p_calls):
            for option in used if len(used) > 1 else ():
                alone = _without(call, (option,))
                a_kind, a_want, a_calls = outcome(batchapply_reference.BatchApply, alone)
                if a_kind == "ok" and not _compare(target, alone, a_want, a_calls):
                    culprits.append(option)
            culprits = culprits or used
    charged: dict[tuple[str, ...], Problem] = {}
    probe = functools.cache(lambda: _sides(target, call))
    explained = _explained({kind for kind, _, _ in found}) if "chunk_size" in culprits else set()
    for kind, _, detail in found:
        if kind in explained:
            continue
        if culprits and kind != "mutation":
            clauses = tuple(dict.fromkeys(c for o in culprits for c in _option_clauses(call, o, kind)))
        elif kind == "raised" and RECURSION in detail and "container: nested 600 deep" in call.classes:
            clauses = CLASS_CLAUSES["container: nested 600 deep"]  # SPEC BA-1.5: no RecursionError
        else:
            classes = _raise_culprits(target, call) if kind == "raised" else None
            clauses = _base_clauses(call, kind, classes)
            if _by_side.probed(clauses):
                clauses, note = _by_side.recharge(clauses, probe())
                detail = f"{detail} ({note})" if note else detail
        charged.setdefault(clauses, (clauses, detail, _example(call, want, detail)))
    return list(charged.values())


def _explained(kinds: set[str]) -> set[str]:
    """The kinds of difference of a call that fails only with ``chunk_size`` that others found with
    them explain, and so are not charged themselves: values that differ where ``f`` was given
    other rows (its chunks' size or positions differ: BA-13.3), not also to the join (BA-13.5);
    positions (counted over the rows ``f`` saw before) that differ where the calls came in another
    order (BA-13.4), not also to which rows form a chunk."""
    explained = set()
    if kinds & {"tag size", "tag position"}:
        explained.add("values")
    if "tag call" in kinds and "tag size" not in kinds:
        explained.add("tag position")
    return explained


def _sides(target: Target, call: Any) -> _by_side.Found | None:
    """What ``f`` was given and how its outputs were split, the target against the reference
    (:func:`batchapply_conformance._sides.sides`)."""
    import batchapply_reference
    from batchapply_conformance import input_space

    def run(factory: Callable[..., Any]) -> Callable[[Callable[..., Any]], Any]:
        return lambda f: factory(f, call.num_dims, **call.options())(*call.args, **call.kwargs)

    return _by_side.sides(
        run(batchapply_reference.BatchApply),
        run(target.factory),
        lambda: input_space.kit_function(call.function)[0],
    )


def differential_check(mode: str, max_examples: int, seed: int | None) -> Callable[[Target], Outcomes]:
    """The check of ``mode`` (a key of :data:`CHECKS`) over ``max_examples`` kit calls."""
    from batchapply_conformance._properties import NEEDS_HYPOTHESIS, hypothesis_search

    _, option = CHECKS[mode]

    def run(target: Target) -> Outcomes:
        missing = [o for o in (option or "").split("+") if o and o not in target.options]
        if missing:
            return Outcome("na", f"the target does not take {' and '.join(missing)}")
        try:
            import jax  # noqa: F401
        except ImportError:
            return Outcome("na", "jax is not installed")
        try:
            from batchapply_conformance import input_space
        except ImportError as e:
            return Outcome("not_run", f"{NEEDS_HYPOTHESIS} ({e})")
        return hypothesis_search(
            input_space.kit_calls(mode, "chunk_size" in target.options),
            lambda t, c: list(problems(t, c)),
            max_examples,
            seed,
            target,
        )

    return run


SHARE = {"plain": 0.25, "chunk": 0.2, "order": 0.1, "axes": 0.12, "closure": 0.08}
"""Each mode's examples, as a share of the profile's examples per property: a call of the wide
input space costs about 0.2 s on 2 CPU cores (jax compiles most of its shapes), and the ci
profile's whole run must stay within 60 s."""


def differential_checks(*, max_examples: int, seed: int | None) -> Iterator[Check]:
    """One check per mode of :func:`input_space.kit_calls`."""
    for mode, (clauses, _) in CHECKS.items():
        examples = max(10, round(max_examples * SHARE[mode]))
        yield Check(
            name=f"differential {mode}",
            clauses=clauses,
            run=differential_check(mode, examples, seed),
            family="properties",
        )
