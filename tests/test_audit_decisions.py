"""SPEC draft 3: the decisions on the editor's audit of 2026-12-07, pinned in both packages.

Each test names its finding (C1, A1, N1, ...) from ../shared/spec-audit-2026-12-07.md. The
decisions that NumPy can express are golden cases too (tests/golden/corpus.py, groups
``error_order`` and ``audit_decisions``); those that need several devices are in
tests/sharding/check_audit_decisions.py, run below in a child process.

64-bit values are compared as float64 explicitly: under NumPy 2 a Python float is weak, so
``float32_array == 2.0**40 + 1`` compares in float32 and says True.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import threading
import types
from typing import Any

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batchapply
import batchapply_reference
from tests.sharding.common import run_processes


def x() -> np.ndarray:
    return np.arange(24.0).reshape(2, 3, 4)


def noting(seen: list[Any], value: Any, result: Any) -> Any:
    """``result``, after appending ``value`` to ``seen`` (for lambdas that record what f got)."""
    seen.append(value)
    return result


def row_of(error: BaseException) -> str:
    """The SPEC error row whose prefix ``error`` starts with."""
    from batchapply_conformance._spec import error_table

    for row, (type_name, prefix) in error_table().items():
        if type(error).__name__ == type_name and str(error).startswith(prefix.split("{")[0]):
            return row
    return f"{type(error).__name__}: {error}"


def deleted(shape: tuple[int, ...]) -> jax.Array:
    a = jnp.ones(shape)
    a.delete()
    return a


def nest(leaf: Any, depth: int) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# ---- C1: JAX's registry makes the containers, in both packages (BA-1.3) ----------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Box:
    v: Any


@pytest.mark.spec("BA-1.3")
def test_types_registered_only_with_jax_are_containers(lib: types.ModuleType) -> None:
    seen: dict[str, Any] = {}

    def f(a: Any, b: Any, p: Any) -> Any:
        seen.update(b=b, p=p)
        return a

    lib.BatchApply(f)(x(), Box(np.ones((2, 3, 5))), jax.tree_util.Partial(np.add, np.ones((2, 3, 5))))
    assert type(seen["b"]) is Box and seen["b"].v.shape == (6, 5)
    assert type(seen["p"]) is jax.tree_util.Partial and seen["p"].args[0].shape == (6, 5)
    # A prefix of the same node type (BA-4.4): Box(None) passes its leaf through.
    out = lib.BatchApply(lambda a, b: b, in_axes=(0, Box(None)), out_axes=None)(x(), Box(np.ones((7, 5))))
    assert type(out) is Box and out.v.shape == (7, 5)


@pytest.mark.spec("BA-1.3")
def test_flax_frozendict_is_a_container(lib: types.ModuleType) -> None:
    flax_core = pytest.importorskip("flax.core")
    params = flax_core.FrozenDict(w=np.ones((2, 3, 5)), b=np.ones(5))
    seen: list[Any] = []
    out = lib.BatchApply(lambda d: noting(seen, d, d), out_axes=flax_core.FrozenDict(w=0, b=None))(params)
    assert (
        type(seen[0]) is flax_core.FrozenDict and seen[0]["w"].shape == (6, 5) and seen[0]["b"] is params["b"]
    )
    assert type(out) is flax_core.FrozenDict and out["w"].shape == (2, 3, 5) and out["b"] is params["b"]


# ---- A1: keys that are only partly ordered (BA-1.3, BA-4.4) ---------------------------------


@pytest.mark.spec("BA-1.3", "BA-4.4")
def test_dict_keys_in_another_stable_sorted_order_do_not_match(lib: types.ModuleType) -> None:
    """The reference used to pair children by position: it merged the unbatched leaf."""
    k1, k2 = frozenset({1}), frozenset({2})  # neither k1 < k2 nor k2 < k1
    arg = {k1: x(), k2: np.zeros((7, 5))}
    with pytest.raises(ValueError, match=re.escape("BatchApply: `in_axes` is not a pytree prefix")):
        lib.BatchApply(lambda d: d, in_axes=({k2: None, k1: 0},), out_axes=None)(arg)
    seen: dict[Any, tuple[int, ...]] = {}
    same_order = {k1: 0, k2: None}
    lib.BatchApply(
        lambda d: seen.update({k: v.shape for k, v in d.items()}), in_axes=(same_order,), out_axes=None
    )(arg)
    assert seen == {k1: (6, 4), k2: (7, 5)}


# ---- C2: the error order (BA-10.3 to BA-10.6) -------------------------------------------------

BAD = {1: x(), "a": x()}  # keys that cannot be sorted: E27


ORDER_CASES: dict[str, tuple[Any, str]] = {
    "E27-before-E4": (lambda lib: lib.BatchApply(abs, out_axes={1: 5, "a": 0}), "E27"),
    "E27-before-E6": (lambda lib: lib.BatchApply(lambda *a: a[0], in_axes=(0,))(x(), BAD), "E27"),
    "E27-before-E7": (
        lambda lib: lib.BatchApply(lambda a, b: a, in_axes=({"b": 0}, 0))({"a": x()}, BAD),
        "E27",
    ),
    "E27-before-E11-output": (
        lambda lib: lib.BatchApply(lambda a: ({"a": a}, {1: a, "b": a}), out_axes=({"b": 0}, 0))(x()),
        "E27",
    ),
    "E27-before-E11-chunk-output": (
        lambda lib: lib.BatchApply(
            lambda a: ({"a": a}, {1: a, "b": a}), out_axes=({"b": 0}, 0), chunk_size=2
        )(x()),
        "E27",
    ),
    "E9-before-E28-deleted-first": (
        lambda lib: lib.BatchApply(lambda a, b: a)(deleted((2, 3, 4)), jnp.ones((5, 3, 4))),
        "E9",
    ),
    "E9-before-E28-deleted-second": (
        lambda lib: lib.BatchApply(lambda a, b: a)(jnp.ones((5, 3, 4)), deleted((2, 3, 4))),
        "E9",
    ),
    "E9-before-E28-num_dims-1": (
        lambda lib: lib.BatchApply(lambda a, b: a, num_dims=1)(deleted((2, 3)), jnp.ones((5, 3))),
        "E9",
    ),
    "E28-before-E21": (lambda lib: lib.BatchApply(lambda a: a, row_order=(1, 3))(deleted((2, 4, 1))), "E28"),
    "E28-before-E24": (
        lambda lib: lib.BatchApply(lambda a: a, row_order=(1, 2), chunk_size=3)(deleted((2, 4, 1))),
        "E28",
    ),
    "E28-chunked": (lambda lib: lib.BatchApply(lambda a: a, chunk_size=3)(deleted((2, 4, 1))), "E28"),
    "E16-before-E10": (
        lambda lib: lib.BatchApply(lambda a: (a[:1], "s"), chunk_size=2, out_axes=(0, 0))(x()),
        "E16",
    ),
    "E10-before-E17": (
        lambda lib: lib.BatchApply(lambda a: a[:1] if len(a) < 4 else a, chunk_size=4)(x()),
        "E10",
    ),
}


@pytest.mark.spec("BA-10.3", "BA-10.4", "BA-10.5", "BA-10.6", "BA-5.9", "BA-10.7")
@pytest.mark.parametrize("case", sorted(ORDER_CASES))
def test_the_first_row_in_the_order_is_raised(lib: types.ModuleType, case: str) -> None:
    call, row = ORDER_CASES[case]
    with pytest.raises((TypeError, ValueError)) as info:
        call(lib)
    assert row_of(info.value) == row


@pytest.mark.spec("BA-10.4")
def test_f_is_not_called_when_an_input_error_applies(lib: types.ModuleType) -> None:
    calls: list[int] = []
    with pytest.raises(ValueError, match="BatchApply: input array has been deleted"):
        lib.BatchApply(lambda a: calls.append(1), chunk_size=1)(deleted((2, 3, 1)))
    assert calls == []


# ---- C5: E24 whatever N is (BA-13.2) ----------------------------------------------------------


@pytest.mark.spec("BA-13.2", "BA-14.9")
def test_e24_applies_when_every_row_fits_one_chunk(lib: types.ModuleType) -> None:
    calls: list[int] = []
    with pytest.raises(
        ValueError, match=re.escape("BatchApply: `chunk_size` must be a multiple of the shard count")
    ):
        lib.BatchApply(lambda y: calls.append(1), chunk_size=5, row_order=(1, 2))(np.zeros((2, 2, 2)))
    assert calls == []
    seen: list[int] = []
    lib.BatchApply(lambda y: noting(seen, len(y), y), chunk_size=6, row_order=(1, 2))(np.zeros((2, 2, 2)))
    assert seen == [4]


# ---- C6: 64-bit chunk outputs (BA-13.8) -------------------------------------------------------


@pytest.mark.spec("BA-13.8", "BA-5.6")
@pytest.mark.parametrize("numpy_first", [True, False])
def test_numpy_and_jax_64_bit_chunk_outputs_keep_their_values(
    lib: types.ModuleType, numpy_first: bool
) -> None:
    big = 2.0**40 + 1
    with jax.enable_x64(True):
        j64 = jnp.full((2, 1), big, dtype=jnp.float64)
    calls = [0]

    def f(y: Any) -> Any:
        calls[0] += 1
        return np.full((2, 1), big) if (calls[0] == 1) == numpy_first else j64

    out = lib.BatchApply(f, chunk_size=2)(np.zeros((2, 2, 1)))
    assert isinstance(out, jax.Array) and out.dtype == np.float64
    assert (np.asarray(out, dtype=np.float64) == np.float64(big)).all()  # compared in float64


# ---- N1: E27 at depth 500 (BA-1.5, BA-1.7) ----------------------------------------------------


@pytest.mark.spec("BA-1.5", "BA-1.7")
def test_e27_at_depth_500_leaves_the_process_usable(lib: types.ModuleType) -> None:
    """batchapply raised RecursionError, and every later deep call SystemError: jax's flatten
    leaks one level of the recursion budget per container above a dict it fails to sort."""
    for _ in range(3):
        with pytest.raises(
            TypeError, match=re.escape("BatchApply: dict keys cannot be sorted: the dict at args[1][0]")
        ):
            lib.BatchApply(lambda a, b: a)(x(), nest({1: x(), "a": x()}, 500))
    out = lib.BatchApply(lambda a: a)(nest(x(), 500))
    assert type(out) is list
    depth = [0]

    def deeper() -> None:
        depth[0] += 1
        deeper()

    with pytest.raises(RecursionError):
        deeper()
    assert depth[0] > 500  # the recursion budget is intact


@pytest.mark.spec("BA-1.7", "BA-9.4")
@pytest.mark.parametrize(
    "call",
    [
        lambda lib: lib.arbitrary_mergeable_leaf(2, (BAD,), {}),
        lambda lib: lib.arbitrary_mergeable_leaf(2, (), {"k": [BAD]}),
        lambda lib: lib.BatchApply(abs, in_axes=({1: 0, "a": None},)),
        lambda lib: lib.BatchApply(abs, out_axes=[{1: 0, "a": None}]),
    ],
    ids=["helper-args", "helper-kwargs", "in_axes", "out_axes"],
)
def test_e27_outside_the_inputs_names_the_dict(lib: types.ModuleType, call: Any) -> None:
    with pytest.raises(
        TypeError,
        match=r"BatchApply: dict keys cannot be sorted: the dict at "
        r"(args\[0\]|kwargs\['k'\]\[0\]|in_axes\[0\]|out_axes\[0\]) ",
    ):
        call(lib)


# ---- G1: key order of rebuilt dicts (BA-7.6) --------------------------------------------------


@pytest.mark.spec("BA-7.6")
def test_rebuilt_dicts_have_sorted_keys(lib: types.ModuleType) -> None:
    seen: list[list[str]] = []

    def f(d: dict[str, Any]) -> dict[str, Any]:
        seen.append(list(d))
        return {"b": d["z"], "a": "label"}

    out = lib.BatchApply(f)({"z": x(), "m": 1})
    assert seen == [["m", "z"]] and list(out) == ["a", "b"]


# ---- A4: 'the same result' under a transformation (BA-8.7) -----------------------------------


@pytest.mark.spec("BA-8.7", "BA-8.1")
def test_jit_gives_the_hand_written_jitted_result_bit_for_bit() -> None:
    z = jax.random.normal(jax.random.key(1), (4, 37, 300))

    def f(y: jax.Array) -> jax.Array:  # a layer norm: row-independent, reassociated by XLA
        return (y - y.mean(-1, keepdims=True)) / jnp.sqrt(y.var(-1, keepdims=True) + 1e-5)

    got = jax.jit(batchapply.BatchApply(f))(z)
    hand = jax.jit(lambda t: f(t.reshape(148, 300)).reshape(t.shape))(z)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(hand))
    np.testing.assert_allclose(np.asarray(got), np.asarray(batchapply.BatchApply(f)(z)), rtol=1e-4, atol=1e-5)


# ---- C7: the chunked E10 message (BA-13.6) ----------------------------------------------------


@pytest.mark.spec("BA-13.6", "BA-7.3")
def test_chunked_e10_suggests_computing_outside_f_not_out_axes_none(lib: types.ModuleType) -> None:
    f = lambda y: (y, y.sum(0))  # noqa: E731
    with pytest.raises(ValueError, match="BatchApply: cannot split output") as info:
        lib.BatchApply(f, chunk_size=4)(x())
    assert "outside f" in str(info.value) and "out_axes=None" not in str(info.value)
    with pytest.raises(ValueError, match="BatchApply: cannot split output") as info:
        lib.BatchApply(f)(x())
    assert "out_axes=None" in str(info.value)


# ---- U1: bit for bit for an elementwise f (BA-13.5) ------------------------------------------


@pytest.mark.spec("BA-13.5")
@pytest.mark.parametrize("chunk_size", [1, 4, 5])
def test_elementwise_f_is_bit_for_bit_whatever_the_chunks(lib: types.ModuleType, chunk_size: int) -> None:
    z = np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32)
    f = lambda y: np.tanh(y) * np.float32(3) + np.float32(1)  # noqa: E731
    np.testing.assert_array_equal(lib.BatchApply(f, chunk_size=chunk_size)(z), lib.BatchApply(f)(z))


# ---- C9, C11: how often f is called (BA-6.1, BA-1.6) ------------------------------------------


@pytest.mark.spec("BA-6.1", "BA-1.6", "BA-13.4")
@pytest.mark.parametrize("chunk_size, calls", [(None, 1), (1000, 10), (3000, 4)])
def test_f_is_called_once_or_once_per_chunk(
    lib: types.ModuleType, chunk_size: int | None, calls: int
) -> None:
    seen: list[int] = []
    lib.BatchApply(lambda y: noting(seen, len(y), y), chunk_size=chunk_size)(np.zeros((100, 100, 0)))
    assert len(seen) == calls and sum(seen) == 10_000


# ---- C10: the linen and nnx wrappers take all six options (BA-12.1, BA-12.4) -----------------


@pytest.mark.spec("BA-12.1", "BA-12.4")
def test_wrappers_return_what_batchapply_returns_with_all_six_options() -> None:
    from batchapply import linen, nnx

    f = lambda y: y - y.mean(0)  # noqa: E731  mixes rows: chunk_size changes the result
    z = jnp.arange(8.0).reshape(2, 4, 1)
    want = batchapply.BatchApply(f, chunk_size=2)(z)
    np.testing.assert_array_equal(
        np.asarray(linen.BatchApply(f, chunk_size=2).apply({}, z)), np.asarray(want)
    )
    np.testing.assert_array_equal(np.asarray(nnx.BatchApply(f, chunk_size=2)(z)), np.asarray(want))
    assert not np.array_equal(np.asarray(want), np.asarray(batchapply.BatchApply(f)(z)))


# ---- A5: weak type in E17 (BA-13.7) -----------------------------------------------------------


@pytest.mark.spec("BA-13.7", "BA-5.6")
@pytest.mark.parametrize("all_weak", [True, False])
def test_weak_and_strong_chunk_outputs_agree(lib: types.ModuleType, all_weak: bool) -> None:
    xw = jax.lax.broadcast(1.0, (3, 1, 2))  # weak float32
    calls = [0]

    def f(y: jax.Array) -> jax.Array:
        calls[0] += 1
        return y * 1.0 if all_weak or calls[0] == 1 else (y * 1.0).astype(jnp.float32)

    out = lib.BatchApply(f, chunk_size=1)(xw)
    assert out.dtype == jnp.float32 and out.weak_type is all_weak


# ---- G5: to_dim entries (BA-9.2) ---------------------------------------------------------------


@pytest.mark.spec("BA-9.2")
@pytest.mark.parametrize("minus_one", [np.int64(-1), jnp.int32(-1), -1], ids=["np.int64", "jnp.int32", "int"])
@pytest.mark.parametrize("on", ["numpy", "jax"])
def test_integer_to_dim_entries_are_read_as_their_value(
    lib: types.ModuleType, minus_one: Any, on: str
) -> None:
    z = np.zeros((6, 4)) if on == "numpy" else jnp.zeros((6, 4))
    assert lib.split_leading_dim(z, (minus_one, 3)).shape == (2, 3, 4)


@pytest.mark.spec("BA-9.2")
@pytest.mark.parametrize("to_dim", [(True, 6), 6, (2.0, 3)], ids=["bool", "int", "float"])
@pytest.mark.parametrize("on", ["numpy", "jax"])
def test_other_to_dim_raise_e13_for_numpy_and_jax_alike(lib: types.ModuleType, to_dim: Any, on: str) -> None:
    z = np.zeros((6, 4)) if on == "numpy" else jnp.zeros((6, 4))
    with pytest.raises(ValueError, match=re.escape("split_leading_dim: cannot split")):
        lib.split_leading_dim(z, to_dim)


# ---- G6: f raises partway; side effects; threads (BA-6.3, BA-6.4) ----------------------------


@pytest.mark.spec("BA-6.3")
def test_an_exception_in_a_chunk_aborts_the_call(lib: types.ModuleType) -> None:
    class Boom(Exception):
        pass

    calls, err = [], Boom()

    def f(y: Any) -> Any:
        calls.append(len(y))
        if len(calls) == 2:
            raise err
        return y

    with pytest.raises(Boom) as info:
        lib.BatchApply(f, chunk_size=2)(np.zeros((2, 3, 1)))
    assert info.value is err and calls == [2, 2]


@pytest.mark.spec("BA-6.4")
def test_one_object_called_from_several_threads(lib: types.ModuleType) -> None:
    apply = lib.BatchApply(lambda y: y * 2, chunk_size=3)
    wrong: list[Any] = []

    def work(t: int) -> None:
        for i in range(8):
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
    assert wrong == []


# ---- G7: read-only options (BA-2.6) ------------------------------------------------------------


@pytest.mark.spec("BA-2.6")
def test_options_are_read_only_attributes(lib: types.ModuleType) -> None:
    apply = lib.BatchApply(abs, np.int64(3), in_axes=[0, None], chunk_size=np.int32(4), row_order=[1, 1, 1])
    assert (apply.f, apply.num_dims, apply.in_axes, apply.out_axes, apply.chunk_size, apply.row_order) == (
        abs,
        3,
        (0, None),
        0,
        4,
        (1, 1, 1),
    )
    assert type(apply.num_dims) is int and type(apply.chunk_size) is int
    for name in ["f", "num_dims", "in_axes", "out_axes", "chunk_size", "row_order"]:
        with pytest.raises(AttributeError, match=re.escape(f"BatchApply: `{name}` is read-only")):
            setattr(apply, name, 0)
    assert pickle.loads(pickle.dumps(apply)).chunk_size == 4


# ---- U5: non-array leaves are not converted (BA-1.1) ------------------------------------------


class Touchy:
    """A leaf that fails the test if anything converts it or takes its length."""

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("__array__ called")

    def __len__(self) -> int:
        raise AssertionError("__len__ called")

    def __iter__(self) -> Any:
        raise AssertionError("__iter__ called")

    @property
    def __array_interface__(self) -> Any:
        raise AssertionError("__array_interface__ read")


@pytest.mark.spec("BA-1.1", "BA-1.2")
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_non_array_leaves_are_not_converted(lib: types.ModuleType, chunk_size: int | None) -> None:
    leaf = Touchy()
    got: list[Any] = []
    lib.BatchApply(lambda a, t: noting(got, t, a), chunk_size=chunk_size)(x(), leaf)
    assert got and all(t is leaf for t in got)
    assert lib.ndim_at_least(leaf, 0) is False


# ---- The multi-device decisions (C3, G4, A6, A7), in a child process with 4 devices ----------


@pytest.mark.spec("BA-14.11", "BA-14.12", "BA-13.7", "BA-5.6", "BA-10.7")
def test_multi_device_decisions_in_both_packages() -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    [(_, stdout, _)] = run_processes(
        [["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sharding/check_audit_decisions.py"]],
        env,
        timeout=300,
        what="tests/sharding/check_audit_decisions.py",
    )
    assert " passed" in stdout and " failed" not in stdout and " skipped" not in stdout, stdout[-2000:]


@pytest.mark.spec("BA-5.9", "BA-13.7")
def test_the_new_checks_ask_no_tracer_for_devices_or_deletion(lib: types.ModuleType) -> None:
    """E28's and E17's checks read ``is_deleted()`` and devices: a tracer has neither."""
    z = jnp.arange(6.0).reshape(2, 3, 1)
    out = jax.jit(lambda t: lib.BatchApply(lambda y: y * 2, chunk_size=2)(t))(z)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(z) * 2)


@st.composite
def deep_bad_trees(draw: st.DrawFn) -> tuple[Any, int]:
    """A dict with unsortable keys under 400 to 600 containers of mixed kinds; its depth."""
    depth = draw(st.integers(400, 600))
    kinds = draw(st.lists(st.sampled_from(["list", "tuple", "dict"]), min_size=depth, max_size=depth))
    tree: Any = {1: np.zeros((2, 3)), "a": np.zeros((2, 3))}
    for kind in kinds:
        tree = [tree] if kind == "list" else (tree,) if kind == "tuple" else {"k": tree}
    return tree, depth


@pytest.mark.spec("BA-1.5", "BA-1.7")
@hypothesis.settings(max_examples=10)
@hypothesis.given(case=deep_bad_trees())
def test_fuzz_deep_e27_then_a_deep_valid_call(case: tuple[Any, int]) -> None:
    """The fuzzer that finds N1 on fc77691: RecursionError, then SystemError on the next call."""
    tree, depth = case
    for lib in (batchapply, batchapply_reference):
        with pytest.raises(
            TypeError, match=re.escape("BatchApply: dict keys cannot be sorted: the dict at args[1]")
        ):
            lib.BatchApply(lambda a, b: a)(x(), tree)
        assert type(lib.BatchApply(lambda a: a)(nest(x(), depth))) is list


# ---- The kit's checks of these decisions can fail (issue 29, "the kit checks each clause") ----

KIT_CHECKS = [
    pytest.param("frozenset keys in another order", "positional_pairing", marks=pytest.mark.spec("BA-4.4")),
    pytest.param("non-array leaves untouched", "probes_leaves", marks=pytest.mark.spec("BA-1.1")),
    pytest.param("NumPy subclasses kept", "plain_ndarray", marks=pytest.mark.spec("BA-5.3")),
    pytest.param("deleted input before the shard counts", "counts_first", marks=pytest.mark.spec("BA-10.4")),
    pytest.param("E27 first in f's output", "e11_first", marks=pytest.mark.spec("BA-10.5")),
    pytest.param("chunked E10 message", "suggests_out_axes_none", marks=pytest.mark.spec("BA-13.6")),
    pytest.param("weak and strong chunk outputs", "weak_is_a_dtype", marks=pytest.mark.spec("BA-13.7")),
    pytest.param(
        "shard_major traced without a mesh", "e22_under_any_trace", marks=pytest.mark.spec("BA-14.4")
    ),
]


@pytest.mark.parametrize(("check", "fault"), KIT_CHECKS)
def test_the_kit_check_passes_both_packages_and_fails_its_fault(check: str, fault: str) -> None:
    """Each kit check added for a draft-3 decision passes on both packages and FAILs on
    ``tests/audit_fault_targets.py``'s target with the behaviour the audit found."""
    from batchapply_conformance._audit_checks import audit_checks
    from batchapply_conformance._checks import Outcome, Target

    (found,) = [c for c in audit_checks() if c.name == f"audit {check}"]
    for name in ("batchapply:BatchApply", "batchapply_reference:BatchApply"):
        outcome = found.run(Target.load(name))
        assert isinstance(outcome, Outcome) and outcome.status == "pass", (name, outcome)
    outcome = found.run(Target.load(f"tests.audit_fault_targets:{fault}"))
    assert isinstance(outcome, Outcome) and outcome.status == "fail", outcome


@pytest.mark.spec("BA-5.6", "BA-1.2", "BA-1.3")
@pytest.mark.parametrize(
    ("check", "fault", "details", "passed_by"),
    [
        # bfloat16 comes back as float32 from an object's third call on; the single-call check passes it
        ("every call of one object", "warm_path_upcasts", ("call 3", "bfloat16"), "jax inputs bfloat16"),
        # f gets a copy of a lower-rank leaf from the fourth call on (batchapply's steady state reuses
        # a plan from there); the check of every call on one merged leaf passes it
        (
            "every call passes the other leaves through",
            "steady_path_copies_kept_leaves",
            ("call 4", "(4,) bias"),
            "jax inputs every call of one object",
        ),
        # node data whose == has no truth value raises once a call meets another (call 5); the
        # check of custom nodes, one call per object, passes it
        (
            "every call with node data that == cannot decide",
            "tree_kept_unguarded",
            ("call 5", "raised ValueError"),
            "jax inputs custom pytree nodes",
        ),
    ],
)
def test_the_kit_calls_one_object_again_after_a_pause(
    check: str, fault: str, details: tuple[str, ...], passed_by: str
) -> None:
    """The kit's checks of every call index (issue 26) pass both packages and flax.linen, and
    FAIL on a target whose fault shows only once an object's calls repeat, which another kit
    check passes."""
    from batchapply_conformance._checks import Outcome, Target
    from batchapply_conformance._jax_inputs import jax_input_checks

    checks = {c.name: c for c in jax_input_checks()}
    every = checks[f"jax inputs {check}"]
    for name in ("batchapply:BatchApply", "batchapply_reference:BatchApply", "flax.linen:BatchApply"):
        outcome = every.run(Target.load(name))
        assert isinstance(outcome, Outcome) and outcome.status == "pass", (name, outcome)
    target = Target.load(f"tests.audit_fault_targets:{fault}")
    outcome = every.run(target)
    assert isinstance(outcome, Outcome) and outcome.status == "fail", outcome
    assert all(detail in outcome.detail for detail in details), outcome.detail
    other = checks[passed_by].run(target)
    assert isinstance(other, Outcome) and other.status == "pass", other
