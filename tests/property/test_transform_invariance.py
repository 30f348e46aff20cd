"""batchapply under JAX transformations agrees with plain calls (SPEC section 8)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from comparisons import (
    assert_same_arrays,
    examples,
    is_array,
    is_exact,
    merged_leaves,
    replace_merged,
    to_jax,
)
from hypothesis import given, settings

import batchapply
from batchapply_conformance.strategies import Case, cases, function_of, run
from batchapply_reference import _tree


def array_leaves(tree: Any) -> list[Any]:
    return [leaf for _, leaf, _ in _tree.leaves_with_paths(tree, None, "") if is_array(leaf)]


def jax_leaves(tree: Any) -> list[Any]:
    return [leaf for _, leaf, _ in _tree.leaves_with_paths(tree, None, "") if isinstance(leaf, jax.Array)]


def with_jax_leaves(tree: Any, new: list[Any]) -> Any:
    """``tree`` with its jax.Array leaves (leaf order) replaced by ``new``."""
    it = iter(new)
    return _tree.map_leaves(
        lambda _p, leaf, _a: next(it) if isinstance(leaf, jax.Array) else leaf, tree, None, ""
    )


def assert_all_close(actual: list[Any], expected: list[Any], exact: bool) -> None:
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_same_arrays(a, e, exact, where=f"output array {i}")


@pytest.mark.spec("BA-8.1")
@settings(max_examples=examples(0.1))  # jit, grad, vmap: a compile per example
@given(case=cases())
def test_jit_equals_eager(case: Case) -> None:
    inputs = to_jax((case.args, case.kwargs))

    def call(*arrays: Any) -> list[Any]:
        args, kwargs = with_jax_leaves(inputs, list(arrays))
        return array_leaves(run(case, batchapply, args, kwargs))

    eager = call(*jax_leaves(inputs))
    jitted = jax.jit(call)(*jax_leaves(inputs))
    assert_all_close(jitted, eager, is_exact(case))


def position_weighted_sum(output: Any) -> Any:
    """A scalar that depends on where each value sits, so a wrong split order changes its gradient."""
    total = jnp.zeros((), jnp.float32)
    for leaf in array_leaves(output):
        if leaf.dtype == jnp.float32:
            weights = jnp.cos(jnp.arange(leaf.size, dtype=jnp.float32)).reshape(leaf.shape)
            total = total + jnp.sum(jnp.sin(leaf) * weights)
    return total


def by_hand(case: Case, args: Any, kwargs: Any) -> Any:
    """What BatchApply does, written out with reshape: merge, call f, split by out_axes."""
    n, leading = case.num_dims, case.leading
    size = math.prod(leading)
    merged = [x.reshape((size,) + x.shape[n:]) for x in merged_leaves(case, args, kwargs)]
    args, kwargs = replace_merged(case, args, kwargs, merged)
    output = function_of(case)(*args, **kwargs)
    return _tree.map_leaves(
        lambda _p, leaf, axis: (
            leaf.reshape(leading + leaf.shape[1:]) if axis == 0 and is_array(leaf) else leaf
        ),
        output,
        case.out_axes,
        "output",
    )


@pytest.mark.spec("BA-8.2")
@settings(max_examples=examples(0.1))  # jit, grad, vmap: a compile per example
@given(case=cases(dtypes=("float32",)))
def test_grad_equals_grad_of_hand_written_reshape(case: Case) -> None:
    inputs = to_jax((case.args, case.kwargs))

    def loss(arrays: list[Any], through_batchapply: bool) -> Any:
        args, kwargs = with_jax_leaves(inputs, arrays)
        if through_batchapply:
            return position_weighted_sum(run(case, batchapply, args, kwargs))
        return position_weighted_sum(by_hand(case, args, kwargs))

    arrays = jax_leaves(inputs)
    got = jax.grad(loss)(arrays, True)
    expected = jax.grad(loss)(arrays, False)
    assert_all_close(got, expected, exact=False)


@pytest.mark.spec("BA-8.3")
@settings(max_examples=examples(0.1))  # jit, grad, vmap: a compile per example
@given(case=cases())
def test_outer_vmap_equals_a_python_loop(case: Case) -> None:
    """Two examples of an outer batch: each merged input stacked with a reordering of itself."""
    args, kwargs = to_jax((case.args, case.kwargs))
    first = merged_leaves(case, args, kwargs)
    second = [jnp.flip(x.reshape(-1)).reshape(x.shape) for x in first]
    stacked = [jnp.stack([a, b]) for a, b in zip(first, second, strict=True)]

    def call(*merged: Any) -> list[Any]:
        a, k = replace_merged(case, args, kwargs, list(merged))
        return array_leaves(run(case, batchapply, a, k))

    vmapped = jax.vmap(call)(*stacked)
    for example, inputs in enumerate([first, second]):
        assert_all_close([np.asarray(v)[example] for v in vmapped], call(*inputs), is_exact(case))
