"""The input plans kept per signature (``_plan.PlanCache``, issue 25): a plan found in the table
gives what a fresh one gives, and every error the planner raises is raised again.

The table is private; these tests read its size only to show that a call was (or was not)
served from it. Values are compared with ``batchapply_reference``.
"""

from __future__ import annotations

import pickle
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batchapply
import batchapply_reference
from batchapply import _core


def table(apply: batchapply.BatchApply) -> dict[Any, Any]:
    assert apply._plans is not None
    return apply._plans._plans


@pytest.mark.spec("BA-3.3")
def test_a_signature_that_raises_is_not_stored() -> None:
    apply = batchapply.BatchApply(lambda x: x)
    for _ in range(2):  # E8 both times: the failed plan is not kept
        with pytest.raises(ValueError, match=_core.NO_MERGEABLE_PREFIX):
            apply(np.ones(3))
    assert table(apply) == {}
    np.testing.assert_array_equal(apply(np.ones((2, 3))), np.ones((2, 3)))
    assert len(table(apply)) == 1
    with pytest.raises(ValueError, match=_core.NO_MERGEABLE_PREFIX):  # after a stored one too
        apply(np.ones(3))


@pytest.mark.spec("BA-4.3")
def test_in_axes_length_error_on_every_call() -> None:
    apply = batchapply.BatchApply(lambda x, y: x, in_axes=(0, None))
    x = np.ones((2, 3))
    apply(x, x)
    for _ in range(2):
        with pytest.raises(ValueError, match=_core.IN_AXES_LENGTH_PREFIX):
            apply(x)


@pytest.mark.spec("BA-3.2")
def test_leading_shape_error_after_a_stored_plan() -> None:
    apply = batchapply.BatchApply(lambda x, y: x + y)
    apply(np.ones((2, 3, 4)), np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=_core.LEADING_SHAPE_PREFIX):
        apply(np.ones((2, 3, 4)), np.ones((3, 2, 4)))


@pytest.mark.spec("BA-10.4")
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_deleted_array_raises_on_a_signature_seen_before(chunk_size: int | None) -> None:
    # A deleted array has the signature of a live one: E28 is checked on every call.
    apply = batchapply.BatchApply(lambda x: x * 2, chunk_size=chunk_size)
    x = jnp.ones((2, 3, 4))
    np.testing.assert_array_equal(apply(x), np.full((2, 3, 4), 2.0))
    y = jnp.ones((2, 3, 4))
    y.delete()
    for _ in range(2):
        with pytest.raises(ValueError, match=_core.DELETED_PREFIX):
            apply(y)


@pytest.mark.spec("BA-13.4")
def test_chunked_numpy_call_in_and_out_of_a_trace() -> None:
    # Same signature eagerly and under jit (NumPy leaves closed over): two plans, same values.
    def f(r: Any) -> Any:
        return r * 2 + 1

    apply = batchapply.BatchApply(f, chunk_size=4)
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    expected = batchapply_reference.BatchApply(f, chunk_size=4)(x)
    np.testing.assert_array_equal(apply(x), expected)
    np.testing.assert_array_equal(jax.jit(lambda: apply(x))(), expected)
    np.testing.assert_array_equal(apply(x), expected)
    assert len(table(apply)) == 2


@pytest.mark.spec("BA-6.1")
def test_changed_closure_reaches_f_on_a_stored_plan() -> None:
    scale = [1.0]
    apply = batchapply.BatchApply(lambda x: x * scale[0])
    x = np.ones((2, 3, 4), np.float32)
    np.testing.assert_array_equal(apply(x), x)
    scale[0] = 3.0
    np.testing.assert_array_equal(apply(x), 3 * x)


class _Node:
    """A pytree node with aux data given by the test: jax hashes it, and compares it with ==."""

    def __init__(self, x: Any, aux: Any) -> None:
        self.x, self.aux = x, aux


jax.tree_util.register_pytree_node(_Node, lambda n: ((n.x,), n.aux), lambda aux, c: _Node(c[0], aux))


@pytest.mark.spec("BA-6.1")
def test_tree_structures_whose_aux_data_cannot_be_compared() -> None:
    # An array as aux data makes jax's treedef comparison raise: no plan from the table then.
    apply = batchapply.BatchApply(lambda n: n.x + 1)
    x = np.ones((2, 3, 4))
    for aux in (["a"], np.arange(2), np.arange(2), ["b"], np.arange(3)):
        np.testing.assert_array_equal(apply(_Node(x, aux)), x + 1)


def _identity(x: Any) -> Any:
    return x


def test_table_is_bounded_and_pickles_empty() -> None:
    apply = batchapply.BatchApply(_identity, num_dims=1)
    for n in range(1, apply._plans.maxsize + 10):  # type: ignore[union-attr]
        apply(np.ones((n,)))
    assert len(table(apply)) == apply._plans.maxsize  # type: ignore[union-attr]
    copy = pickle.loads(pickle.dumps(apply))
    assert table(copy) == {}
    np.testing.assert_array_equal(copy(np.ones((2, 3))), np.ones((2, 3)))


@pytest.mark.spec("BA-1.2")
def test_same_shapes_other_leaf_types_get_their_own_plan() -> None:
    # The plan carries the leaves' kinds for the merge: a NumPy leaf stays NumPy, a jax.Array
    # goes through jax, whichever came first with the same shapes.
    apply = batchapply.BatchApply(lambda x, y: (x, y))
    xn = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    xj = jnp.asarray(xn)
    for a, b in ((xn, xn), (xj, xn), (xn, xj), (xj, xj), (xn, xn)):
        out = apply(a, b)
        for got, given in zip(out, (a, b), strict=True):
            assert isinstance(got, np.ndarray) == isinstance(given, np.ndarray)
            np.testing.assert_array_equal(np.asarray(got), xn)
    assert len(table(apply)) == 4
