"""The SPEC error table (section 10): every row raises its type and prefix, in both packages."""

from __future__ import annotations

import pathlib
import re
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from batchapply_conformance._spec import error_table

SPEC = pathlib.Path(__file__).resolve().parents[1] / "SPEC.md"


def x() -> np.ndarray:
    return np.zeros((2, 3, 4))


def shard_major_under_jit(lib: types.ModuleType) -> Any:
    """E22: under jax.jit an Auto axis of size 8 could shard the tracer without its type showing it
    (traced abstractly, on any device count; without a mesh nothing is hidden: BA-14.4)."""
    import jax
    from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

    mesh = AbstractMesh((8,), ("x",), axis_types=(AxisType.Auto,))
    hidden = jax.ShapeDtypeStruct((2, 3, 4), np.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    return jax.jit(lib.BatchApply(lambda a: a, row_order="shard_major")).trace(hidden)


def c_order_on_explicit_sharded_batch(lib: types.ModuleType) -> Any:
    """E23: [T, B@d, F] with Explicit axes and the default C order (needs 2 or more devices)."""
    import jax
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((2,), ("d",), axis_types=(AxisType.Explicit,), devices=jax.devices()[:2])
    with jax.set_mesh(mesh):
        batch = jax.device_put(np.zeros((3, 4, 2)), NamedSharding(mesh, P(None, "d")))
        return jax.jit(lib.BatchApply(lambda a: a))(batch)


def chunks_of_symbolic_rows(lib: types.ModuleType) -> Any:
    """E18: jax.export with a symbolic leading dim and a chunk_size."""
    import jax
    from jax import export

    shape = export.symbolic_shape("t, 3, 4")
    return export.export(jax.jit(lib.BatchApply(lambda a: a, chunk_size=4)))(
        jax.ShapeDtypeStruct(shape, "f4")
    )


def c_order_chunks_of_a_sharded_batch(lib: types.ModuleType) -> Any:
    """E25: chunk_size with the C order on [T, B@d, F] (needs 2 or more devices)."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((2,), ("d",), devices=jax.devices()[:2])
    batch = jax.device_put(np.zeros((3, 4, 2)), NamedSharding(mesh, P(None, "d")))
    return lib.BatchApply(lambda a: a, chunk_size=4)(batch)


def deleted_input(lib: types.ModuleType) -> Any:
    """E28: a jax.Array deleted before the call."""
    import jax.numpy as jnp

    batch = jnp.zeros((2, 3, 4))
    batch.delete()
    return lib.BatchApply(lambda a: a)({"w": [batch]})


# One trigger per row: a call that must raise that row's error.
TRIGGERS: dict[str, Callable[[types.ModuleType], Any]] = {
    "E1": lambda lib: lib.BatchApply(42),
    "E2": lambda lib: lib.BatchApply(abs, num_dims=2.5),
    "E3": lambda lib: lib.BatchApply(abs, num_dims=0),
    "E4": lambda lib: lib.BatchApply(abs, out_axes=-1),
    "E5": lambda lib: lib.BatchApply(abs, in_axes="x"),
    "E6": lambda lib: lib.BatchApply(lambda a, b: a, in_axes=(0,))(x(), x()),
    "E7": lambda lib: lib.BatchApply(lambda a: a, in_axes=({"k": 0},))(x()),
    "E8": lambda lib: lib.BatchApply(lambda a: a, num_dims=2)(np.zeros(3), "text"),
    "E9": lambda lib: lib.BatchApply(lambda a, b: a)(np.zeros((2, 3)), np.zeros((3, 2))),
    "E10": lambda lib: lib.BatchApply(lambda a: a.sum())(x()),
    "E11": lambda lib: lib.BatchApply(lambda a: a, out_axes=(0, None))(x()),
    "E12": lambda lib: lib.split_leading_dim("abc", (2, 3)),
    "E13": lambda lib: lib.split_leading_dim(np.zeros((5, 2)), (2, 3)),
    "E20": lambda lib: lib.BatchApply(abs, row_order="F"),
    "E21": lambda lib: lib.BatchApply(lambda a: a, row_order=(1, 2))(x()),
    "E22": shard_major_under_jit,
    "E23": c_order_on_explicit_sharded_batch,
    "E24": lambda lib: lib.BatchApply(lambda a: a, row_order=(1, 3), chunk_size=4)(x()),
    "E25": c_order_chunks_of_a_sharded_batch,
    "E14": lambda lib: lib.BatchApply(abs, chunk_size=True),
    "E15": lambda lib: lib.BatchApply(abs, chunk_size=0),
    "E16": lambda lib: lib.BatchApply(lambda a: (a, a.sum()), out_axes=(0, None), chunk_size=4)(x()),
    "E17": lambda lib: lib.BatchApply(lambda a: a if len(a) == 4 else a[:, :1], chunk_size=4)(x()),
    "E18": chunks_of_symbolic_rows,
    "E26": lambda lib: lib.BatchApply(lambda a: a)({"m": np.matrix(np.zeros((2, 3)))}),
    "E27": lambda lib: lib.BatchApply(lambda a: a)([{1: x(), "a": x()}]),
    "E28": deleted_input,
    "E29": lambda lib: lib.split_leading_dim(np.matrix(np.zeros((4, 1))), (2, 2)),
    "E30": lambda lib: lib.merge_leading_dims(np.matrix(np.zeros((4, 1))), 2),
}

# Rows that bind `batchapply` only (SPEC BA-10.7): they need jax.export, a tracer, or Explicit
# mesh axes. E25 and E28 bind both packages on concrete arrays.
BATCHAPPLY_ONLY = {"E18", "E22", "E23"}
# Rows whose trigger needs several devices: run by tests/sharding/ (tests/test_sharding.py).
MULTI_DEVICE = {"E23", "E25"}


def skip_unless_runnable(lib: types.ModuleType, row: str) -> None:
    if row in BATCHAPPLY_ONLY and lib.__name__ != "batchapply":
        pytest.skip(f"{row} is `batchapply` only")
    if row in MULTI_DEVICE:
        import jax

        if jax.device_count() < 2:
            pytest.skip(f"{row} needs 2 or more devices: tests/test_sharding.py runs it on 8")


ROWS = sorted(TRIGGERS, key=lambda row: int(str(row)[1:]))


@pytest.mark.spec("BA-10.1")
def test_every_table_row_has_a_trigger() -> None:
    assert sorted(error_table()) == sorted(TRIGGERS), "SPEC error table and TRIGGERS disagree"


def test_batchapply_only_rows_are_the_specs() -> None:
    marked = {
        line.split(" | ")[0][2:] for line in SPEC.read_text().splitlines() if "`batchapply` only" in line
    }
    assert {row for row in marked if row.startswith("E")} == BATCHAPPLY_ONLY


@pytest.mark.spec("BA-10.1", "BA-10.2")
@pytest.mark.parametrize("row", ROWS)
def test_row_raises_its_type_and_prefix(lib: types.ModuleType, row: str) -> None:
    skip_unless_runnable(lib, row)
    type_name, prefix = error_table()[row]
    prefix = prefix.replace("{num_dims}", "2")
    with pytest.raises(Exception) as info:
        TRIGGERS[row](lib)
    assert type(info.value).__name__ == type_name, f"{row}: got {type(info.value).__name__}: {info.value}"
    assert str(info.value).startswith(prefix), f"{row}: {info.value}"


@pytest.mark.spec("BA-10.1")
@pytest.mark.parametrize("row", ROWS)
def test_both_packages_raise_the_same_message(row: str) -> None:
    import batchapply
    import batchapply_reference

    if row in BATCHAPPLY_ONLY:
        pytest.skip(f"{row} is `batchapply` only")
    messages = []
    for lib in (batchapply, batchapply_reference):
        with pytest.raises(Exception) as info:
            TRIGGERS[row](lib)
        messages.append((type(info.value), str(info.value)))
    # For E7 and E11 each side describes the mismatch in its own words after the path.
    if row in ("E7", "E11"):
        assert messages[0][0] is messages[1][0]
        where = "at args[0]: " if row == "E7" else "at output: "
        assert all(where in m for _, m in messages), messages
    else:
        assert messages[0] == messages[1]


# ---- issue 11, findings 3 and 13: each reproduction raises its row and names the leaf ----------


@pytest.mark.spec("BA-5.1", "BA-7.2", "BA-7.7", "BA-10.1")
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_matrix_output_raises_e26_naming_the_output(lib: types.ModuleType, chunk_size: int | None) -> None:
    """Finding 3: a (4, 1) matrix output was split to (2, 2); the reference gave (2, 2, 1)."""
    apply = lib.BatchApply(lambda a: {"m": np.matrix(np.ones((4, 1)))}, num_dims=2, chunk_size=chunk_size)
    with pytest.raises(
        TypeError, match=re.escape("BatchApply: cannot merge or split a numpy.matrix: output['m']")
    ):
        apply(np.zeros((2, 2, 3)))


@pytest.mark.spec("BA-5.1", "BA-5.8", "BA-1.2")
def test_matrix_that_is_not_merged_passes_through(lib: types.ModuleType) -> None:
    """A matrix is an array leaf; one that is not merged (rank below num_dims) reaches f as it is."""
    m = np.matrix(np.ones((2, 2)))
    seen = []

    def f(a: Any, b: Any) -> Any:
        seen.append(b)
        return a

    lib.BatchApply(f, num_dims=3)(np.zeros((2, 2, 2)), m)
    assert seen[0] is m


@pytest.mark.spec("BA-9.1", "BA-10.1")
def test_merge_leading_dims_of_a_matrix_raises(lib: types.ModuleType) -> None:
    with pytest.raises(TypeError, match=re.escape("merge_leading_dims: `x` must not be a numpy.matrix")):
        lib.merge_leading_dims(np.matrix(np.ones((2, 3))), 2)


@pytest.mark.spec("BA-1.3", "BA-10.1")
def test_mixed_key_dict_in_the_output_raises_e27_naming_it(lib: types.ModuleType) -> None:
    with pytest.raises(
        TypeError, match=re.escape("BatchApply: dict keys cannot be sorted: the dict at output[0]")
    ):
        lib.BatchApply(lambda a: [{1: a, "a": a}])(x())


@pytest.mark.spec("BA-10.1")
@pytest.mark.parametrize("chunk_size", [None, 2, 6])
def test_deleted_input_raises_e28_with_chunks(chunk_size: int | None) -> None:
    import jax.numpy as jnp

    import batchapply

    batch = jnp.zeros((2, 3, 4))
    batch.delete()
    with pytest.raises(ValueError, match=re.escape("BatchApply: input array has been deleted: kwargs['b']")):
        batchapply.BatchApply(lambda a, b: a, chunk_size=chunk_size)(x(), b=batch)


@pytest.mark.spec("BA-5.8")
@pytest.mark.parametrize("num_dims", [1, 2])
def test_matrix_is_never_merged_even_when_the_merge_keeps_its_shape(
    lib: types.ModuleType, num_dims: int
) -> None:
    """Audit C12: with num_dims=1 the merge is the identity; a matrix still raises E26."""
    with pytest.raises(
        TypeError, match=re.escape("BatchApply: cannot merge or split a numpy.matrix: args[0]")
    ):
        lib.BatchApply(lambda a: a, num_dims=num_dims)(np.matrix(np.zeros((2, 3))))
