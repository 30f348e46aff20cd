"""Eager mode costs O(1) device dispatches, whatever the number of leaves (issue 6).

Counted, not timed: every eager primitive dispatch goes through
``jax.extend.core.Primitive.bind`` in Python, while a call of a cached jitted function
does not; the two fused reshapes of ``batchapply._core`` are counted by wrapping
them. A per-leaf implementation (flax.linen.BatchApply) shows up in the same
counter, so the counter is known to see what it is meant to see.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jax_core

import batchapply
from batchapply import _core

LEAF_COUNTS = [1, 10, 1000]


def tree_of(n_leaves: int, make: Callable[..., Any] = jnp.full) -> dict[str, Any]:
    return {f"k{i:04d}": make((4, 8, 16), i, np.float32) for i in range(n_leaves)}


@pytest.fixture
def dispatches(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts eager primitive binds ("primitive") and calls of the two fused reshapes."""
    counts: Counter[str] = Counter()
    bind = jax_core.Primitive.bind

    def counting_bind(self: Any, *args: Any, **params: Any) -> Any:
        counts["primitive"] += 1
        return bind(self, *args, **params)

    def counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            counts[name] += 1
            return fn(*args)

        return wrapper

    monkeypatch.setattr(jax_core.Primitive, "bind", counting_bind)
    monkeypatch.setattr(_core, "_merge_fused", counted("merge", _core._merge_fused))
    monkeypatch.setattr(_core, "_split_fused", counted("split", _core._split_fused))
    yield counts


@pytest.mark.parametrize("n_leaves", LEAF_COUNTS)
def test_eager_call_costs_two_dispatches(dispatches: Counter[str], n_leaves: int) -> None:
    tree = tree_of(n_leaves)
    apply = batchapply.BatchApply(lambda t: t)
    jax.block_until_ready(apply(tree))  # first call: traces and compiles the fused reshapes
    dispatches.clear()
    out = apply(tree)
    assert dispatches == Counter({"merge": 1, "split": 1})
    assert all(v.shape == (4, 8, 16) for v in out.values())
    np.testing.assert_array_equal(out[f"k{n_leaves - 1:04d}"], tree[f"k{n_leaves - 1:04d}"])


def test_the_counter_sees_per_leaf_dispatches(dispatches: Counter[str]) -> None:
    tree = tree_of(10)
    apply = nn.BatchApply(lambda t: t)
    jax.block_until_ready(apply(tree))
    dispatches.clear()
    apply(tree)
    assert dispatches["primitive"] >= 20  # one reshape per leaf and direction


def test_numpy_leaves_cost_no_dispatch(dispatches: Counter[str]) -> None:
    tree = tree_of(100, np.full)
    out = batchapply.BatchApply(lambda t: t)(tree)
    assert sum(dispatches.values()) == 0
    assert all(type(v) is np.ndarray and v.shape == (4, 8, 16) for v in out.values())


def test_mixed_leaves_cost_two_dispatches(dispatches: Counter[str]) -> None:
    tree: dict[str, Any] = {**tree_of(50), "np": np.ones((4, 8, 3)), "tag": "text", "bias": jnp.ones(3)}
    apply = batchapply.BatchApply(lambda t: {"y": t["k0049"], "np": t["np"]})
    jax.block_until_ready(apply(tree))
    dispatches.clear()
    out = apply(tree)
    assert dispatches == Counter({"merge": 1, "split": 1})
    assert type(out["np"]) is np.ndarray and out["y"].shape == (4, 8, 16)


def test_tracers_use_plain_reshapes(dispatches: Counter[str]) -> None:
    tree = tree_of(10)
    jax.make_jaxpr(batchapply.BatchApply(lambda t: t))(tree)
    assert dispatches["merge"] == dispatches["split"] == 0


@pytest.mark.spec("BA-1.2")
def test_eager_low_rank_jax_leaves_are_passed_through_as_the_same_object() -> None:
    calls = []
    bias, weight = jnp.ones(16), jnp.ones((16, 5))
    x = jnp.ones((4, 8, 16))

    def f(x: jax.Array, bias: jax.Array, weight: jax.Array) -> jax.Array:
        calls.append((bias, weight))
        return x + bias

    out = batchapply.BatchApply(f, in_axes=(0, 0, None))(x, bias, weight)
    assert calls == [(bias, weight)] and calls[0][0] is bias and calls[0][1] is weight
    assert out.shape == (4, 8, 16)


@pytest.mark.spec("BA-3.2")
def test_eager_leading_shape_error_names_every_leaf() -> None:
    tree = {"a": jnp.zeros((2, 3, 1)), "b": jnp.zeros((3, 2, 1)), "c": np.zeros((3, 3))}
    with pytest.raises(ValueError, match="inputs disagree") as info:
        batchapply.BatchApply(lambda t: t)(tree)
    assert "args[0]['a'] has (2, 3), args[0]['b'] has (3, 2), args[0]['c'] has (3, 3)" in str(info.value)


@pytest.mark.spec("BA-7.3")
def test_eager_output_error_names_every_leaf() -> None:
    def f(x: jax.Array) -> dict[str, jax.Array]:
        return {"loss": x.sum(), "y": x, "z": x[:5]}

    with pytest.raises(ValueError, match="cannot split output") as info:
        batchapply.BatchApply(f)(jnp.ones((2, 3, 4)))
    assert "output['loss'] has shape (), output['z'] has shape (5, 4)" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no internal signal shown


@pytest.mark.spec("BA-3.2")
def test_eager_leading_shape_error_hides_the_internal_signal() -> None:
    with pytest.raises(ValueError, match="inputs disagree") as info:
        batchapply.BatchApply(lambda a, b: a)(jnp.zeros((2, 3, 1)), jnp.zeros((3, 2, 1)))
    assert info.value.__suppress_context__


def test_leaves_on_different_devices_fall_back_to_one_reshape_per_leaf() -> None:
    # One fused jit cannot take arrays committed to different devices; the per-leaf path can.
    script = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax, jax.numpy as jnp, numpy as np
        from batchapply import BatchApply
        d0, d1 = jax.devices("cpu")[:2]
        tree = {"a": jax.device_put(jnp.ones((2, 3, 4)), d0), "b": jax.device_put(jnp.ones((2, 3, 5)), d1)}
        out = BatchApply(lambda t: t)(tree)
        assert out["a"].shape == (2, 3, 4) and out["b"].shape == (2, 3, 5)
        assert out["a"].devices() == {d0} and out["b"].devices() == {d1}
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
