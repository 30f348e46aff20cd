"""Checks of SPEC section 14 that need JAX (tracers, meshes, several devices).

The row order itself (BA-14.1 to BA-14.4 on NumPy inputs) is pinned by the golden corpus.
These checks need a target that takes ``row_order``; those that need several devices are
NOT RUN on one (on a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives eight;
the CLI sets it when it is not set).
jax is imported when they run, never when the package is imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from batchapply_conformance._checks import Check, Outcome, Target, describe_error, on_jax

COLLECTIVE = re.compile(
    r"\b(all-gather|all-to-all|all-reduce|collective-permute|reduce-scatter)(?:-start)?\("
)
T, F, HIDDEN = 4, 3, 5


def _setup(axis_type: str) -> tuple[Any, Any, Any, Any, int]:
    """A 1-D mesh over every device, an MLP, x [T, B, F] with B split over the mesh, and its data."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    n = jax.device_count()
    mesh = jax.make_mesh((n,), ("d",), axis_types=(getattr(AxisType, axis_type),))
    rng = np.random.default_rng(0)
    w = rng.normal(size=(F, HIDDEN)).astype(np.float32)
    data = rng.normal(size=(T, 2 * n, F)).astype(np.float32)
    x = jax.device_put(data, NamedSharding(mesh, P(None, "d", None)))
    return mesh, (lambda rows: jnp.tanh(rows @ w)), x, data, n


def _by_hand(f: Callable[[Any], Any], data: Any) -> Any:
    import numpy as np

    t, b = data.shape[:2]
    return np.asarray(f(data.reshape(t * b, -1))).reshape(t, b, -1)


def _values(got: Any, want: Any, what: str) -> Outcome | None:
    import numpy as np

    if np.allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5):
        return None
    return Outcome("fail", f"{what}: values differ from the hand-written computation")


def _compiled_locally(apply: Any, x: Any, where: str) -> Outcome | None:
    """A FAIL when the compiled ``apply(x)`` has a collective or not ``x``'s sharding, else None."""
    compiled = apply.lower(x).compile()
    found = COLLECTIVE.findall(compiled.as_text() or "")
    if found:
        return Outcome("fail", f"{where}: collectives {found}")
    if not compiled.output_shardings.is_equivalent_to(x.sharding, 3):
        return Outcome("fail", f"{where}: output sharding {compiled.output_shardings}")
    return None


def _no_collectives(target: Target) -> Outcome:
    import jax

    for axis_type in ("Auto", "Explicit"):
        mesh, f, x, data, n = _setup(axis_type)
        with jax.set_mesh(mesh):
            apply = jax.jit(target.factory(f, 2, row_order=(1, n)))
            problem = _compiled_locally(apply, x, f"{axis_type} axes, [T, B@d, F], row_order=(1, {n})")
            if problem:
                return problem
            got = apply(x)
        # f is row-independent: any order gives the hand-written C-order values.
        problem = _values(got, _by_hand(f, data), f"{axis_type} axes, row_order=(1, {n})")
        if problem:
            return problem
    return Outcome("pass")


def _explicit_c_order(target: Target) -> Outcome:
    import jax

    mesh, f, x, _, _ = _setup("Explicit")
    with jax.set_mesh(mesh):
        try:
            jax.jit(target.factory(f, 2))(x)
        except ValueError as e:
            if str(e).startswith("BatchApply: this row order needs communication") and "args[0]" in str(e):
                return Outcome("pass")
            return Outcome("fail", f"expected E23 naming args[0], got {describe_error(e)}")
        except Exception as e:
            return Outcome("fail", f"expected ValueError E23, got {describe_error(e)}")
    return Outcome("fail", "C order on [T, B@d, F] with Explicit axes: no error (rows moved silently)")


def _auto_values(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import batchapply_reference

    mesh, f, x, data, n = _setup("Auto")

    def mixing(rows: Any) -> Any:  # a cumulative sum over rows: the order shows in the values
        return jnp.cumsum(f(rows), axis=0)

    def mixing_numpy(rows: Any) -> Any:
        return np.cumsum(np.asarray(f(rows)), axis=0)

    with jax.set_mesh(mesh):
        c_order = jax.jit(target.factory(mixing, 2))(x)
        counted = jax.jit(target.factory(mixing, 2, row_order=(1, n)))(x)
    for got, counts in ((c_order, "C"), (counted, (1, n))):
        want = batchapply_reference.BatchApply(mixing_numpy, row_order=counts)(data)
        problem = _values(got, want, f"Auto axes, row_order={counts!r}, a cumulative sum over rows")
        if problem:
            return problem
    return Outcome("pass")


def _shard_map(target: Target) -> Outcome:
    import jax
    from jax.sharding import PartitionSpec as P

    for axis_type in ("Auto", "Explicit"):
        mesh, f, x, data, _ = _setup(axis_type)
        with jax.set_mesh(mesh):
            body = jax.jit(
                jax.shard_map(target.factory(f, 2), mesh=mesh, in_specs=P(None, "d"), out_specs=P(None, "d"))
            )
            found = COLLECTIVE.findall(body.lower(x).compile().as_text() or "")
            if found:
                return Outcome("fail", f"inside shard_map ({axis_type} axes): collectives {found}")
            got = body(x)
        problem = _values(got, _by_hand(f, data), f"inside shard_map ({axis_type} axes)")
        if problem:
            return problem
    return Outcome("pass")


def _shard_major_under_jit(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    # An Auto axis of size 8 could shard the traced input unseen (traced abstractly: any device
    # count). Without a mesh nothing is hidden, and the counts are all 1 (issue 24).
    mesh = AbstractMesh((8,), ("x",), axis_types=(AxisType.Auto,))
    hidden = jax.ShapeDtypeStruct((2, 4, 3), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    # An Auto axis of size 1 shards nothing: the counts are all 1, no E22.
    single = AbstractMesh((1,), ("x",), axis_types=(AxisType.Auto,))
    seen = jax.ShapeDtypeStruct((2, 4, 3), jnp.float32, sharding=NamedSharding(single, PartitionSpec()))
    try:
        jax.jit(target.factory(lambda r: r, 2, row_order="shard_major")).trace(seen)
    except Exception as e:
        return Outcome(
            "fail", f"row_order='shard_major' under jax.jit with an Auto axis of size 1: {describe_error(e)}"
        )
    try:
        jax.jit(target.factory(lambda r: r, 2, row_order="shard_major")).trace(hidden)
    except ValueError as e:
        if str(e).startswith("BatchApply: row_order='shard_major' cannot see the sharding of"):
            return Outcome("pass")
        return Outcome("fail", f"expected E22, got {describe_error(e)}")
    return Outcome(
        "fail", "row_order='shard_major' under jax.jit with an Auto axis of size 8 guessed an order"
    )


def _chunks_stay_local(target: Target) -> Outcome:
    """BA-14.10: chunks of 2 local rows of every shard: no collective, the input's sharding,
    and the chunks of BA-14.9 (f tags each row with its position in the chunk it saw)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import batchapply_reference

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    for axis_type in ("Auto", "Explicit"):
        mesh, f, x, data, n = _setup(axis_type)

        def tagged(rows: Any, f: Callable[[Any], Any] = f) -> Any:
            return f(rows) + jnp.arange(rows.shape[0], dtype=rows.dtype)[:, None]

        def tagged_numpy(rows: Any, f: Callable[[Any], Any] = f) -> Any:
            return np.asarray(f(rows)) + np.arange(rows.shape[0], dtype=np.float32)[:, None]

        with jax.set_mesh(mesh):  # T * 2 local rows per device, 2 of them per chunk
            apply = jax.jit(target.factory(tagged, 2, row_order=(1, n), chunk_size=2 * n))
            problem = _compiled_locally(apply, x, f"{axis_type} axes, row_order=(1, {n}), chunk_size={2 * n}")
            if problem:
                return problem
            got = apply(x)
        want = batchapply_reference.BatchApply(tagged_numpy, row_order=(1, n), chunk_size=2 * n)(data)
        problem = _values(got, want, f"{axis_type} axes, row_order=(1, {n}), chunk_size={2 * n}")
        if problem:
            return problem
    return Outcome("pass")


def _c_order_chunks(target: Target) -> Outcome:
    """BA-14.11: chunk_size with the C order on a visibly sharded batch raises E25."""
    import jax

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    for axis_type, wrap in (("Auto", None), ("Explicit", None), ("Explicit", jax.jit)):
        mesh, f, x, _, n = _setup(axis_type)
        call = target.factory(f, 2, chunk_size=n)
        where = f"{axis_type} axes, {'jit' if wrap else 'eager'}, [T, B@d, F], chunk_size={n}"
        with jax.set_mesh(mesh):
            try:
                (wrap(call) if wrap else call)(x)
            except ValueError as e:
                if str(e).startswith(
                    "BatchApply: chunk_size on a sharded batch needs row_order"
                ) and "args[0]" in str(e):
                    continue
                return Outcome("fail", f"{where}: expected E25 naming args[0], got {describe_error(e)}")
            except Exception as e:
                return Outcome("fail", f"{where}: expected ValueError E25, got {describe_error(e)}")
        return Outcome("fail", f"{where}: no error (C-order chunks of a sharded batch)")
    return Outcome("pass")


def _guarded(check: Callable[[Target], Outcome], devices: int) -> Callable[[Target], Outcome]:
    on_devices = on_jax(check, devices)

    def run(target: Target) -> Outcome:
        if target.module.__name__ == "batchapply_reference":
            return Outcome("na", "needs tracers or several devices; the NumPy reference sees neither")
        if "row_order" not in target.options:
            return Outcome("na", "the target does not take row_order (SPEC section 14)")
        return on_devices(target)

    return run


def sharding_checks() -> Iterator[Check]:
    for name, clauses, check, devices in [
        ("shard_major under jit", ("BA-14.4",), _shard_major_under_jit, 1),
        ("no collectives", ("BA-14.5",), _no_collectives, 2),
        ("explicit C order", ("BA-14.6",), _explicit_c_order, 2),
        ("auto values", ("BA-14.7",), _auto_values, 2),
        ("shard_map", ("BA-14.8",), _shard_map, 2),
        ("local chunks", ("BA-14.10",), _chunks_stay_local, 2),
        ("C-order chunks", ("BA-14.11",), _c_order_chunks, 2),
    ]:
        yield Check(name=f"sharding {name}", clauses=clauses, run=_guarded(check, devices), family="sharding")
