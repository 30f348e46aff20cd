"""Checks of inputs that only JAX has (SPEC BA-5.6) and of custom pytree nodes (BA-1.3).

The golden corpus is NumPy only; these checks pass ``jax.Array`` leaves that must come
back exactly as they went in (64-bit dtypes outside ``jax.enable_x64``, weak types,
typed PRNG keys, a committed device) and the node types of
:mod:`batchapply_conformance.nodes`, compared with the reference. jax is imported when
they run, never when the package is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from batchapply_conformance._checks import Check, Outcome, Target, describe_error, on_jax


def _calls(target: Target) -> list[dict[str, Any]]:
    """The option sets to try: plain, and chunked when the target takes ``chunk_size``."""
    return [{}] + ([{"chunk_size": 4}] if "chunk_size" in target.options else [])


def _same(got: Any, x: Any, what: str) -> Outcome | None:
    """``got`` is a jax.Array with ``x``'s shape, dtype, weak type, devices and values."""
    import jax
    import numpy as np

    if not isinstance(got, jax.Array):
        return Outcome("fail", f"{what}: got a {type(got).__name__}, expected a jax.Array")
    for name in ("shape", "dtype", "weak_type"):
        if getattr(got, name, None) != getattr(x, name, None):  # key arrays have no weak_type
            return Outcome(
                "fail", f"{what}: {name} {getattr(got, name, None)}, expected {getattr(x, name, None)}"
            )
    if got.devices() != x.devices():
        return Outcome("fail", f"{what}: on {got.devices()}, expected {x.devices()} (no transfer)")
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        got, x = jax.random.key_data(got), jax.random.key_data(x)
    if not np.array_equal(np.asarray(got), np.asarray(x)):
        return Outcome("fail", f"{what}: values differ")
    return None


def _identity_keeps(make: Callable[[], Any], what: str) -> Callable[[Target], Outcome]:
    """A check: ``BatchApply(lambda a: a)(x)`` returns ``x`` exactly, chunked or not."""

    def check(target: Target) -> Outcome:
        x = make()
        for options in _calls(target):
            problem = _same(target.factory(lambda a: a, 2, **options)(x), x, f"{what} {options or ''}")
            if problem is not None:
                return problem
        return Outcome("pass")

    return check


def _every_call(target: Target) -> Outcome:
    """BA-5.6 on every call of one object: ``BatchApply(lambda a: a)(x)`` returns ``x`` exactly,
    three calls back to back, then two after a pause. An implementation may change paths as a
    signature repeats (caches; programs compiled in the background: batchapply's eager calls
    go leaf by leaf until its group programs are ready, then reuse their plan), and each path
    must keep the promise."""
    import jax

    makers = [
        (_narrow("float32"), "a float32 array"),
        (_narrow("bfloat16"), "a bfloat16 array"),
        (_weak, "a weak-typed float32"),
        (_on_last_device, "an array committed to the last device"),
        (lambda: jax.numpy.stack([_narrow("float32")()] * 2), "a float32 array of leading shape (2, 2)"),
    ]
    objects = [
        (target.factory(lambda a: a, 2, **options), make(), f"{what} {options or ''}")
        for options in _calls(target)
        for make, what in makers
    ]
    return _on_every_call(objects, lambda apply, x, what, call: _same(apply(x), x, what))


def _every_call_passes_through(target: Target) -> Outcome:
    """BA-1.2 on every call of one object: ``f(x, bias)`` gets the very object of a ``jax.Array``
    ``bias`` of lower rank than ``num_dims`` next to a merged ``jax.Array``, on the calls of
    ``_every_call``. Only that is judged here: what ``f``'s output becomes is other checks'."""
    import jax.numpy as jnp

    bias = jnp.ones((4,), jnp.float32)
    kept: list[bool] = []

    def f(a: Any, b: Any) -> Any:
        kept.append(b is bias)
        return a

    def check(apply: Any, x: Any, what: str, call: int) -> Outcome | None:
        kept.clear()
        apply(x, bias)
        if not (kept and all(kept)):
            return Outcome("fail", f"{what}: f got another object than the (4,) bias it was passed")
        return None

    return _on_every_call(_float32_objects(target, f), check)


def _every_call_node_data(target: Target) -> Outcome:
    """BA-1.3 on every call of one object: a ``KeyedNode`` whose node data hashes but whose
    ``==`` has no truth value (jax's comparison of tree structures raises on it, unless it
    meets the very same object) reaches ``f`` with that node data, on the calls of
    ``_every_call``: the same node data on calls 1 to 4, a new one on call 5. An implementation
    that keeps something per tree structure must not raise on it."""
    from batchapply_conformance.nodes import Ambiguous, KeyedNode

    same = Ambiguous()
    tags: list[Any] = []

    def f(node: Any) -> Any:
        tags.append(node.tag)
        return node.a

    def check(apply: Any, x: Any, what: str, call: int) -> Outcome | None:
        tag = same if call < 5 else Ambiguous()
        tags.clear()
        problem = _same(apply(KeyedNode(x, x, tag)), x, what)
        if problem is None and not all(t is tag for t in tags):  # f not called: BA-6.1's
            return Outcome("fail", f"{what}: f got the node with other node data than it was passed")
        return problem

    return _on_every_call(_float32_objects(target, f), check)


def _float32_objects(target: Target, f: Callable[..., Any]) -> list[tuple[Any, Any, str]]:
    """One object of ``f`` per option set of ``_calls``, each with a float32 array to call it on."""
    return [
        (target.factory(f, 2, **options), _narrow("float32")(), f"a float32 array {options or ''}")
        for options in _calls(target)
    ]


def _on_every_call(
    objects: list[tuple[Any, Any, str]], check: Callable[[Any, Any, str, int], Outcome | None]
) -> Outcome:
    """``check(apply, x, what, call)`` on calls 1 to 5 of every object: three back to back, then
    two after one pause, in which whatever runs in the background may finish."""
    import time

    for call in range(1, 6):
        if call == 4:
            time.sleep(0.25)
        for apply, x, what in objects:
            try:
                problem = check(apply, x, f"{what}, call {call}", call)
            except Exception as e:  # which call raised: the detail says it
                return Outcome(
                    "fail", f"{what}, call {call}: raised {describe_error(e)}", {"got": describe_error(e)}
                )
            if problem is not None:
                return problem
    return Outcome("pass")


def _x64() -> Any:
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        return jnp.arange(24, dtype=jnp.int64).reshape(2, 3, 4) + 2**40


def _weak() -> Any:
    import jax

    return jax.lax.broadcast(1.5, (2, 3, 4))


def _keys() -> Any:
    import jax

    return jax.random.split(jax.random.key(0), 24).reshape(2, 3, 4)


def _narrow(dtype: str) -> Callable[[], Any]:
    """A maker of a jax.Array of ``dtype`` (float32, or a narrow one: bfloat16, float8, int4) with
    distinct values."""

    def make() -> Any:
        import jax.numpy as jnp
        import numpy as np

        values = np.arange(24).reshape(2, 3, 4) % 15 - 7  # exact in each of them
        return jnp.asarray(values, dtype=getattr(jnp, dtype))

    return make


def _closure_changes(target: Target) -> Outcome | list[Outcome]:
    """BA-6.1, BA-13.4: one BatchApply object called twice, its ``f`` reading a closure cell that
    changed in between: the second call sees the new value (no compiled ``f`` is kept). A call
    without ``chunk_size`` that does not is BA-6.1's; a chunked one (6 rows, chunks of 4), BA-13.4's."""
    import jax.numpy as jnp
    import numpy as np

    x = jnp.arange(24.0).reshape(2, 3, 4)
    failures = []
    for options in _calls(target):
        cell = [1.0]
        calls: list[int] = []

        def f(rows: Any, cell: list[float] = cell, calls: list[int] = calls) -> Any:
            calls.append(1)
            return rows * cell[0]

        apply = target.factory(f, 2, **options)
        charged = ("BA-13.4",) if options else ("BA-6.1",)
        for scale in (1.0, 3.0):
            cell[0] = scale
            before = len(calls)
            got = apply(x)
            if len(calls) == before:
                why = f"{options or ''} call {scale:g}: f was not called (a compiled f kept?)"[:110]
                failures.append(Outcome("fail", why, None, charged))
                break
            if not np.array_equal(np.asarray(got), np.asarray(x) * scale):
                why = f"{options or ''}: the closure's new value {scale:g} was not seen"
                failures.append(Outcome("fail", why, None, charged))
                break
    return failures or Outcome("pass")


def _on_last_device() -> Any:
    import jax
    import jax.numpy as jnp

    return jax.device_put(jnp.arange(24.0).reshape(2, 3, 4), jax.devices()[-1])


def _custom_nodes(target: Target) -> Outcome:
    """Every node type of ``nodes`` is a container: the target agrees with the reference.

    ``f`` reverses the rows of every leaf: an identity could not tell a node passed
    through untouched from one merged and split again."""
    import jax
    import numpy as np

    import batchapply_reference
    from batchapply_conformance import nodes

    x = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    for node_type in nodes.NODE_TYPES:
        tree = node_type(x, [x[..., 0], None])  # array leaves only: BA-1.1 is checked elsewhere

        def mix(t: Any) -> Any:
            return jax.tree_util.tree_map(lambda leaf: leaf[::-1], t)

        want = batchapply_reference.BatchApply(mix)(tree)
        got = target.factory(mix, 2)(tree)
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(want)[0]]
        got_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(got)[0]]
        if type(got) is not node_type or got_paths != paths:
            return Outcome("fail", f"{node_type.__name__}: got {type(got).__name__} with leaves {got_paths}")
        for path, a, b in zip(
            paths, jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True
        ):
            if isinstance(b, np.ndarray) and not np.array_equal(np.asarray(a), b):
                return Outcome("fail", f"{node_type.__name__}{path}: values differ from the reference")
    return Outcome("pass")


def jax_input_checks() -> Iterator[Check]:
    for name, clauses, check, devices in [
        ("x64 outside enable_x64", ("BA-5.6",), _identity_keeps(_x64, "int64 made under enable_x64"), 1),
        ("weak type", ("BA-5.6",), _identity_keeps(_weak, "a weak-typed float32"), 1),
        ("typed PRNG keys", ("BA-5.6",), _identity_keeps(_keys, "a typed key array"), 1),
        ("committed device", ("BA-5.6",), _identity_keeps(_on_last_device, "an array on the last device"), 2),
        ("every call of one object", ("BA-5.6",), _every_call, 1),
        ("every call passes the other leaves through", ("BA-1.2",), _every_call_passes_through, 1),
        ("every call with node data that == cannot decide", ("BA-1.3",), _every_call_node_data, 1),
        ("custom pytree nodes", ("BA-1.3",), _custom_nodes, 1),
        *(
            (dtype, ("BA-5.2", "BA-5.6"), _identity_keeps(_narrow(dtype), f"a {dtype} array"), 1)
            for dtype in ("bfloat16", "float8_e4m3fn", "int4")
        ),
        ("closure changes between calls", ("BA-6.1", "BA-13.4"), _closure_changes, 1),
    ]:
        yield Check(name=f"jax inputs {name}", clauses=clauses, run=on_jax(check, devices))
