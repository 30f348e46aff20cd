"""Checks of SPEC section 14 that need JAX (tracers, meshes, several devices).

The row order itself (BA-14.1 to BA-14.4 on NumPy inputs) is pinned by the golden corpus.
These checks need a target that takes ``row_order``; those that need several devices are
NOT RUN on one (on a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives eight;
the CLI sets it when it is not set). With n devices, n even and at least 4, they run on a
(2, n / 2) mesh, on every layout of ``x [T, B, F]``: B cut, T cut, and both cut (the one
that tells shard-major order from C order); with 2 or 3 devices, on an (n,) mesh, the first two.
Each check runs with Auto and with Explicit axes where the SPEC says what both do.
jax is imported when they run, never when the package is imported.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

from batchapply_conformance._checks import (
    Check,
    Outcome,
    Outcomes,
    Target,
    describe_error,
    on_jax,
    reworded,
)

COLLECTIVE = re.compile(
    r"\b(all-gather|all-to-all|all-reduce|collective-permute|reduce-scatter)(?:-start)?\("
)
F, HIDDEN = 3, 5
PREFIXES = {
    "E22": "BatchApply: row_order='shard_major' cannot see the sharding of",
    "E23": "BatchApply: this row order needs communication",
    "E24": "BatchApply: `chunk_size` must be a multiple of the shard count",
    "E25": "BatchApply: chunk_size on a sharded batch needs row_order",
}


def _mesh(axis_type: str) -> Any:
    """Every device in a (2, n / 2) mesh ("x", "y") when n is even and at least 4, else (n,) ("d",)."""
    import jax
    from jax.sharding import AxisType

    n, kind = jax.device_count(), getattr(AxisType, axis_type)
    if n >= 4 and n % 2 == 0:
        return jax.make_mesh((2, n // 2), ("x", "y"), axis_types=(kind, kind))
    return jax.make_mesh((n,), ("d",), axis_types=(kind,))


def _layouts(mesh: Any) -> list[tuple[str, Any, tuple[int, int]]]:
    """(name, PartitionSpec of the leading dims (T, B), shard counts) of x [T, B, F] on ``mesh``:
    B cut over every device, T cut over every device, and (on two mesh axes) both cut."""
    from jax.sharding import PartitionSpec as P

    n, names = mesh.size, tuple(mesh.axis_names)
    every = names if len(names) > 1 else names[0]
    found = [("[T, B@all]", P(None, every), (1, n)), ("[T@all, B]", P(every, None), (n, 1))]
    if len(names) == 2:
        found.append(("[T@x, B@y]", P("x", "y"), (mesh.shape["x"], mesh.shape["y"])))
    return found


def _data(seed: int = 0) -> Any:
    """x [T, B, F] with T = n and B = 2 n: every layout divides it; 2 n local rows per device."""
    import jax
    import numpy as np

    n = jax.device_count()
    return np.random.default_rng(seed).normal(size=(n, 2 * n, F)).astype(np.float32)


def _put(data: Any, mesh: Any, leading: Any) -> Any:
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    return jax.device_put(data, NamedSharding(mesh, P(*leading, *(None,) * (data.ndim - len(leading)))))


@functools.cache
def _weights() -> Any:
    import numpy as np

    return np.random.default_rng(1).normal(size=(F, HIDDEN)).astype(np.float32)


def _f(rows: Any) -> Any:
    """Row-independent (its per-device program needs no collective)."""
    import jax.numpy as jnp

    return jnp.tanh(rows @ _weights())


def _tagged(rows: Any) -> Any:
    """Row-independent, but each output row carries its position in the rows f saw: the
    values show the row order and the chunks (BA-14.2, BA-14.9)."""
    import jax.numpy as jnp

    return _f(rows) + jnp.arange(rows.shape[0], dtype=rows.dtype)[:, None]


def _f_numpy(rows: Any) -> Any:
    import numpy as np

    return np.tanh(rows @ _weights())


def _tagged_numpy(rows: Any) -> Any:
    import numpy as np

    return _f_numpy(rows) + np.arange(rows.shape[0], dtype=np.float32)[:, None]


def _mixing(rows: Any) -> Any:
    """A cumulative sum over rows: the order of the rows shows in the values."""
    import jax.numpy as jnp

    return jnp.cumsum(_f(rows), axis=0)


def _mixing_numpy(rows: Any) -> Any:
    import numpy as np

    return np.cumsum(_f_numpy(rows), axis=0)


def _reference(f: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """The reference's output on the NumPy data (given the same shard counts)."""
    import batchapply_reference

    return batchapply_reference.BatchApply(f, **options)(*args)


def _values(got: Any, want: Any, what: str) -> Outcome | None:
    import numpy as np

    if np.allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4):
        return None
    return Outcome("fail", f"{what}: values differ from the reference's with the same shard counts")


def _compiled_locally(apply: Any, x: Any, where: str) -> Outcome | None:
    """A FAIL when the compiled ``apply(x)`` has a collective or not ``x``'s sharding, else None."""
    compiled = apply.lower(x).compile()
    found = COLLECTIVE.findall(compiled.as_text() or "")
    if found:
        return Outcome("fail", f"{where}: collectives {found}")
    if not compiled.output_shardings.is_equivalent_to(x.sharding, 3):
        return Outcome("fail", f"{where}: output sharding {compiled.output_shardings}")
    return None


def _raises(row: str, names: str, where: str, call: Callable[..., Any], *args: Any) -> Outcome | None:
    """None when ``call(*args)`` raises ValueError ``row`` naming ``names``, else a FAIL."""
    try:
        call(*args)
    except ValueError as e:
        if str(e).startswith(PREFIXES[row]) and names in str(e):
            return None
        worded = None if str(e).startswith(PREFIXES[row]) else reworded(e, "ValueError", PREFIXES[row])
        return Outcome(
            "fail", f"{where}: expected {row} naming {names}, got {describe_error(e)}", None, worded
        )
    except Exception as e:
        return Outcome("fail", f"{where}: expected ValueError {row}, got {describe_error(e)}")
    return Outcome("fail", f"{where}: no error ({row} expected)")


def _no_collectives(target: Target) -> Outcome:
    """BA-14.5 (and the order of BA-14.2): shard-major merges of every layout compile without a
    collective, keep the input's sharding, and give the reference's rows."""
    import jax

    data = _data()
    for axis_type in ("Auto", "Explicit"):
        mesh = _mesh(axis_type)
        for name, leading, counts in _layouts(mesh):
            # Under jit, Auto-axis tracers hide their sharding (E22): "shard_major" with Explicit only.
            for order in [counts, "shard_major"] if axis_type == "Explicit" else [counts]:
                where = f"{axis_type} axes, {name}, row_order={order!r}"
                with jax.set_mesh(mesh):
                    x = _put(data, mesh, leading)
                    apply = jax.jit(target.factory(_tagged, 2, row_order=order))
                    problem = _compiled_locally(apply, x, where)
                    if problem:
                        return problem
                    got = apply(x)
                problem = _values(got, _reference(_tagged_numpy, data, row_order=counts), where)
                if problem:
                    return problem
    return Outcome("pass")


def _explicit_c_order(target: Target) -> Outcome:
    """BA-14.6 with Explicit axes: the C order raises E23 where it would move rows (a leaf cut
    after its first leading dim), and merges where rows stay (cut on the first dim only)."""
    import jax

    data = _data()
    mesh = _mesh("Explicit")
    for name, leading, counts in _layouts(mesh):
        with jax.set_mesh(mesh):
            x = _put(data, mesh, leading)
            if all(s == 1 for s in counts[1:]):  # C order is local: no error, the C-order rows
                where = f"Explicit axes, {name}, C order (rows stay on their devices)"
                apply = jax.jit(target.factory(_tagged, 2))
                problem = _compiled_locally(apply, x, where) or _values(
                    apply(x), _reference(_tagged_numpy, data), where
                )
                if problem:
                    return problem
                continue
            for mode, wrap in (("jit", jax.jit), ("eager", lambda g: g)):
                where = f"Explicit axes, {name}, C order, {mode}"
                call = wrap(target.factory(_f, 2))
                problem = _raises("E23", "args[0]", where, call, x)
                if problem:
                    return problem
    return _explicit_leaves(target, mesh) or _explicit_outputs(target, mesh) or Outcome("pass")


def _explicit_leaves(target: Target, mesh: Any) -> Outcome | None:
    """A second leaf is merged in the first's shard-major order only where its rows stay local."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import PartitionSpec as P

    if len(mesh.axis_names) != 2:
        return None
    # The call's counts come from a [T@x, B@y] leaf. A second leaf cut only on T (or not at all)
    # keeps each device's rows in one block of the merged rows; one cut on B, or the other way
    # round, does not (E23, naming it).
    seconds = [(P("x", None), True), (P(None, None), True), (P(None, "y"), False), (P("y", "x"), False)]
    a_data, b_data = _data(0), _data(1)
    # One output, args[1]'s (a tuple would let a structure fault, BA-7.1, show here as well).
    apply = jax.jit(target.factory(lambda p, q: jnp.tanh(q), 2, row_order="shard_major"))
    for second, local in seconds:
        where = f"Explicit axes, args[0] [T@x, B@y], args[1] {second}, row_order='shard_major'"
        with jax.set_mesh(mesh):
            a, b = _put(a_data, mesh, P("x", "y")), _put(b_data, mesh, second)
            if not local:
                problem = _raises("E23", "args[1]", where, apply, a, b)
                if problem:
                    return problem
                continue
            compiled = apply.lower(a, b).compile()
            found = COLLECTIVE.findall(compiled.as_text() or "")
            if found:
                return Outcome("fail", f"{where}: collectives {found}")
            got = apply(a, b)
        if not got.sharding.is_equivalent_to(b.sharding, 3):
            return Outcome("fail", f"{where}: output sharding {got.sharding}, args[1]'s {b.sharding}")
        problem = _values(got, np.tanh(b_data), where)
        if problem:
            return problem
    return None


def _explicit_outputs(target: Target, mesh: Any) -> Outcome | None:
    """An output that f reshards so that its C-order split would move rows: E23, eagerly, on
    every call (the first and the repeated signature), with and without chunk_size."""
    import jax
    from jax.sharding import PartitionSpec as P

    n = mesh.size
    every = tuple(mesh.axis_names)
    # 6 n rows over n devices, 6 each, split into (3, 2 n): some device's rows straddle two rows of T.
    data = _data()[:3].reshape(3, 2 * n, F)
    for options in ({}, {"chunk_size": 2 * n}):
        if options and "chunk_size" not in target.options:
            continue
        with jax.set_mesh(mesh):
            x = _put(data, mesh, P(None, None))
            apply = target.factory(lambda r: jax.sharding.reshard(r, P(every, None)), 2, **options)
            for call in ("first", "second"):
                where = f"Explicit axes, f reshards its output, {options or 'no options'}, {call} call"
                problem = _raises("E23", "output", where, apply, x)
                if problem:
                    return problem
    return None


def _auto_values(target: Target) -> Outcome:
    """BA-14.7: under jit with Auto axes, every layout gives the reference's values (a
    cumulative sum over rows shows the order), in C order and with the counts."""
    import jax

    data = _data()
    mesh = _mesh("Auto")
    for name, leading, counts in _layouts(mesh):
        for order in ("C", counts):
            with jax.set_mesh(mesh):
                got = jax.jit(target.factory(_mixing, 2, row_order=order))(_put(data, mesh, leading))
            where = f"Auto axes, {name}, row_order={order!r}, a cumulative sum over rows"
            problem = _values(got, _reference(_mixing_numpy, data, row_order=order), where)
            if problem:
                return problem
    return Outcome("pass")


def _shard_map(target: Target) -> Outcome:
    """BA-14.8: inside jax.shard_map each device merges its own rows in C order, with
    row_order "C" and "shard_major": no collective, a cumulative sum per device's block."""
    import jax
    import numpy as np

    data = _data()
    for axis_type in ("Auto", "Explicit"):
        mesh = _mesh(axis_type)
        name, leading, counts = _layouts(mesh)[-1]  # cut on both leading dims where the mesh allows
        for order in ("C", "shard_major"):
            where = f"inside shard_map ({axis_type} axes, {name}, row_order={order!r})"
            with jax.set_mesh(mesh):
                apply = target.factory(_mixing, 2, row_order=order)
                body = jax.jit(jax.shard_map(apply, mesh=mesh, in_specs=leading, out_specs=leading))
                x = _put(data, mesh, leading)
                found = COLLECTIVE.findall(body.lower(x).compile().as_text() or "")
                if found:
                    return Outcome("fail", f"{where}: collectives {found}")
                got = np.asarray(body(x))
            t, b = data.shape[0] // counts[0], data.shape[1] // counts[1]
            for i in range(counts[0]):
                for j in range(counts[1]):
                    block = (slice(i * t, (i + 1) * t), slice(j * b, (j + 1) * b))
                    problem = _values(got[block], _reference(_mixing_numpy, data[block]), where)
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
        if str(e).startswith(PREFIXES["E22"]):
            return Outcome("pass")
        return Outcome(
            "fail", f"expected E22, got {describe_error(e)}", None, reworded(e, "ValueError", PREFIXES["E22"])
        )
    return Outcome(
        "fail", "row_order='shard_major' under jax.jit with an Auto axis of size 8 guessed an order"
    )


def _abstract(
    sizes: tuple[int, ...], types: tuple[str, ...], shape: tuple[int, ...], entries: tuple[Any, ...]
) -> Any:
    """An abstract input (no devices needed) on an abstract mesh of ``sizes`` named x, y, ..."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    names = ("x", "y", "z")[: len(sizes)]
    mesh = AbstractMesh(sizes, names, axis_types=tuple(getattr(AxisType, t) for t in types))
    return jax.ShapeDtypeStruct(shape, jnp.float32, sharding=NamedSharding(mesh, PartitionSpec(*entries)))


def _abstract_meshes(target: Target) -> Outcomes:
    """Section 14 traced abstractly under jax.jit (any device count): which tracers hide their
    counts (E22, BA-14.4), the counts their types show (E24 with chunk_size, BA-14.9), and
    which orders keep a cut leaf's rows local (E23, BA-14.6). Each failure is charged to its clause."""
    import jax

    # (clause, what, sizes, axis types, shape, spec entries, options, the error row or None)
    cases: list[tuple[str, str, Any, Any, Any, Any, dict[str, Any], str | None]] = [
        ("BA-14.4", "an Auto axis of size 2", (2,), ("Auto",), (2, 4, 3), (), {}, "E22"),
        ("BA-14.4", "an Auto axis of size 1", (1,), ("Auto",), (2, 4, 3), (), {}, None),
        ("BA-14.4", "an unsharded input, Explicit axis", (8,), ("Explicit",), (2, 4, 3), (), {}, None),
        ("BA-14.4", "Explicit x and Auto y", (2, 4), ("Explicit", "Auto"), (2, 4, 3), (), {}, "E22"),
        ("BA-14.4", "Auto axes of size 4 and 1", (4, 1), ("Auto", "Auto"), (2, 4, 3), (), {}, "E22"),
        (
            "BA-14.9",
            "B over an Explicit axis of 8",
            (8,),
            ("Explicit",),
            (2, 8, 3),
            (None, "x"),
            {"chunk_size": 4},
            "E24",
        ),
        (
            "BA-14.9",
            "B over Explicit axes 2 x 4",
            (2, 4),
            ("Explicit",) * 2,
            (2, 8, 3),
            (None, ("x", "y")),
            {"chunk_size": 4},
            "E24",
        ),
        (
            "BA-14.9",
            "B over an Explicit axis of 2",
            (2,),
            ("Explicit",),
            (2, 4, 3),
            (None, "x"),
            {"chunk_size": 3},
            "E24",
        ),
    ]
    found: list[Outcome] = []
    for clause, what, sizes, types, shape, entries, options, row in cases:
        if "chunk_size" in options and "chunk_size" not in target.options:
            continue
        x = _abstract(sizes, types, shape, entries)
        apply = jax.jit(target.factory(lambda r: r, 2, row_order="shard_major", **options))
        where = f"row_order='shard_major', {options or 'no chunk_size'}, under jax.jit, {what}"
        names = "" if row == "E24" else "args[0]"  # E24 names the counts, not a leaf
        problem = (
            _traces(apply, x, shape, where) if row is None else _raises(row, names, where, apply.trace, x)
        )
        if problem:
            found.append(dataclasses.replace(problem, charged=problem.charged or (clause,)))
    # Rows (4, 4) cut (2, 2) over Explicit axes: every order but shard-major moves rows (E23);
    # rows cut on the first leading dim only are in C order whatever the first count.
    cut_both = _abstract((2, 2), ("Explicit",) * 2, (4, 4, 3), ("x", "y"))
    cut_first = _abstract((2,), ("Explicit",), (8, 2, 3), ("x",))
    # T cut, B = 0 cut too: B's count is 1 (BA-14.12), the counts (2, 1), the empty result.
    no_rows = _abstract((2, 2), ("Explicit",) * 2, (4, 0, 3), ("x", "y"))
    apply = jax.jit(target.factory(lambda r: r * 2, 2, row_order="shard_major"))
    problem = _traces(apply, no_rows, no_rows.shape, "row_order='shard_major' under jax.jit, (4@x, 0@y, 3)")
    if problem:
        found.append(dataclasses.replace(problem, charged=problem.charged or ("BA-14.12",)))
    for x, order, row in [
        (cut_both, "C", "E23"),
        (cut_both, (2, 1), "E23"),
        (cut_both, (1, 2), "E23"),
        (cut_both, "shard_major", None),
        (cut_first, "C", None),
        (cut_first, (2, 1), None),
        (cut_first, (4, 1), None),
    ]:
        apply = jax.jit(target.factory(lambda r: r * 2, 2, row_order=order))
        where = f"row_order={order!r} under jax.jit, {x.sharding.spec} over Explicit axes {x.sharding.mesh}"
        problem = (
            _traces(apply, x, x.shape, where)
            if row is None
            else _raises(row, "args[0]", where, apply.trace, x)
        )
        if problem:
            found.append(dataclasses.replace(problem, charged=problem.charged or ("BA-14.6",)))
    return found or Outcome("pass")


def _traces(apply: Any, x: Any, shape: tuple[int, ...], where: str) -> Outcome | None:
    """None when ``apply`` traces on ``x`` to an output of ``shape``, else a FAIL."""
    try:
        got = apply.trace(x).out_info.shape
    except Exception as e:
        return Outcome("fail", f"{where}: raised {describe_error(e)}")
    return (
        None if tuple(got) == tuple(shape) else Outcome("fail", f"{where}: output shape {got}, want {shape}")
    )


def _zero_rows(target: Target) -> Outcome:
    """BA-14.12: a leading dim of size 0 cut over Explicit mesh axes holds no rows to place: its
    count is 1, and the call (C order or "shard_major", eagerly and under jit, with and without
    chunk_size) gives the empty result, not E23 (jax's own reshape refuses that dim)."""
    import jax
    import numpy as np

    mesh = _mesh("Explicit")
    name, leading, _ = _layouts(mesh)[0]  # B cut over every device
    data = np.zeros((2, 0, F), np.float32)
    options: list[dict[str, Any]] = [{}] + ([{"chunk_size": 3}] if "chunk_size" in target.options else [])
    for order in ("C", "shard_major"):
        for extra in options:
            for mode, wrap in (("eager", None), ("jit", jax.jit)):
                where = f"Explicit axes, {name}, B = 0, row_order={order!r}, {extra or 'unchunked'}, {mode}"
                call = target.factory(lambda r: r * 2, 2, row_order=order, **extra)
                with jax.set_mesh(mesh):
                    x = _put(data, mesh, leading)
                    try:
                        got = (wrap(call) if wrap else call)(x)
                    except Exception as e:
                        return Outcome("fail", f"{where}: raised {describe_error(e)}")
                if tuple(got.shape) != data.shape:
                    return Outcome("fail", f"{where}: output shape {got.shape}, want {data.shape}")
    return Outcome("pass")


def _counts_read_eagerly(target: Target) -> Outcome:
    """BA-14.4, BA-14.3: eagerly, "shard_major" reads the counts of the first sharded leaf (a
    replicated leaf comes first) and merges every leaf in that order; the output keeps the
    input's sharding."""
    import jax
    import numpy as np

    data = _data()
    mask = np.random.default_rng(2).normal(size=data.shape[:2] + (1,)).astype(np.float32)
    for axis_type in ("Auto", "Explicit"):
        mesh = _mesh(axis_type)
        name, leading, counts = _layouts(mesh)[-1]
        where = f"{axis_type} axes, eager, args[0] replicated, args[1] {name}, row_order='shard_major'"
        with jax.set_mesh(mesh):
            x, replicated = _put(data, mesh, leading), _put(mask, mesh, (None, None))
            got = target.factory(lambda w, r: _tagged(r) * w, 2, row_order="shard_major")(replicated, x)
        if not got.sharding.is_equivalent_to(x.sharding, 3):
            return Outcome("fail", f"{where}: output sharding {got.sharding}, input's {x.sharding}")
        want = _reference(lambda w, r: _tagged_numpy(r) * w, mask, data, row_order=counts)
        problem = _values(got, want, where)
        if problem:
            return problem
    return Outcome("pass")


def _chunk_cases(mesh: Any) -> list[tuple[str, Any, tuple[int, int], Any, int]]:
    """(name, leading spec, counts, data, chunk_size) for the local-chunk checks: every layout
    that cuts B, with 3 local rows of every shard per chunk (2 n local rows: a short last
    chunk); and B cut over every device with T = 5 and n / 2 local rows per chunk, so that
    (with 8 devices) the full chunks cover as many local rows as there are shards."""
    import jax

    n = jax.device_count()
    data = _data()
    found = [
        (name, leading, counts, data, 3 * n) for name, leading, counts in _layouts(mesh) if counts[1] > 1
    ]
    name, leading, counts = _layouts(mesh)[0]
    if n % 2 == 0:
        found.append((f"{name}, T = 5", leading, counts, _data()[:5], n // 2 * n))
    return found


def _chunks_stay_local(target: Target) -> Outcome:
    """BA-14.10, BA-14.9: chunks of local rows of every shard (a short last chunk), under jit
    and eagerly: no collective, the input's sharding, the chunks of BA-14.9 (f tags each row
    with its position in the chunk it saw)."""
    import jax

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    for axis_type in ("Auto", "Explicit"):
        mesh = _mesh(axis_type)
        for name, leading, counts, data, chunk in _chunk_cases(mesh):
            for mode in ("jit", "eager"):
                # Under jit, Auto-axis tracers hide their sharding (E22): pass the counts there.
                order: Any = counts if (axis_type, mode) == ("Auto", "jit") else "shard_major"
                where = f"{axis_type} axes, {mode}, {name}, row_order={order!r}, chunk_size={chunk}"
                apply = target.factory(_tagged, 2, row_order=order, chunk_size=chunk)
                with jax.set_mesh(mesh):
                    x = _put(data, mesh, leading)
                    if mode == "jit":
                        apply = jax.jit(apply)
                        problem = _compiled_locally(apply, x, where)
                        if problem:
                            return problem
                    got = apply(x)
                if not got.sharding.is_equivalent_to(x.sharding, 3):
                    return Outcome("fail", f"{where}: output sharding {got.sharding}, input's {x.sharding}")
                want = _reference(_tagged_numpy, data, row_order=counts, chunk_size=chunk)
                problem = _values(got, want, where)
                if problem:
                    return problem
    return Outcome("pass")


def _c_order_chunks(target: Target) -> Outcome:
    """BA-14.11: chunk_size with the C order on a visibly sharded batch raises E25 (eagerly, and
    under jit with Explicit axes); with N <= chunk_size there is no chunk to cut: no error."""
    import jax

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    data = _data()
    n = jax.device_count()
    for axis_type in ("Auto", "Explicit"):
        mesh = _mesh(axis_type)
        for name, leading, counts in _layouts(mesh):
            wraps = [("eager", None)] + ([("jit", jax.jit)] if axis_type == "Explicit" else [])
            with jax.set_mesh(mesh):
                x = _put(data, mesh, leading)
                for mode, wrap in wraps:
                    call = target.factory(_f, 2, chunk_size=n)
                    call = wrap(call) if wrap else call
                    where = f"{axis_type} axes, {mode}, {name}, chunk_size={n}"
                    problem = _raises("E25", "args[0]", where, call, x)
                    if problem:
                        return problem
                if axis_type == "Auto" or counts[1] == 1:  # one call, the C order as without chunk_size
                    where = f"{axis_type} axes, eager, {name}, chunk_size={data.shape[0] * data.shape[1]}"
                    try:
                        got = target.factory(_f, 2, chunk_size=data.shape[0] * data.shape[1])(x)
                    except Exception as e:
                        return Outcome("fail", f"{where}: N <= chunk_size raised {describe_error(e)}")
                    problem = _values(got, _reference(_f_numpy, data), where)
                    if problem:
                        return problem
    return Outcome("pass")


def _guarded(check: Callable[[Target], Outcomes], devices: int) -> Callable[[Target], Outcomes]:
    on_devices = on_jax(check, devices)

    def run(target: Target) -> Outcomes:
        if target.module.__name__ == "batchapply_reference":
            return Outcome("na", "needs tracers or several devices; the NumPy reference sees neither")
        if "row_order" not in target.options:
            return Outcome("na", "the target does not take row_order (SPEC section 14)")
        return on_devices(target)

    return run


def sharding_checks() -> Iterator[Check]:
    for name, clauses, check, devices in [
        ("shard_major under jit", ("BA-14.4",), _shard_major_under_jit, 1),
        ("shard_major counts, eager", ("BA-14.4", "BA-14.3"), _counts_read_eagerly, 2),
        ("abstract meshes", ("BA-14.4", "BA-14.6", "BA-14.9", "BA-14.12"), _abstract_meshes, 1),
        ("zero-size dim over Explicit axes", ("BA-14.12",), _zero_rows, 2),
        ("no collectives", ("BA-14.5",), _no_collectives, 2),
        ("explicit C order", ("BA-14.6",), _explicit_c_order, 2),
        ("auto values", ("BA-14.7",), _auto_values, 2),
        ("shard_map", ("BA-14.8",), _shard_map, 2),
        ("local chunks", ("BA-14.10",), _chunks_stay_local, 2),
        ("C-order chunks", ("BA-14.11",), _c_order_chunks, 2),
    ]:
        yield Check(name=f"sharding {name}", clauses=clauses, run=_guarded(check, devices), family="sharding")
