"""Every branch of the eager fast path, where the inputs (or outputs) are concrete ``jax.Array``s.

``batchapply._exec_reshape.reshape_leaves`` reshapes the concrete ``jax.Array`` leaves in one jitted
dispatch (``_merge_fused`` / ``_split_fused``): when every leaf is one and every leaf is
selected (``in_axes=0``), straight from the fused result, restoring the lower-rank leaves it
marks with None; otherwise only the selected concrete leaves, with NumPy leaves, non-arrays
and unselected leaves handled around it. The NumPy goldens and most property examples never
get here, so the mutation run (``python -m tests.mutation.run``, issue 18) found faults in
these branches that no test caught; each test below names the branch it reaches. Values are
compared with ``batchapply_reference`` on the same inputs as NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batchapply
import batchapply_reference
from batchapply import _core


def as_numpy(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, tree)


def assert_agrees(out: Any, expected: Any) -> None:
    """Same structure, shapes and values; ``out``'s array leaves are ``jax.Array``s or NumPy."""
    out_leaves, out_def = jax.tree_util.tree_flatten(out)
    want_leaves, want_def = jax.tree_util.tree_flatten(expected)
    assert str(out_def) == str(want_def)
    for got, want in zip(out_leaves, want_leaves, strict=True):
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def run_both(f: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """``BatchApply(f, **options)(*args)`` on ``args`` as they are, checked against the reference."""
    out = batchapply.BatchApply(f, **options)(*args)
    expected = batchapply_reference.BatchApply(f, **options)(*as_numpy(args))
    assert_agrees(out, expected)
    return out


def values(shape: tuple[int, ...], start: int = 0) -> jax.Array:
    """Distinct values, so that a row in the wrong place shows."""
    return jnp.arange(start, start + int(np.prod(shape)), dtype=jnp.float32).reshape(shape)


@pytest.mark.spec("BA-1.2")
def test_all_jax_lower_rank_leaf_reaches_f_unchanged() -> None:
    # The first branch: every leaf concrete, every leaf selected, one of them lower rank.
    x, b = values((2, 3, 4)), values((4,), 100)
    seen: list[Any] = []

    def f(x: Any, b: Any) -> Any:
        seen.append((x.shape, b))
        return x + b

    out = run_both(f, x, b)
    assert seen[0][0] == (6, 4) and seen[0][1] is b
    assert isinstance(out, jax.Array) and out.shape == (2, 3, 4)


@pytest.mark.spec("BA-1.2")
def test_all_jax_lower_rank_leaves_in_a_tree_keep_their_places() -> None:
    tree = {"a": values((2, 3)), "b": values((5,), 10), "c": values((), 50), "d": values((2, 3, 5), 80)}
    calls: list[dict[str, Any]] = []

    def f(t: dict[str, Any]) -> Any:
        calls.append(t)
        return {"a": t["a"], "d": t["d"] + t["c"]}

    out = run_both(f, tree)
    seen = calls[0]  # the batchapply call; the reference's comes second
    assert seen["b"] is tree["b"] and seen["c"] is tree["c"]
    assert seen["a"].shape == (6,) and seen["d"].shape == (6, 5)
    assert out["a"].shape == (2, 3) and out["d"].shape == (2, 3, 5)


def test_all_jax_every_leaf_full_rank_is_merged() -> None:
    # The first branch without a None: the fused result as it is.
    seen: list[Any] = []

    def f(x: Any, y: Any) -> Any:
        seen.append((x.shape, y.shape))
        return x * y

    run_both(f, values((2, 3, 4)), values((2, 3, 4), 7))
    assert seen[0] == ((6, 4), (6, 4))


@pytest.mark.spec("BA-4.3")
def test_tuple_in_axes_merges_the_selected_jax_leaves() -> None:
    # The second branch: in_axes selects some leaves; the concrete ones are fused.
    x, w, y = values((2, 3, 4)), values((4, 4), 30), values((2, 3, 4), 60)
    seen: list[Any] = []

    def f(x: Any, w: Any, y: Any) -> Any:
        seen.append((x.shape, w, y.shape))
        return x @ w + y

    out = run_both(f, x, w, y, in_axes=(0, None, 0))
    assert seen[0][0] == (6, 4) and seen[0][1] is w and seen[0][2] == (6, 4)
    assert out.shape == (2, 3, 4)


@pytest.mark.spec("BA-1.2")
def test_tuple_in_axes_selected_lower_rank_jax_leaf_is_the_same_object() -> None:
    # The second branch with a None from the fused merge: a selected leaf of lower rank.
    x, b = values((2, 3, 4)), values((4,), 5)
    seen: list[Any] = []

    def f(x: Any, b: Any) -> Any:
        seen.append(b)
        return x - b

    run_both(f, x, b, in_axes=(0, 0))
    assert seen[0] is b


@pytest.mark.spec("BA-4.5")
def test_tuple_in_axes_with_jax_kwargs() -> None:
    x, w = values((2, 3, 4)), values((4,), 9)

    def f(x: Any, w: Any, *, z: Any) -> Any:
        return {"x": x + w, "z": z * 2}

    out = batchapply.BatchApply(f, in_axes=(0, None))(x, w, z=values((2, 3), 40))
    ref = batchapply_reference.BatchApply(f, in_axes=(0, None))(
        *as_numpy((x, w)), z=np.asarray(values((2, 3), 40))
    )
    assert_agrees(out, ref)


@pytest.mark.spec("BA-5.3")
def test_mixed_jax_and_numpy_leaves_each_keep_their_type() -> None:
    # The second branch with every leaf selected: NumPy leaves go one by one, jax ones fused.
    tree = {"j": values((2, 3, 4)), "n": np.arange(24.0).reshape(2, 3, 4), "s": "tag", "k": 3}
    calls: list[dict[str, Any]] = []

    def f(t: dict[str, Any]) -> Any:
        calls.append(t)
        return {"j": t["j"], "n": t["n"]}

    out = run_both(f, tree)
    seen = calls[0]
    assert isinstance(seen["j"], jax.Array) and seen["j"].shape == (6, 4)
    assert type(seen["n"]) is np.ndarray and seen["n"].shape == (6, 4)
    assert seen["s"] == "tag" and seen["k"] == 3
    assert isinstance(out["j"], jax.Array) and type(out["n"]) is np.ndarray


def test_all_jax_with_a_non_array_leaf() -> None:
    x = values((2, 3, 4))
    out = run_both(lambda x, k: x * k, x, 3.0)
    assert out.shape == (2, 3, 4)


@pytest.mark.spec("BA-3.2")
@pytest.mark.parametrize("in_axes", [0, (0, 0)])
def test_all_jax_leading_shape_mismatch_is_e9(in_axes: Any) -> None:
    # The fused merge raises its internal signal; the SPEC error comes out.
    with pytest.raises(ValueError, match="^" + _core.LEADING_SHAPE_PREFIX) as info:
        batchapply.BatchApply(lambda a, b: a, in_axes=in_axes)(values((2, 3, 4)), values((3, 2, 4)))
    assert "args[1] has (3, 2)" in str(info.value)


@pytest.mark.spec("BA-7.3")
@pytest.mark.parametrize(
    ("f", "listed"),
    [
        (lambda x: x[:1], "output has shape (1, 4)"),
        (lambda x: x.sum(), "output has shape ()"),
        (lambda x: (x, x[1:]), "output[1] has shape (5, 4)"),
        (lambda x: (x.sum(axis=0), x), "output[0] has shape (4,)"),
    ],
)
def test_wrong_size_jax_output_is_e10(f: Callable[[Any], Any], listed: str) -> None:
    # The fused split rejects it; E10 names it (not a raw reshape error).
    with pytest.raises(ValueError, match="^" + _core.OUTPUT_PREFIX) as info:
        batchapply.BatchApply(f)(values((2, 3, 4)))
    assert listed in str(info.value)
    with pytest.raises(ValueError, match="^" + _core.OUTPUT_PREFIX):
        batchapply_reference.BatchApply(f)(np.asarray(values((2, 3, 4))))


@pytest.mark.spec("BA-7.3")
def test_wrong_size_jax_output_with_tuple_out_axes_is_e10() -> None:
    with pytest.raises(ValueError, match="^" + _core.OUTPUT_PREFIX) as info:
        batchapply.BatchApply(lambda x: (x.sum(), x[:2]), out_axes=(None, 0))(values((2, 3, 4)))
    assert "output[1] has shape (2, 4)" in str(info.value)


@pytest.mark.spec("BA-7.4")
def test_tuple_out_axes_splits_only_the_selected_jax_outputs() -> None:
    # The split's second branch: some outputs selected, all of them concrete.
    def f(x: Any) -> Any:
        return x, x.sum(), x[:2]

    out = run_both(f, values((2, 3, 4)), out_axes=(0, None, None))
    assert out[0].shape == (2, 3, 4) and out[1].shape == () and out[2].shape == (2, 4)


@pytest.mark.spec("BA-7.2")
def test_mixed_jax_and_numpy_outputs_are_split() -> None:
    def f(x: Any) -> Any:
        return {"j": x, "n": np.asarray(x) * 2, "s": "tag"}

    out = run_both(f, values((2, 3, 4)))
    assert isinstance(out["j"], jax.Array) and type(out["n"]) is np.ndarray
    assert out["j"].shape == out["n"].shape == (2, 3, 4) and out["s"] == "tag"


@pytest.mark.spec("BA-5.1")
@pytest.mark.parametrize("num_dims", [1, 2, 3])
def test_all_jax_merge_is_c_order(num_dims: int) -> None:
    x = values((2, 3, 4, 5))
    seen: list[Any] = []

    def f(x: Any) -> Any:
        seen.append(np.asarray(x))
        return x

    run_both(f, x, num_dims=num_dims)
    np.testing.assert_array_equal(seen[0], np.asarray(x).reshape((-1,) + x.shape[num_dims:]))
