# ruff: noqa: F811  (the tests take the imported `dispatches` fixture as a parameter)
"""The eager steady state (``batchapply._exec_steady``, issue 26): counted, not timed.

From a signature's fourth call (its third once the background thread has compiled the group
programs), a call plans nothing: it reuses the plan and the choice of leaves of that third
call, and costs one dispatch per group and direction. Whatever it cannot take whole (another
signature, a deleted leaf, a cleared cache, a trace) goes the planned way, with the same
results and the same errors.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batchapply
from batchapply import _exec_fused, _exec_steady, _plan
from batchapply_conformance.nodes import Ambiguous, KeyedNode
from tests.test_eager_dispatch import clear, dispatches, identity, tree_of  # noqa: F401  (dispatches: a fixture)


def to_steady(apply: Any, *args: Any) -> Any:
    """Calls ``apply(*args)`` until the signature's next call takes the steady path; the last output."""
    apply(*args)
    apply(*args)
    _exec_fused.wait()
    return apply(*args)  # planned, through the group programs: the steady state is noted


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the calls of the planner's two entry points."""
    counts: Counter[str] = Counter()

    def counted(name: str) -> Callable[..., Any]:
        plan = getattr(_plan, name)

        def wrapper(*args: Any) -> Any:
            counts[name] += 1
            return plan(*args)

        return wrapper

    for name in ("plan_inputs", "plan_outputs"):
        monkeypatch.setattr(_plan, name, counted(name))
    return counts


@pytest.mark.spec("BA-1.2")
@pytest.mark.parametrize("n_leaves", [1, 10, 1500])
def test_a_steady_call_plans_nothing_and_costs_one_dispatch_per_group(
    dispatches: Counter[str], planned: Counter[str], n_leaves: int
) -> None:
    tree = tree_of(n_leaves, distinct=n_leaves < 100)
    low = jnp.ones((16,))  # kept as it is (BA-1.2)
    got: list[Any] = []

    def f(t: Any, bias: jax.Array) -> Any:
        got.append(bias)
        return t

    apply = batchapply.BatchApply(f)
    args = (tree, low)
    to_steady(apply, *args)
    clear(dispatches)
    planned.clear()
    out = apply(*args)
    groups = -(-(n_leaves + 1) // _exec_fused._GROUP_SIZE)
    assert dispatches == Counter({"merge": groups, "split": groups})
    assert planned == Counter()
    assert str(jax.tree.structure(out)) == str(jax.tree.structure(tree))
    assert got[-1] is low
    for key, leaf in tree.items():
        assert out[key].shape == leaf.shape
    np.testing.assert_array_equal(out[f"k{n_leaves - 1:04d}"], tree[f"k{n_leaves - 1:04d}"])


@pytest.mark.spec("BA-1.2", "BA-4.2", "BA-7.5")
def test_a_steady_call_passes_through_what_it_does_not_merge_or_split(planned: Counter[str]) -> None:
    """A leaf of lower rank, a leaf that in_axes leaves out and a str: the very objects, in and out."""
    seen: list[tuple[Any, ...]] = []

    def f(x: jax.Array, bias: jax.Array, name: str, w: jax.Array) -> Any:
        seen.append((bias, name, w))
        return {"y": x * 2 + bias, "w": w, "name": name}, w

    apply = batchapply.BatchApply(f, in_axes=(0, 0, 0, None), out_axes=({"y": 0, "w": None, "name": 0}, None))
    x, bias, w = jnp.arange(24.0).reshape(2, 3, 4), jnp.ones((4,)), jnp.ones((6, 4))
    to_steady(apply, x, bias, "dense", w)
    planned.clear()
    for _ in range(2):
        out, w_out = apply(x, bias, "dense", w)
        assert seen[-1][0] is bias and seen[-1][1] == "dense" and seen[-1][2] is w
        assert out["w"] is w and w_out is w and out["name"] == "dense"
        np.testing.assert_array_equal(out["y"], np.arange(24.0).reshape(2, 3, 4) * 2 + 1)
    assert planned == Counter()
    out, _ = apply(x, bias, "other", w)  # another value of a leaf that is not an array: the same plan
    assert seen[-1][1] == "other" and out["name"] == "other"


@pytest.mark.spec("BA-3.2", "BA-7.3")
def test_a_steady_call_with_another_signature_is_planned_and_raises_the_same_errors() -> None:
    apply = batchapply.BatchApply(lambda a, b: (a, b[:1]))
    a, b = jnp.ones((2, 3, 4)), jnp.ones((2, 3, 5))
    with pytest.raises(ValueError, match="^" + batchapply._core.OUTPUT_PREFIX):
        to_steady(apply, a, b)  # the output's second leaf has one row: E10, on every call
    good = batchapply.BatchApply(lambda a, b: (a, b))
    to_steady(good, a, b)
    with pytest.raises(ValueError, match="^" + batchapply._core.LEADING_SHAPE_PREFIX) as info:
        good(a, jnp.ones((3, 2, 5)))  # the same tree, another shape: planned, E9
    assert "args[1] has (3, 2)" in str(info.value)
    np.testing.assert_array_equal(good(a, b)[1], b)  # and the steady state still holds


@pytest.mark.spec("BA-10.4")
def test_a_deleted_leaf_in_the_steady_state_is_e28(
    dispatches: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    apply = batchapply.BatchApply(identity)
    to_steady(apply, tree_of(3))
    tree = tree_of(3)
    tree["k0001"].delete()
    with pytest.raises(ValueError, match="^" + batchapply._core.DELETED_PREFIX) as info:
        apply(tree)
    assert "args[0]['k0001']" in str(info.value)
    tree = tree_of(3)
    noted: list[int] = []
    note = _exec_steady.Steady.note_merge

    def counted(*args: Any) -> None:
        noted.append(1)
        note(*args)

    monkeypatch.setattr(_exec_steady.Steady, "note_merge", counted)
    for _ in range(2):  # the merge planned once (it notes the signature again), then steady
        clear(dispatches)
        out = apply(tree)
        assert dispatches == Counter({"merge": 1, "split": 1})
        assert len(noted) == 1
        np.testing.assert_array_equal(out["k0002"], np.full((4, 8, 16), 2, np.float32))


def test_jax_clear_caches_ends_the_steady_state(dispatches: Counter[str]) -> None:
    tree = tree_of(3)
    apply = batchapply.BatchApply(identity)
    to_steady(apply, tree)
    jax.clear_caches()
    clear(dispatches)
    apply(tree)  # leaf by leaf again, as on a signature's first call: nothing waits for a compile
    assert dispatches.sizes == {"merge": [1] * 3, "split": [1] * 3}  # type: ignore[attr-defined]


def test_a_steady_signature_under_a_trace_records_plain_reshapes(dispatches: Counter[str]) -> None:
    tree = tree_of(3)
    apply = batchapply.BatchApply(identity)
    to_steady(apply, tree)
    clear(dispatches)
    jaxpr = jax.make_jaxpr(lambda: apply(tree))()  # concrete leaves, inside a trace
    assert {eqn.primitive.name for eqn in jaxpr.eqns} == {"reshape"}
    traced = jax.jit(apply)(tree)  # tracer leaves
    assert dispatches["merge"] == dispatches["split"] == 0
    np.testing.assert_array_equal(traced["k0002"], tree["k0002"])


def test_the_steady_state_keeps_every_leaf_on_its_device() -> None:
    script = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
        import jax, jax.numpy as jnp, numpy as np
        from batchapply import BatchApply, _exec_fused
        d = jax.devices()
        apply = BatchApply(lambda t: t)
        on3 = {k: jax.device_put(jnp.full((2, 3, 4), i), d[3]) for i, k in enumerate("ab")}
        loose = {k: jnp.full((2, 3, 4), i) for i, k in enumerate("ab")}
        for call in range(6):  # the same signature: committed to device 3, then uncommitted
            for tree, devices, committed in ((on3, {d[3]}, True), (loose, {d[0]}, False)):
                out = apply(tree)
                for k in "ab":
                    assert out[k].devices() == devices and out[k].committed == committed, (call, k)
                    np.testing.assert_array_equal(out[k], tree[k])
            _exec_fused.wait()
        mixed = {"a": on3["a"], "b": loose["b"]}  # one program would move b to device 3
        for call in range(4):
            out = apply(mixed)
            _exec_fused.wait()
            assert out["a"].devices() == {d[3]} and out["b"].devices() == {d[0]}, call
            assert not out["b"].committed
        with jax.default_device(d[5]):  # an uncommitted leaf follows jax.default_device (BA-5.6)
            assert apply(loose)["a"].devices() == {d[5]}
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.spec("BA-6.1")
def test_a_tree_whose_aux_data_cannot_be_compared_is_planned() -> None:
    apply = batchapply.BatchApply(lambda n: n.a + 1)
    x = jnp.ones((2, 3, 4))
    same = Ambiguous()
    for tag in (same, same, same, same, Ambiguous(), same, Ambiguous()):  # steady from the fourth
        np.testing.assert_array_equal(apply(KeyedNode(x, x, tag)), np.ones((2, 3, 4)) + 1)
        _exec_fused.wait()


def test_two_signatures_of_one_object_alternate_each_with_its_own_plan(dispatches: Counter[str]) -> None:
    """The same tree structure, two signatures (a leaf of lower rank, then a merged one): each
    call takes its own signature's plan, never the last one found."""
    seen: list[Any] = []

    def f(x: jax.Array, y: jax.Array) -> jax.Array:
        seen.append(y)
        return x

    apply = batchapply.BatchApply(f)
    x, bias, y = jnp.ones((2, 3, 4)), jnp.ones((5,)), jnp.arange(30.0).reshape(2, 3, 5)
    to_steady(apply, x, bias)
    to_steady(apply, x, y)
    clear(dispatches)
    for _ in range(2):
        apply(x, bias)
        assert seen[-1] is bias
        apply(x, y)
        np.testing.assert_array_equal(seen[-1], np.arange(30.0).reshape(6, 5))
    assert dispatches == Counter({"merge": 4, "split": 4})  # no leaf by leaf, no compile


def test_a_copy_starts_with_no_steady_state_and_reaches_its_own() -> None:
    apply = batchapply.BatchApply(identity)
    tree = tree_of(3)
    to_steady(apply, tree)
    copy = pickle.loads(pickle.dumps(apply))
    assert copy._steady is not None and copy._steady._merges._entries == {}
    to_steady(copy, tree)
    assert len(copy._steady._merges._entries) == 1
    np.testing.assert_array_equal(copy(tree)["k0002"], tree["k0002"])


def test_the_steady_tables_are_bounded_oldest_out_first() -> None:
    apply = batchapply.BatchApply(lambda x: x)
    maxsize = _exec_steady._Table.maxsize
    for n in range(1, maxsize + 3):
        to_steady(apply, jnp.ones((2, 3, n)))
    assert apply._steady is not None
    keys = list(apply._steady._merges._entries)
    assert len(keys) == maxsize
    assert [key[2][0].shape for key in keys] == [(2, 3, n) for n in range(3, maxsize + 3)]
