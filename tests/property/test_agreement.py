"""Differential: batchapply agrees with batchapply_reference on every valid call.

The reference runs on the NumPy inputs; the implementation runs on the same NumPy
inputs and on the same inputs as ``jax.Array``. Same output structure, leaf types,
shapes and dtypes; values bit-identical for exact functions, else within TOLERANCE.
"""

from __future__ import annotations

import jax
import pytest
from comparisons import assert_same_result, examples, is_exact, jax_array_type, to_jax
from hypothesis import given, settings

import batchapply
import batchapply_reference
from batchapply_conformance.strategies import X64_DTYPES, Case, cases, run


@pytest.mark.spec("BA-5.1", "BA-5.2", "BA-5.3", "BA-5.4", "BA-6.1", "BA-7.1", "BA-7.2", "BA-7.4")
@given(case=cases())
def test_numpy_inputs_agree_with_reference(case: Case) -> None:
    expected = run(case, batchapply_reference)
    assert_same_result(run(case, batchapply), expected, is_exact(case))


@pytest.mark.spec("BA-5.1", "BA-5.2", "BA-5.3", "BA-5.4", "BA-6.1", "BA-7.1", "BA-7.2", "BA-7.4")
@settings(max_examples=examples(0.5))
@given(case=cases())
def test_jax_inputs_agree_with_reference(case: Case) -> None:
    expected = run(case, batchapply_reference)
    args, kwargs = to_jax((case.args, case.kwargs))
    actual = run(case, batchapply, args, kwargs)
    assert_same_result(actual, expected, is_exact(case), array_type=jax_array_type)


@pytest.mark.spec("BA-5.1", "BA-5.2", "BA-5.3", "BA-7.2")
@settings(max_examples=examples(0.25))
@given(case=cases(dtypes=X64_DTYPES))
def test_64_bit_inputs_agree_with_reference(case: Case) -> None:
    with jax.enable_x64(True):
        expected = run(case, batchapply_reference)
        assert_same_result(run(case, batchapply), expected, is_exact(case))
        args, kwargs = to_jax((case.args, case.kwargs))
        actual = run(case, batchapply, args, kwargs)
        assert_same_result(actual, expected, is_exact(case), array_type=jax_array_type)


@pytest.mark.spec("BA-5.3", "BA-7.2")
@settings(max_examples=examples(0.1))
@given(case=cases())
def test_reference_keeps_jax_inputs_jax(case: Case) -> None:
    """The oracle itself on jax.Array inputs: the same values, as jax.Array (SPEC BA-5.3 binds both)."""
    expected = run(case, batchapply_reference)
    args, kwargs = to_jax((case.args, case.kwargs))
    actual = run(case, batchapply_reference, args, kwargs)
    assert_same_result(actual, expected, is_exact(case), array_type=jax_array_type)
