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

import reprlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

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
    "leaf": ("BA-1.2", "BA-7.4"),
    "mutation": ("BA-5.5",),
    "calls": ("BA-6.1",),
    "closure": ("BA-6.1",),
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
        out = apply(*call.args, **call.kwargs)
        if call.function == "closure":
            state.scale = 2.0
            out = [out, apply(*call.args, **call.kwargs)]
        return "ok", out, state.calls
    except Exception as e:
        return "error", e, -1


def _leaf_difference(a: Any, e: Any) -> tuple[str, str] | None:
    """The kind of the first property in which output leaf ``a`` differs from the reference's ``e``."""
    import jax
    import numpy as np

    from batchapply_conformance.input_space import is_key

    if isinstance(e, jax.Array):
        if not isinstance(a, jax.Array):
            return "array_type", f"a {type(a).__name__}, expected a jax.Array"
        if a.dtype != e.dtype:  # BA-5.6 keeps a jax.Array's dtype, 64 bits and keys included
            return "jax dtype", f"dtype {a.dtype}, expected {e.dtype}"
        if a.shape != e.shape:
            return "values", f"shape {a.shape}, expected {e.shape}"
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
            return "values", f"shape {a.shape}, expected {e.shape}"
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
    if kind == "error":
        found = [("raised", "call", f"expected an output, got {describe_error(got)}")]
    else:
        found = differences(want, got, closure=call.function == "closure")
        if calls != want_calls and not any(k.startswith("tag") or k == "closure" for k, _, _ in found):
            found.append(("calls", "f", f"f was called {calls} times, expected {want_calls}"))
    return found + ([changed] if changed else [])


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
        if depth > 100:
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


CLASS_CLAUSES.update({"leaf: numpy non-numeric": ("BA-1.1",), "container: custom node": ("BA-1.3",)})


def _raise_culprits(target: Target, call: Any) -> set[str] | None:
    """The classes of the arguments without which the target no longer raises (None: not found).

    Each top-level argument but ``batch`` is dropped in turn (a positional one replaced by None)."""
    import dataclasses

    import jax

    if call.in_axes not in (0, None):
        return None
    leading = _leading_of(call)
    found: set[str] = set()

    def blame(value: Any, replace: Callable[[Any], Any]) -> None:
        if outcome(target.factory, replace(None))[0] != "ok":
            return  # not this argument
        flat = jax.tree_util.tree_leaves(value)  # the same leaves without their containers
        if outcome(target.factory, replace(flat))[0] == "ok":
            found.update(c for c in _classes_of(value, leading) if c.startswith("container"))
            return
        blamed = list(flat)  # drop every leaf the target still raises without: a minimal failing set
        for leaf in flat[:32]:
            rest = [x for x in blamed if x is not leaf]
            if outcome(target.factory, replace(rest))[0] != "ok":
                blamed = rest
        found.update(c for c in _classes_of(blamed, leading) if not c.startswith("container"))

    def positional(i: int) -> Callable[[Any], Any]:
        return lambda v: dataclasses.replace(call, args=call.args[:i] + (v,) + call.args[i + 1 :])

    def keyword(name: str) -> Callable[[Any], Any]:
        return lambda v: dataclasses.replace(call, kwargs={**call.kwargs, name: v})

    for i, arg in enumerate(call.args):
        blame(arg, positional(i))
    for name, value in call.kwargs.items():
        if name == "batch":
            continue
        if f"keyword: {name}" in CLASS_CLAUSES:
            renamed = {("renamed" if k == name else k): v for k, v in call.kwargs.items()}
            if outcome(target.factory, dataclasses.replace(call, kwargs=renamed))[0] == "ok":
                found.add(f"keyword: {name}")
                continue
        blame(value, keyword(name))
    return found or None


def _base_clauses(call: Any, kind: str, culprits: set[str] | None = None) -> tuple[str, ...]:
    if kind == "raised":
        classes = culprits if culprits is not None else call.classes
        found = [c for name in sorted(classes) for c in CLASS_CLAUSES.get(name, ())]
        return tuple(dict.fromkeys(found)) or ("BA-5.1",)
    if kind.startswith("tag"):
        return BASE["calls"] if kind == "tag call" else BASE["values"]
    return BASE[kind]


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
    for kind, _, detail in found:
        if culprits and kind != "mutation":
            clauses = tuple(dict.fromkeys(c for o in culprits for c in _option_clauses(call, o, kind)))
        else:
            classes = _raise_culprits(target, call) if kind == "raised" else None
            clauses = _base_clauses(call, kind, classes)
        charged.setdefault(clauses, (clauses, detail, _example(call, want, detail)))
    return list(charged.values())


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
