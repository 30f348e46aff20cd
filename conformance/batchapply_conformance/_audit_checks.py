"""Checks of the SPEC draft-3 clauses that no golden case can pin (the editor's audit of 2026-12-07).

JAX-only pytree nodes (BA-1.3), the options as read-only attributes (BA-2.6), deleted arrays
(BA-5.9, BA-10.7), an ``f`` that raises partway (BA-6.3) or runs in several threads (BA-6.4),
the key order of rebuilt dicts (BA-7.6: golden comparison ignores it), the result under
``jax.jit`` (BA-8.7), 64-bit chunk outputs (BA-13.8), chunk outputs on other devices (BA-13.7)
and zero-size sharded dims (BA-14.12); and, added when issue 29 was checked, the decisions no
golden case pins: frozenset keys in another order (BA-4.4, E7), non-array leaves left untouched
(BA-1.1), NumPy subclasses kept (BA-5.3), E28 before the rows that read shard counts (BA-10.4),
E27 first in ``f``'s output (BA-10.5, BA-10.6), the chunked E10 message (BA-13.6), weak and
strong chunk outputs (BA-13.7), and ``"shard_major"`` under every transformation without a mesh
(BA-14.4) and in a partly manual ``shard_map`` (BA-14.8). jax is imported when they run, never
when the package is imported. An E27 500 levels deep (BA-1.5) runs in a thread of its own: on a
target whose jax flatten leaks the recursion budget, it leaks that thread's only (the golden
case ``E27-deep-in-the-inputs`` is 50 deep).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

from batchapply_conformance._checks import Check, Outcome, Outcomes, Target, describe_error, on_jax, reworded

OPTIONS = ("f", "num_dims", "in_axes", "out_axes", "chunk_size", "row_order")


@functools.cache
def _box() -> type:
    """A dataclass registered with JAX only (``register_dataclass``): a container (BA-1.3)."""
    import dataclasses

    import jax

    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Box:
        v: Any

    return Box


def _jax_only_nodes(target: Target) -> Outcome:
    import jax
    import numpy as np

    box = _box()
    seen: dict[str, Any] = {}

    def f(a: Any, b: Any, p: Any) -> Any:
        seen.update(b=b, p=p)
        return a

    x = np.zeros((2, 3, 2))
    target.factory(f, 2)(x, box(np.ones((2, 3, 5))), jax.tree_util.Partial(np.add, np.ones((2, 3, 5))))
    got = (type(seen["b"]).__name__, np.shape(getattr(seen["b"], "v", ())))
    got_partial = (type(seen["p"]).__name__, np.shape(getattr(seen["p"], "args", [()])[0]))
    if got != ("Box", (6, 5)) or got_partial != ("Partial", (6, 5)):
        return Outcome(
            "fail", f"f got {got} and {got_partial}; expected the (2, 3, 5) leaves inside merged to (6, 5)"
        )
    return Outcome("pass")


def _read_only(target: Target) -> Outcome:
    import inspect

    if not inspect.isclass(target.factory):
        return Outcome("na", "the target's factory is a function, not a BatchApply class (BA-2.6)")
    apply = target.factory(abs, 2)  # type: ignore[call-arg]  # isclass narrows it to type[object]
    for name in [n for n in OPTIONS if n in ("f", "num_dims") or n in target.options]:
        if not hasattr(apply, name):
            return Outcome("fail", f"the object has no attribute {name!r}")
        try:
            setattr(apply, name, getattr(apply, name))
        except AttributeError:
            continue
        return Outcome("fail", f"assigning to {name!r} did not raise AttributeError")
    return Outcome("pass")


def _deleted(target: Target) -> Outcome:
    import jax.numpy as jnp

    def deleted(shape: tuple[int, ...]) -> Any:
        a = jnp.ones(shape)
        a.delete()
        return a

    for what, call, prefix in [
        (
            "a deleted input",
            lambda: target.factory(lambda a: a, 2)({"w": deleted((2, 3, 4))}),
            "BatchApply: input array has been deleted",
        ),
        (
            "a deleted input before one of another leading shape",
            lambda: target.factory(lambda a, b: a, 2)(deleted((2, 3, 4)), jnp.ones((5, 3, 4))),
            "BatchApply: inputs disagree on their leading shape",
        ),
    ]:
        try:
            call()
        except ValueError as e:
            if str(e).startswith(prefix):
                continue
            return Outcome(
                "fail",
                f"{what}: {type(e).__name__}: {e}; expected {prefix!r}",
                None,
                reworded(e, "ValueError", prefix),
            )
        except Exception as e:
            return Outcome("fail", f"{what}: {type(e).__name__}: {e}; expected ValueError {prefix!r}")
        return Outcome("fail", f"{what}: no error; expected {prefix!r}")
    return Outcome("pass")


def _f_raises(target: Target) -> Outcomes:
    import numpy as np

    class Boom(Exception):
        pass

    chunked = "chunk_size" in target.options
    err, calls = Boom(), []

    def f(y: Any) -> Any:
        calls.append(len(y))
        if len(calls) == (2 if chunked else 1):
            raise err
        return y

    try:
        target.factory(f, 2, **({"chunk_size": 2} if chunked else {}))(np.zeros((2, 3, 1)))
    except Boom as e:
        want = [2, 2] if chunked else [6]
        if e is err and calls == want:
            return Outcome("pass")
        return Outcome("fail", f"f ran on {calls} rows (expected {want}); same exception object: {e is err}")
    if chunked and len(calls) < 2:
        # f never ran a second time, so it never raised: the chunks are at fault, and BA-6.3 is
        # judged on an f that raises on its first call.
        unchunked = Outcome("fail", _fewer_calls(len(calls), 3), None, _FEWER_CALLS)
        try:
            target.factory(lambda y: _raise(err), 2, chunk_size=2)(np.zeros((2, 3, 1)))
        except Boom as e:
            return unchunked if e is err else [unchunked, Outcome("fail", "f's exception was replaced")]
        return [unchunked, Outcome("fail", "the exception f raised on its first call did not propagate")]
    return Outcome("fail", "the exception f raised did not propagate")


def _raise(error: BaseException) -> Any:
    raise error


_FEWER_CALLS = ("BA-13.3", "BA-13.4")
"""Where ``f`` of a chunked call ran fewer times than the call has chunks: its rows were not cut
into the chunks of BA-13.3, one call each (BA-13.4). A check whose ``f`` answers each chunk in
turn (raises on the second, returns another type there) cannot judge its own clause then."""


def _fewer_calls(calls: int, chunks: int) -> str:
    return f"f ran {calls} times for {chunks} chunks: the check's own clause cannot be judged"


def _threads(target: Target) -> Outcome:
    import numpy as np

    apply = target.factory(lambda y: y * 2, 2)
    wrong: list[Any] = []

    def work(t: int) -> None:
        for i in range(6):
            z = np.full((2 + (i + t) % 3, 2, 1), float(t))
            want = 2 * z  # before the call: a call that changes z is BA-5.5's fault, not this one's
            try:
                if not (np.asarray(apply(z)) == want).all():
                    wrong.append((t, i))
            except Exception as e:
                wrong.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Outcome("pass") if not wrong else Outcome("fail", f"wrong results or errors: {wrong[:3]}")


def _key_order(target: Target) -> Outcome:
    import numpy as np

    seen: list[list[str]] = []

    def f(d: dict[str, Any]) -> dict[str, Any]:
        seen.append(list(d))
        return {"b": d["z"], "a": d["z"]}

    out = target.factory(f, 2)({"z": np.zeros((2, 3, 1)), "m": np.zeros((2, 3, 1))})
    if seen != [["m", "z"]] or list(out) != ["a", "b"]:
        return Outcome("fail", f"f got keys {seen}, the result has {list(out)}; expected sorted keys")
    return Outcome("pass")


def _jit_bit_for_bit(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp
    import numpy as np

    z = jax.random.normal(jax.random.key(1), (4, 37, 64))

    def f(y: Any) -> Any:  # a layer norm: XLA reassociates it under jit
        return (y - y.mean(-1, keepdims=True)) / jnp.sqrt(y.var(-1, keepdims=True) + 1e-5)

    got = np.asarray(jax.jit(target.factory(f, 2))(z))
    hand = np.asarray(jax.jit(lambda t: f(t.reshape(148, 64)).reshape(t.shape))(z))
    if not np.array_equal(got, hand):
        return Outcome(
            "fail", f"{int((got != hand).sum())} elements differ from the hand-written jitted code"
        )
    return Outcome("pass")


def _mixed_64_bit_chunks(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp
    import numpy as np

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    big = 2.0**40 + 1
    with jax.enable_x64(True):
        j64 = jnp.full((2, 1), big, dtype=jnp.float64)
    calls = [0]

    def f(y: Any) -> Any:
        calls[0] += 1
        return np.full((2, 1), big) if calls[0] == 1 else j64

    try:
        out = target.factory(f, 2, chunk_size=2)(np.zeros((2, 2, 1)))
    except Exception:
        if calls[0] < 2:
            return Outcome("fail", _fewer_calls(calls[0], 2), None, _FEWER_CALLS)
        raise
    if calls[0] < 2:
        return Outcome("fail", _fewer_calls(calls[0], 2), None, _FEWER_CALLS)
    values = np.asarray(out, dtype=np.float64)  # compared in float64: 2.0**40 + 1 is weak
    if out.dtype != np.float64 or not (values == np.float64(big)).all():
        return Outcome(
            "fail", f"got {type(out).__name__} {out.dtype} {values.ravel().tolist()}; expected float64 {big}"
        )
    return Outcome("pass")


def _chunks_on_other_devices(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    devices, calls = jax.devices(), [0]

    def f(y: Any) -> Any:
        calls[0] += 1
        return jax.device_put(y, devices[calls[0]])

    prefix = "BatchApply: chunk outputs disagree"
    try:
        target.factory(f, 2, chunk_size=1)(jnp.arange(4.0).reshape(2, 2, 1))
    except ValueError as e:
        if str(e).startswith(prefix):
            return Outcome("pass")
        return Outcome(
            "fail", f"ValueError: {e}; expected {prefix!r} (E17)", None, reworded(e, "ValueError", prefix)
        )
    return Outcome("fail", "chunk outputs on two devices were joined; expected E17")


def _zero_size_sharded_dim(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    if not {"chunk_size", "row_order"} <= target.options:
        return Outcome("na", "the target does not take chunk_size and row_order (SPEC sections 13, 14)")
    mesh = jax.make_mesh((2,), ("b",), devices=jax.devices()[:2], axis_types=(AxisType.Auto,))
    xz = jax.device_put(jnp.zeros((2, 0, 1)), NamedSharding(mesh, P(None, "b")))
    out = target.factory(lambda y: y, 2, row_order="shard_major", chunk_size=3)(xz)
    if tuple(out.shape) != (2, 0, 1):
        return Outcome("fail", f"got shape {tuple(out.shape)}; expected (2, 0, 1)")
    return Outcome("pass")


def _deep_errors_in_a_thread(target: Target) -> Outcome:
    """BA-1.5: E27 on an input 500 levels deep, then a valid input 500 deep, three times. It runs
    in a thread of its own: the recursion budget is per thread, so a target whose flatten leaks it
    fails here without breaking the checks after this one."""
    import numpy as np

    def nest(leaf: Any) -> Any:
        for _ in range(500):
            leaf = [leaf]
        return leaf

    bad = nest({1: np.zeros((2, 3)), "a": np.zeros((2, 3))})
    good = nest(np.ones((2, 3, 4)))
    apply = target.factory(lambda x, deep: x, 2)
    found: list[str] = []

    def run() -> None:
        for k in range(3):
            try:
                apply(np.zeros((2, 3, 1)), bad)
                found.append(f"round {k}: the unsortable dict 500 deep raised nothing (E27)")
                return
            except RecursionError as e:
                found.append(f"round {k}: the unsortable dict 500 deep raised {describe_error(e)}, not E27")
                return
            except Exception:  # E27 or not: the error rows' checks judge which (BA-1.7)
                pass
            try:
                apply(np.zeros((2, 3, 1)), good)
            except BaseException as e:
                got = describe_error(e)
                found.append(f"round {k}: after that error, a valid input 500 deep raised {got}")
                return

    size = threading.stack_size(64 << 20)
    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
    finally:
        threading.stack_size(size)
    thread.join()
    return Outcome("fail", found[0]) if found else Outcome("pass")


def _row_raised(call: Any, row: str, what: str) -> Outcome | None:
    """None when ``call()`` raises SPEC error ``row`` (type and prefix), else a FAIL saying
    ``what`` and what happened (an error worded otherwise: BA-10.1's alone, :func:`reworded`)."""
    from batchapply_conformance._spec import error_table

    type_name, prefix = error_table()[row]
    try:
        call()
    except Exception as e:
        if type(e).__name__ == type_name and str(e).startswith(prefix.split("{")[0]):
            return None
        detail = f"{what}: {describe_error(e)}; expected {row} ({type_name} {prefix!r})"
        return Outcome("fail", detail, None, reworded(e, type_name, prefix))
    return Outcome("fail", f"{what}: no error; expected {row} ({type_name} {prefix!r})")


def _partly_ordered_keys(target: Target) -> Outcome:
    """A1: frozenset keys keep their insertion order in the stable sort, so an ``in_axes`` dict
    of the same keys inserted in the other order is not a prefix (E7), never paired by position."""
    import numpy as np

    if "in_axes" not in target.options:
        return Outcome("na", "the target does not take in_axes (SPEC section 4)")
    k1, k2 = frozenset({1}), frozenset({2})
    arg = {k1: np.zeros((2, 3, 4)), k2: np.zeros((7, 5))}
    what = "in_axes=({k2: None, k1: 0},) over {k1: x, k2: w}"
    call = lambda: target.factory(lambda d: d, 2, in_axes=({k2: None, k1: 0},))(arg)  # noqa: E731
    return _row_raised(call, "E7", what) or Outcome("pass")


def _deleted_before_the_counts(target: Target) -> Outcome:
    """C2: a deleted input raises E28 before E21 and E24, which read shard counts (BA-10.4)."""
    import jax.numpy as jnp

    if not {"chunk_size", "row_order"} <= target.options:
        return Outcome("na", "the target does not take chunk_size and row_order (SPEC sections 13, 14)")

    def deleted() -> Any:
        a = jnp.ones((2, 4, 1))
        a.delete()
        return a

    for what, options in [
        ("row_order=(1, 3) (E21 otherwise)", {"row_order": (1, 3)}),
        ("row_order=(1, 2), chunk_size=3 (E24 otherwise)", {"row_order": (1, 2), "chunk_size": 3}),
    ]:
        call = lambda o=options: target.factory(lambda a: a, 2, **o)(deleted())  # noqa: E731
        problem = _row_raised(call, "E28", f"a deleted (2, 4, 1) input with {what}")
        if problem:
            return problem
    return Outcome("pass")


def _unsortable_output_first(target: Target) -> Outcome:
    """C2: in ``f``'s output E27 comes first, before E11 (BA-10.5) and, per chunk, E11 and E16
    (BA-10.6)."""
    import numpy as np

    if "out_axes" not in target.options:
        return Outcome("na", "the target does not take out_axes (SPEC section 7)")
    x = np.zeros((2, 3, 4))
    out_axes = ({"b": 0}, 0)  # not a prefix of ({"a": ..}, ..): E11 if E27 did not come first
    chunked = [{}, {"chunk_size": 2}] if "chunk_size" in target.options else [{}]
    for options in chunked:
        apply = target.factory(lambda a: ({"a": a}, {1: a, "b": a}), 2, out_axes=out_axes, **options)
        what = f"f returned ({{'a': y}}, {{1: y, 'b': y}}), out_axes={out_axes}, {options}"
        problem = _row_raised(lambda a=apply: a(x), "E27", what)
        if problem:
            return problem
    return Outcome("pass")


def _chunked_e10_message(target: Target) -> Outcome:
    """C7: the chunked E10 message suggests computing unbatched values outside ``f`` and never
    ``out_axes=None``, which is E16 under ``chunk_size`` (BA-13.6)."""
    import numpy as np

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    apply = target.factory(lambda y: (y, y.sum(0)), 2, chunk_size=4)
    problem = _row_raised(lambda: apply(np.zeros((2, 3, 4))), "E10", "an output of rank 1 per chunk")
    if problem:
        return problem
    try:
        apply(np.zeros((2, 3, 4)))
    except ValueError as e:
        if "out_axes=None" in str(e) or "outside" not in str(e):
            return Outcome(
                "fail",
                f"the chunked E10 message is {str(e)!r}; it must suggest computing "
                "unbatched values outside f, not out_axes=None",
            )
    return Outcome("pass")


def _weak_and_strong_chunks(target: Target) -> Outcome:
    """A5: E17's dtype ignores weak type; the joined leaf is weak only if every chunk's is
    (BA-13.7, BA-5.6)."""
    import jax.numpy as jnp

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    xw = jnp.broadcast_to(jnp.asarray(1.0), (3, 1, 2))  # weak float32
    for all_weak in (False, True):
        calls = [0]

        def f(y: Any, calls: list[int] = calls, all_weak: bool = all_weak) -> Any:
            calls[0] += 1
            return y * 1.0 if all_weak or calls[0] == 1 else (y * 1.0).astype(jnp.float32)

        out = target.factory(f, 2, chunk_size=1)(xw)
        if out.dtype != jnp.float32 or bool(out.weak_type) != all_weak:
            what = "every chunk weak" if all_weak else "chunk 0 weak, chunks 1 and 2 strong"
            return Outcome(
                "fail",
                f"{what}: got {out.dtype} weak_type={out.weak_type}; expected float32 weak_type={all_weak}",
            )
    return Outcome("pass")


def _shard_major_traced_without_a_mesh(target: Target) -> Outcome:
    """C4: with no mesh a tracer's counts are all 1, so ``"shard_major"`` works under every
    section-8 transformation (BA-14.4), as the hand-written reshape does."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    if "row_order" not in target.options:
        return Outcome("na", "the target does not take row_order (SPEC section 14)")
    x = jnp.arange(24.0).reshape(2, 3, 4)
    xs = jnp.stack([x, x + 1])

    def apply(z: Any) -> Any:
        return target.factory(lambda y: y * 2, 2, row_order="shard_major")(z)

    for name, run, want in [
        ("grad", lambda: jax.grad(lambda z: apply(z).sum())(x), np.full((2, 3, 4), 2.0)),
        ("vmap", lambda: jax.vmap(apply)(xs), 2 * np.asarray(xs)),
        ("scan", lambda: jax.lax.scan(lambda c, z: (c, apply(z)), 0, xs)[1], 2 * np.asarray(xs)),
        ("checkpoint", lambda: jax.checkpoint(apply)(x), 2 * np.asarray(x)),
    ]:
        got = np.asarray(run())
        if got.shape != want.shape or not np.array_equal(got, want):
            return Outcome("fail", f"row_order='shard_major' under jax.{name}: got {got.shape}, not 2 * x")
    return Outcome("pass")


def _numpy_subclasses(target: Target) -> Outcome:
    """A3: the array type is the exact class: a NumPy subclass reaches ``f`` and comes back as
    that subclass (BA-5.3, BA-7.2)."""
    import numpy as np

    class Tagged(np.ndarray):
        pass

    rec = np.zeros((2, 3, 4), dtype=[("a", "f8"), ("b", "f8")]).view(np.recarray)
    for x in (np.zeros((2, 3, 4)).view(Tagged), rec):
        seen: list[type] = []
        out = target.factory(lambda y, s=seen: (s.append(type(y)), y)[1], 2)(x)
        if seen != [type(x)] or type(out) is not type(x):
            got = [c.__name__ for c in seen]
            merged = ("BA-5.3",) if seen != [type(x)] else ()  # what f got: the merge's
            split = ("BA-7.2",) if type(out) is not type(seen[-1] if seen else x) else ()  # the split's
            return Outcome(
                "fail",
                f"a {type(x).__name__} input: f got {got}, the result is a "
                f"{type(out).__name__}; expected {type(x).__name__} both times",
                None,
                (*merged, *split) or None,
            )
    return Outcome("pass")


class _Untouchable:
    """A leaf that is not an array leaf and records any attempt to read it as one (BA-1.1)."""

    def __init__(self) -> None:
        self.touched: list[str] = []

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        self.touched.append("__array__")
        raise TypeError("__array__ of a non-array leaf")

    def __len__(self) -> int:
        self.touched.append("__len__")
        raise TypeError("__len__ of a non-array leaf")

    def __iter__(self) -> Any:
        self.touched.append("__iter__")
        raise TypeError("__iter__ of a non-array leaf")

    @property
    def __array_interface__(self) -> Any:
        self.touched.append("__array_interface__")
        raise AttributeError("__array_interface__")


def _non_array_leaves_untouched(target: Target) -> Outcome:
    """U5: no ``__array__``, ``__array_interface__``, ``__len__`` or ``__iter__`` of a leaf that
    is not an array leaf; it reaches ``f`` as the very object (BA-1.1, BA-1.2)."""
    import numpy as np

    chunked = [{}, {"chunk_size": 2}] if "chunk_size" in target.options else [{}]
    for options in chunked:
        leaf = _Untouchable()
        seen: list[Any] = []
        target.factory(lambda y, o, s=seen: (s.append(o), y)[1], 2, **options)(np.zeros((2, 3, 1)), leaf)
        if leaf.touched or any(o is not leaf for o in seen):
            return Outcome(
                "fail",
                f"{options or 'no chunk_size'}: the implementation called "
                f"{leaf.touched} of a non-array leaf; f got the very object: "
                f"{all(o is leaf for o in seen)}",
            )
    return Outcome("pass")


def _shard_major_in_a_partly_manual_shard_map(target: Target) -> Outcome:
    """C4 (issue 24): inside a ``jax.shard_map`` that leaves an Auto axis of size 1, nothing can
    shard the local array unseen, so ``"shard_major"`` merges each device's rows in the C order
    (BA-14.4, BA-14.8); it used to raise E22."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    if "row_order" not in target.options:
        return Outcome("na", "the target does not take row_order (SPEC section 14)")
    mesh = jax.make_mesh((2, 1), ("d", "m"), devices=jax.devices()[:2], axis_types=(AxisType.Auto,) * 2)
    x = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
    body = target.factory(lambda r: jnp.cumsum(r, axis=0), 2, row_order="shard_major")
    spec = P(None, "d")
    mapped = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec, axis_names={"d"}))
    local = np.asarray(x).reshape(2, 2, 2, 3)  # [T, device, local B, F]
    want = np.stack(
        [np.cumsum(local[:, k].reshape(-1, 3), axis=0).reshape(2, 2, 3) for k in range(2)], axis=1
    ).reshape(2, 4, 3)
    got = np.asarray(mapped(x))
    if not np.array_equal(got, want):
        return Outcome(
            "fail",
            "a cumulative sum over each device's rows in a shard_map over 'd' "
            "(Auto 'm' of size 1) is not the C-order one of each device's block",
        )
    return Outcome("pass")


def audit_checks() -> Iterator[Check]:
    for name, clauses, check, devices in [
        ("pytree nodes registered with JAX only", ("BA-1.3",), _jax_only_nodes, 1),
        ("E27 500 deep, then a valid call, in a thread", ("BA-1.5",), _deep_errors_in_a_thread, 1),
        ("options are read-only attributes", ("BA-2.6",), _read_only, 1),
        ("deleted input", ("BA-5.9", "BA-10.4", "BA-10.7"), _deleted, 1),
        ("f raises partway", ("BA-6.3",), _f_raises, 1),
        ("one object in four threads", ("BA-6.4",), _threads, 1),
        ("dict key order", ("BA-7.6",), _key_order, 1),
        ("jit is the hand-written jitted code", ("BA-8.7",), _jit_bit_for_bit, 1),
        ("64-bit NumPy and jax chunk outputs", ("BA-13.8",), _mixed_64_bit_chunks, 1),
        ("chunk outputs on other devices", ("BA-13.7",), _chunks_on_other_devices, 3),
        ("zero-size sharded leading dim", ("BA-14.12",), _zero_size_sharded_dim, 2),
        ("frozenset keys in another order", ("BA-1.3", "BA-4.4"), _partly_ordered_keys, 1),
        ("non-array leaves untouched", ("BA-1.1",), _non_array_leaves_untouched, 1),
        ("NumPy subclasses kept", ("BA-5.3",), _numpy_subclasses, 1),
        ("deleted input before the shard counts", ("BA-10.4",), _deleted_before_the_counts, 1),
        ("E27 first in f's output", ("BA-10.5", "BA-10.6"), _unsortable_output_first, 1),
        ("chunked E10 message", ("BA-13.6",), _chunked_e10_message, 1),
        ("weak and strong chunk outputs", ("BA-13.7",), _weak_and_strong_chunks, 1),
        ("shard_major traced without a mesh", ("BA-14.4",), _shard_major_traced_without_a_mesh, 1),
        (
            "shard_major in a partly manual shard_map",
            ("BA-14.8", "BA-14.4"),
            _shard_major_in_a_partly_manual_shard_map,
            2,
        ),
    ]:
        yield Check(name=f"audit {name}", clauses=clauses, run=on_jax(check, devices))
