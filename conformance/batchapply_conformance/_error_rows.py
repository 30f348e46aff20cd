"""One check per row of SPEC's error table (E1 to E29), named by its row.

Each check makes a few calls that the row forbids and wants the row's exception type
and message prefix (:func:`batchapply_conformance._spec.error_table`). A row about an
option the target does not take (probed: :func:`_checks.probe_options`), or a helper it
does not export, is N/A; the rows that need JAX tracers or several devices are N/A for
the NumPy reference, which does not trace, and NOT RUN where jax sees too few devices.
The hypothesis error-parity check (:mod:`_properties`) draws more calls of rows E1 to E13.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from batchapply_conformance import _spec
from batchapply_conformance._checks import Check, Outcome, Target, describe_error, reworded, without_escapes

Attempt = Callable[[Target], Any]
"""A call that must raise the row's error (it gets the target and returns what it got)."""


def _np() -> Any:
    import numpy as np

    return np


def _x(*shape: int) -> Any:
    np = _np()
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


def _identity(*args: Any, **kwargs: Any) -> Any:
    return args[0] if len(args) == 1 and not kwargs else (args, kwargs)


def _make(t: Target, *args: Any, **kwargs: Any) -> Any:
    return t.factory(*args, **kwargs)


def _mlp_sharded(axis_type: str) -> tuple[Any, Any, Any]:
    import jax
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    n = jax.device_count()
    mesh = jax.make_mesh((n,), ("d",), axis_types=(getattr(AxisType, axis_type),))
    x = jax.device_put(_x(4, 2 * n, 3), NamedSharding(mesh, P(None, "d", None)))
    return mesh, x, n


def _e18(t: Target) -> Any:
    import jax
    import jax.numpy as jnp
    from jax import export

    spec = jax.ShapeDtypeStruct(export.symbolic_shape("t, b, 3"), jnp.float32)
    return export.export(jax.jit(t.factory(lambda r: r * 2, 2, chunk_size=5)))(spec)


def _e22(t: Target) -> Any:
    import jax
    import jax.numpy as jnp
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    # An Auto axis of size 8 could shard the traced input unseen (BA-14.4); traced abstractly,
    # so any device count will do. Without a mesh nothing is hidden and E22 does not apply.
    mesh = AbstractMesh((8,), ("x",), axis_types=(AxisType.Auto,))
    hidden = jax.ShapeDtypeStruct((2, 3, 4), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    return jax.jit(t.factory(lambda r: r, 2, row_order="shard_major")).trace(hidden)


def _e23(t: Target) -> Any:
    import jax

    mesh, x, _ = _mlp_sharded("Explicit")
    with jax.set_mesh(mesh):
        return t.factory(lambda r: r, 2, in_axes=(0,))(x)


def _e25(t: Target) -> Any:
    import jax

    mesh, x, n = _mlp_sharded("Auto")
    with jax.set_mesh(mesh):
        return t.factory(lambda r: r, 2, chunk_size=n)(x)


def _e28(t: Target) -> Any:
    import jax.numpy as jnp

    x = jnp.zeros((2, 3, 4))
    x.delete()
    return t.factory(lambda r: r, 2)(x)


class _Skip(Exception):
    """An attempt that does not apply to this target (it lacks an option the attempt needs)."""


def _e28_chunked(t: Target) -> Any:
    import jax.numpy as jnp

    if "chunk_size" not in t.options:
        raise _Skip
    x = jnp.zeros((4, 3))
    x.delete()
    return t.factory(lambda r: r, 1, chunk_size=2)(x)


def _e17(t: Target) -> Any:
    seen: list[int] = []

    def f(rows: Any) -> Any:  # the second chunk's output has another dtype
        seen.append(1)
        return rows.astype("float32" if len(seen) == 1 else "int32")

    return t.factory(f, 2, chunk_size=2)(_x(1, 5, 3))


def _e17_counted(t: Target) -> Any:
    """E17 with shard counts of 2 (BA-14.9's chunks: local rows of every shard)."""
    if "row_order" not in t.options:
        raise _Skip
    seen: list[int] = []

    def f(rows: Any) -> Any:
        seen.append(1)
        return rows.astype("float32" if len(seen) == 1 else "int32")

    return t.factory(f, 2, chunk_size=2, row_order=(1, 2))(_x(1, 4, 3))


def _e29_merge(t: Target) -> Any:
    """``merge_leading_dims`` raises E29's type, naming itself (BA-9.1)."""
    if not hasattr(t.module, "merge_leading_dims"):
        raise _Skip
    try:
        t.api().merge_leading_dims(_matrix(), 2)
    except TypeError as e:
        if str(e).startswith("merge_leading_dims: `x` must not be a numpy.matrix"):
            raise TypeError(
                "split_leading_dim: `x` must not be a numpy.matrix (as merge_leading_dims)"
            ) from e
        raise
    return None


def _matrix() -> Any:
    return _np().matrix(_x(2, 3))


def _needs_jax() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


# row -> (what the target needs, the attempts). Needs: an option name, "helper:<name>",
# "jax" (jax installed), "trace" (a JAX target: N/A for the NumPy reference), "devices" (2 or more).
ROWS: dict[str, tuple[tuple[str, ...], tuple[Attempt, ...]]] = {
    "E1": ((), (lambda t: _make(t, 42, 2), lambda t: _make(t, None, 2), lambda t: _make(t, "f", 2))),
    "E2": (
        (),
        (
            lambda t: _make(t, _identity, 2.0),
            lambda t: _make(t, _identity, True),
            lambda t: _make(t, _identity, "2"),
        ),
    ),
    "E3": ((), (lambda t: _make(t, _identity, 0), lambda t: _make(t, _identity, -1))),
    "E4": (
        ("in_axes", "out_axes"),
        (
            lambda t: _make(t, _identity, 2, in_axes=(1,)),
            lambda t: _make(t, _identity, 2, out_axes=1),
            lambda t: _make(t, _identity, 2, in_axes=({"a": 2},)),
        ),
    ),
    "E5": (
        ("in_axes",),
        (lambda t: _make(t, _identity, 2, in_axes={"a": 0}), lambda t: _make(t, _identity, 2, in_axes="0")),
    ),
    "E6": (
        ("in_axes",),
        (
            lambda t: _make(t, _identity, 2, in_axes=(0, None))(_x(2, 3, 4)),
            lambda t: _make(t, _identity, 2, in_axes=(0,))(_x(2, 3, 4), _x(2, 3, 4)),
        ),
    ),
    "E7": (
        ("in_axes",),
        (
            lambda t: _make(t, _identity, 2, in_axes=({"a": 0},))(_x(2, 3, 4)),
            lambda t: _make(t, _identity, 2, in_axes=([0, 0],))([_x(2, 3, 4)]),
        ),
    ),
    "E8": ((), (lambda t: _make(t, _identity, 3)(_x(2, 3)), lambda t: _make(t, _identity, 2)(_x(4), 5))),
    "E9": (
        (),
        (
            lambda t: _make(t, _identity, 2)(_x(2, 3, 4), _x(3, 2, 4)),
            lambda t: _make(t, _identity, 2)(x=_x(2, 3), y=_x(2, 4, 1)),
        ),
    ),
    "E10": (
        (),
        (
            lambda t: _make(t, lambda r: r.sum(), 2)(_x(2, 3, 4)),
            lambda t: _make(t, lambda r: r[:1], 2)(_x(2, 3, 4)),
        ),
    ),
    "E11": (("out_axes",), (lambda t: _make(t, lambda r: r, 2, out_axes={"a": 0})(_x(2, 3, 4)),)),
    "E12": (("helper:split_leading_dim",), (lambda t: t.api().split_leading_dim("x", (2, 3)),)),
    "E13": (
        ("helper:split_leading_dim",),
        (
            lambda t: t.api().split_leading_dim(_x(5, 2), (2, 3)),
            lambda t: t.api().split_leading_dim(_x(6, 2), (4, -1)),
            lambda t: t.api().split_leading_dim(_x(0, 2), (0, -1)),
            lambda t: t.api().split_leading_dim(_x(6, 2), (-1, -1)),
        ),
    ),
    "E14": (
        ("chunk_size",),
        (
            lambda t: _make(t, _identity, 2, chunk_size=2.0),
            lambda t: _make(t, _identity, 2, chunk_size=True),
            lambda t: _make(t, _identity, 2, chunk_size="2"),
        ),
    ),
    "E15": (
        ("chunk_size",),
        (lambda t: _make(t, _identity, 2, chunk_size=0), lambda t: _make(t, _identity, 2, chunk_size=-3)),
    ),
    "E16": (
        ("chunk_size",),
        (
            lambda t: _make(t, lambda r: (r, 1), 2, chunk_size=2)(_x(2, 3, 4)),
            lambda t: _make(t, lambda r: {"a": r, "s": "x"}, 2, chunk_size=2)(_x(2, 3, 4)),
        ),
    ),
    "E17": (("chunk_size",), (_e17, _e17_counted)),
    "E18": (("chunk_size", "trace"), (_e18,)),
    "E20": (
        ("row_order",),
        (
            lambda t: _make(t, _identity, 2, row_order="F"),
            lambda t: _make(t, _identity, 2, row_order=(1,)),
            lambda t: _make(t, _identity, 2, row_order=(0, 1)),
        ),
    ),
    "E21": (("row_order",), (lambda t: _make(t, _identity, 2, row_order=(3, 1))(_x(2, 3, 4)),)),
    "E22": (("row_order", "trace"), (_e22,)),
    "E23": (("in_axes", "trace", "devices"), (_e23,)),
    "E24": (
        ("row_order", "chunk_size"),
        (lambda t: _make(t, _identity, 2, row_order=(2, 1), chunk_size=3)(_x(2, 3, 4)),),
    ),
    "E25": (("chunk_size", "trace", "devices"), (_e25,)),
    "E26": (
        (),
        (
            lambda t: _make(t, _identity, 2)(_matrix()),
            lambda t: _make(t, lambda r: _np().matrix(_x(6, 1)), 2)(_x(2, 3, 4)),
        ),
    ),
    "E27": (
        (),
        (
            lambda t: _make(t, _identity, 2)({1: _x(2, 3), "a": _x(2, 3)}),
            lambda t: _make(t, _identity, 2)(_x(2, 3), [_x(2, 3), {1: _x(2, 3), "a": _x(2, 3)}]),
            lambda t: _make(t, lambda r: {1: r, "a": r}, 2)(_x(2, 3, 4)),
        ),
    ),
    "E28": (("jax", "trace"), (_e28, _e28_chunked)),
    "E29": (
        ("helper:split_leading_dim",),
        (lambda t: t.api().split_leading_dim(_matrix(), (1, 2)), _e29_merge),
    ),
}
"""The attempts of each row (E19 is withdrawn) and what the target needs for them to apply."""

_CLAUSE_REF = re.compile(r"BA-\d+\.\d+")


def row_clauses(row: str) -> tuple[str, ...]:
    """BA-10.1 and the clauses the row's cause cites in SPEC's error table."""
    for line in _spec.spec_text().splitlines():
        if line.startswith(f"| {row} |"):
            cause = line.split("|")[2]
            return ("BA-10.1", *dict.fromkeys(_CLAUSE_REF.findall(cause)))
    return ("BA-10.1",)


def _applies(target: Target, needs: tuple[str, ...]) -> Outcome | None:
    for need in needs:
        if need.startswith("helper:") and not hasattr(target.module, need.split(":", 1)[1]):
            return Outcome("na", f"the target's module has no `{need.split(':', 1)[1]}`")
        if need in ("in_axes", "out_axes", "chunk_size", "row_order") and need not in target.options:
            return Outcome("na", f"the target does not take {need}")
        if need in ("jax", "trace", "devices") and not _needs_jax():
            return Outcome("na", "jax is not installed")
        if need == "trace" and target.module.__name__ == "batchapply_reference":
            return Outcome("na", "a row of JAX implementations; the NumPy reference does not trace")
        if need == "devices":
            import jax

            if jax.device_count() < 2:
                return Outcome(
                    "not_run",
                    f"needs 2 or more devices, jax sees {jax.device_count()}: on a CPU, set "
                    "XLA_FLAGS=--xla_force_host_platform_device_count=8 before jax starts (the CLI does)",
                )
    return None


def _row_check(row: str) -> Callable[[Target], Outcome]:
    needs, attempts = ROWS[row]

    def run(target: Target) -> Outcome:
        skipped = _applies(target, needs)
        if skipped is not None:
            return skipped
        type_name, prefix = _spec.error_table()[row]
        wanted = f"{type_name} starting {prefix!r} (SPEC row {row})"
        for i, attempt in enumerate(attempts):
            try:
                attempt(target)
            except _Skip:
                continue
            except Exception as e:
                filled = prefix.replace("{num_dims}", str(3 if row == "E8" and i == 0 else 2))
                if type(e).__name__ == type_name and str(e).startswith(filled):
                    continue
                got = describe_error(e)
                return Outcome(
                    "fail",
                    f"attempt {i + 1}: expected {wanted}, got {got}",
                    {"expected": wanted, "got": got, "attempt": i + 1},
                    reworded(e, type_name, filled),
                )
            return Outcome(
                "fail",
                f"attempt {i + 1}: expected {wanted}, got no error",
                {"expected": wanted, "got": "no error", "attempt": i + 1},
                without_escapes(_charged(row, needs)),
            )
        return Outcome("pass")

    return run


def error_row_checks() -> Iterator[Check]:
    """One check per row of the error table, ``error row E28`` and so on."""
    for row, (needs, _) in ROWS.items():
        clauses = _charged(row, needs)
        yield Check(name=f"error row {row}", clauses=clauses, run=_row_check(row), family="golden")


def _charged(row: str, needs: tuple[str, ...]) -> tuple[str, ...]:
    """The row's clauses, less those of section 13 when its attempts pass no ``chunk_size``
    (E10 is BA-7.3's; its per-chunk case, BA-13.6, is only seen with chunks)."""
    clauses = row_clauses(row)
    if "chunk_size" in needs:
        return clauses
    unchunked = tuple(c for c in clauses if not c.startswith("BA-13."))
    return unchunked if len(unchunked) > 1 else clauses
