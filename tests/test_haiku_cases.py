"""Haiku's own BatchApply test cases (haiku/_src/basic_test.py and the docstring), on both packages."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest


def raises_unless(a_rank: int, b_rank: int | None) -> Any:
    def f(a: Any, b: Any) -> Any:
        if len(a.shape) != a_rank:
            raise ValueError(f"a must be shape {a_rank}")
        if b_rank is not None and len(b.shape) != b_rank:
            raise ValueError(f"b must be shape {b_rank}")
        return a + b

    return f


@pytest.mark.spec("BA-1.4", "BA-5.1")
def test_batchapply(lib: types.ModuleType) -> None:
    out = lib.BatchApply(raises_unless(2, 1))(np.ones([2, 3, 4]), np.ones([4]))
    np.testing.assert_array_equal(out, 2 * np.ones([2, 3, 4]))


@pytest.mark.spec("BA-1.2")
def test_batchapply_accepts_float(lib: types.ModuleType) -> None:
    out = lib.BatchApply(raises_unless(2, None))(np.ones([2, 3, 4]), 2.0)
    np.testing.assert_array_equal(out, 3 * np.ones([2, 3, 4]))


@pytest.mark.spec("BA-1.2")
def test_batchapply_accepts_none(lib: types.ModuleType) -> None:
    def f(a: Any, b: Any) -> Any:
        if a is not None:
            raise ValueError("a must be None.")
        if len(b.shape) != 2:
            raise ValueError("b must be shape 2")
        return 3 * b

    out = lib.BatchApply(f)(None, np.ones([2, 3, 4]))
    np.testing.assert_array_equal(out, 3 * np.ones([2, 3, 4]))


@pytest.mark.spec("BA-3.3")
def test_batchapply_raises(lib: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="requires at least one input"):
        lib.BatchApply(lambda: 1)()


@pytest.mark.spec("BA-5.1", "BA-7.2")
def test_docstring_example(lib: types.ModuleType) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=[2, 3, 4]), rng.normal(size=[4])

    def f(a: Any, b: Any) -> Any:
        if len(a.shape) != 2:
            raise ValueError("a must be shape 2")
        return np.dot(a, b)

    out = lib.BatchApply(f)(a, b)
    expected = f(a.reshape(2 * 3, 4), b).reshape((2, 3))
    np.testing.assert_array_equal(out, expected)
