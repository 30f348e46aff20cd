"""Checks of the SPEC draft-3 clauses that no golden case can pin (the editor's audit of 2026-12-07).

JAX-only pytree nodes (BA-1.3), the options as read-only attributes (BA-2.6), deleted arrays
(BA-5.9, BA-10.7), an ``f`` that raises partway (BA-6.3) or runs in several threads (BA-6.4),
the key order of rebuilt dicts (BA-7.6: golden comparison ignores it), the result under
``jax.jit`` (BA-8.7), 64-bit chunk outputs (BA-13.8), chunk outputs on other devices
(BA-13.7) and zero-size sharded dims (BA-14.12). jax is imported when they run, never when
the package is imported. An E27 500 levels deep (BA-1.5) runs in a thread of its own: on a
target whose jax flatten leaks the recursion budget, it leaks that thread's only (the golden
case ``E27-deep-in-the-inputs`` is 50 deep).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

from batchapply_conformance._checks import Check, Outcome, Target, describe_error, on_jax

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
            return Outcome("fail", f"{what}: {type(e).__name__}: {e}; expected {prefix!r}")
        except Exception as e:
            return Outcome("fail", f"{what}: {type(e).__name__}: {e}; expected ValueError {prefix!r}")
        return Outcome("fail", f"{what}: no error; expected {prefix!r}")
    return Outcome("pass")


def _f_raises(target: Target) -> Outcome:
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
    return Outcome("fail", "the exception f raised did not propagate")


def _threads(target: Target) -> Outcome:
    import numpy as np

    apply = target.factory(lambda y: y * 2, 2)
    wrong: list[Any] = []

    def work(t: int) -> None:
        for i in range(6):
            z = np.full((2 + (i + t) % 3, 2, 1), float(t))
            try:
                if not (np.asarray(apply(z)) == 2 * z).all():
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

    out = target.factory(f, 2, chunk_size=2)(np.zeros((2, 2, 1)))
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
        return Outcome("fail", f"ValueError: {e}; expected {prefix!r} (E17)")
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
    ]:
        yield Check(name=f"audit {name}", clauses=clauses, run=on_jax(check, devices))
