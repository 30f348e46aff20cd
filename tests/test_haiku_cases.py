"""Haiku's own BatchApply test cases (haiku/_src/basic_test.py and the docstring), on both packages."""

from __future__ import annotations

import types
from collections.abc import Callable
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


# Inside hk.transform: batchapply.BatchApply as the drop-in for hk.BatchApply (issue 24).
hk = pytest.importorskip("haiku")


def _transformed(make: Callable[[Any], Any]) -> Any:
    import jax.numpy as jnp

    def net(x: Any) -> Any:
        return make(hk.Linear(3))(jnp.tanh(x))

    return hk.transform(net)


@pytest.mark.spec("BA-5.1", "BA-7.2", "BA-13.9")
@pytest.mark.parametrize("chunk_size", [None, 4, 100], ids=["no-chunks", "chunks", "one-chunk"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_inside_hk_transform_matches_hk_batchapply(chunk_size: int | None, jit: bool) -> None:
    import jax

    import batchapply

    ours = _transformed(lambda layer: batchapply.BatchApply(layer, chunk_size=chunk_size))
    theirs = _transformed(lambda layer: hk.BatchApply(layer))
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
    key = jax.random.key(1)
    wrap = jax.jit if jit else (lambda g: g)
    params = wrap(ours.init)(key, x)
    want_params = theirs.init(key, x)
    paths = [path for path, _ in jax.tree.leaves_with_path(params)]
    assert paths == [path for path, _ in jax.tree.leaves_with_path(want_params)]  # hk's names: a drop-in
    jax.tree.map(np.testing.assert_array_equal, params, want_params)
    got = wrap(ours.apply)(params, None, x)
    np.testing.assert_allclose(got, theirs.apply(params, None, x), rtol=1e-6, atol=1e-6)


@pytest.mark.spec("BA-13.4", "BA-13.9")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_haiku_state_is_updated_once_per_chunk(jit: bool) -> None:
    # haiku.scan carries Haiku's state through the full chunks: a counter that f bumps counts
    # every chunk (N = 10, c = 4: 3 chunks), eagerly (3 calls) and under jit (scan of 2, then 1).
    import jax
    import jax.numpy as jnp

    import batchapply

    def f(rows: Any) -> Any:
        count = hk.get_state("count", (), jnp.int32, init=jnp.zeros)
        hk.set_state("count", count + 1)
        return rows * 2

    net = hk.transform_with_state(lambda x: batchapply.BatchApply(f, chunk_size=4)(x))
    x = jnp.ones((2, 5, 3))
    wrap = jax.jit if jit else (lambda g: g)
    params, state = wrap(net.init)(None, x)
    out, state = wrap(net.apply)(params, state, None, x)
    np.testing.assert_array_equal(out, 2 * np.ones((2, 5, 3)))
    assert int(state["~"]["count"]) == 3  # init returns the initial state; apply ran 3 chunks
