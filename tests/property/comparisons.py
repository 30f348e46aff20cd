"""What the property tests share: the tolerance table, tree comparison, NumPy -> JAX conversion."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import hypothesis
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from batchapply_conformance.functions import FUNCTIONS
from batchapply_conformance.strategies import Case, merged_mask
from batchapply_reference import _tree

# Per-dtype (rtol, atol) for the floating functions, the one place tolerances are defined.
# Every floating function (functions.py) computes in float32 (float64 for float64 leaves) and
# rounds once to the leaf's dtype. NumPy and XLA disagree only in that compute step (XLA's
# tanh/exp are its own polynomial approximations, and sums and matmuls are reordered), by a
# few ulps of the compute dtype.
# - float16, bfloat16: the final rounding turns a few float32 ulps into at most one ulp of the
#   leaf dtype, so rtol is two ulps (2 * eps).
# - float32: no final rounding; "a few ulps" of XLA's approximations, with headroom: 1e-5
#   (~80 ulps), far below any real bug (a wrong row or order is off by O(1)).
# - atol (all 32-bit and narrower): results near 0 after cancellation, where the float32 error
#   is eps_f32 * sum(|terms|) <= 1.2e-7 * 27 * 8 ~ 3e-5 (FLOAT_BOUND = 8, at most
#   MAX_SIDE**3 = 27 terms), rounded up to 1e-4.
# - float64: the same reasoning with eps_f64 ~ 2.2e-16, times ~216 for sums: 1e-12.
TOLERANCE: dict[str, tuple[float, float]] = {
    "float16": (2 * float(np.finfo(np.float16).eps), 1e-4),
    "bfloat16": (2 * float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps), 1e-4),
    "float32": (1e-5, 1e-4),
    "float64": (1e-12, 1e-12),
}


def examples(fraction: float) -> int:
    """``fraction`` of the loaded profile's max_examples (at least 10): scales with dev/ci/thorough."""
    profile = hypothesis.settings.default
    assert profile is not None
    return max(10, math.ceil(profile.max_examples * fraction))


def is_array(x: object) -> bool:
    """SPEC BA-1.1: NumPy arrays and scalars, jax.Array."""
    return isinstance(x, (np.ndarray, np.generic, jax.Array))


def to_jax(tree: Any) -> Any:
    """``tree`` with every ``numpy.ndarray`` leaf as a ``jax.Array``; other leaves kept (same objects)."""
    return _tree.map_leaves(
        lambda _path, leaf, _axis: jnp.asarray(leaf) if isinstance(leaf, np.ndarray) else leaf, tree, None, ""
    )


def _children(tree: Any) -> list[tuple[str, Any]] | None:
    """The containers of SPEC BA-1.3, as the reference models them (custom nodes included)."""
    return _tree.children(tree)


def assert_same_arrays(actual: Any, expected: Any, exact: bool, where: str) -> None:
    """Same shape and dtype; bit-identical if ``exact`` or not real floating, else within TOLERANCE."""
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{where}: shape {a.shape} != {e.shape}"
    assert a.dtype == e.dtype, f"{where}: dtype {a.dtype} != {e.dtype}"
    if exact or str(e.dtype) not in TOLERANCE:
        same = np.ascontiguousarray(a).view(np.uint8) == np.ascontiguousarray(e).view(np.uint8)
        assert same.all(), f"{where}: values differ (bit-for-bit)\n{a!r}\n{e!r}"
        return
    rtol, atol = TOLERANCE[str(e.dtype)]
    np.testing.assert_allclose(
        a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol, err_msg=where
    )


def assert_same_result(
    actual: Any,
    expected: Any,
    exact: bool,
    array_type: Callable[[Any], type | tuple[type, ...]] | None = None,
    where: str = "output",
) -> None:
    """``actual`` has ``expected``'s pytree structure, leaf types, shapes, dtypes and values.

    Args:
        actual: The result under test.
        expected: The reference result.
        exact: Compare real floating arrays bit for bit (else within TOLERANCE).
        array_type: Maps an expected array leaf to the type(s) the actual leaf must have;
            by default exactly the expected leaf's type.
        where: The path of ``actual``, for messages.
    """
    children = _children(expected)
    if children is None:
        if is_array(expected):
            kind = type(expected) if array_type is None else array_type(expected)
            assert isinstance(actual, kind), f"{where}: {type(actual).__name__}, expected {kind}"
            if array_type is None:
                assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
            assert_same_arrays(actual, expected, exact, where)
        else:
            assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
            assert actual is expected or actual == expected, f"{where}: {actual!r} != {expected!r}"
        return
    assert type(actual) is type(expected), f"{where}: {type(actual).__name__} != {type(expected).__name__}"
    actual_children = _children(actual)
    assert actual_children is not None
    assert [k for k, _ in actual_children] == [k for k, _ in children], f"{where}: keys differ"
    for (key, a), (_, e) in zip(actual_children, children, strict=True):
        assert_same_result(a, e, exact, array_type, where + key)


def jax_array_type(expected: Any) -> type | tuple[type, ...]:
    """For jax inputs: a NumPy array in the reference's output is a jax.Array (BA-5.3, BA-7.2)."""
    return jax.Array if isinstance(expected, np.ndarray) else type(expected)


def is_exact(case: Case) -> bool:
    return FUNCTIONS[case.function].exact


def split_array_leaves(output: Any, out_axes: Any) -> list[Any]:
    """The array leaves of ``output`` that ``out_axes`` selects (axis 0), in leaf order."""
    return [
        leaf
        for _, leaf, axis in _tree.leaves_with_paths(output, out_axes, "output")
        if axis == 0 and is_array(leaf)
    ]


def identity_out_axes(case: Case) -> Any:
    """For ``f = identity``: 0 over exactly the merged leaves, None over the rest."""
    return _tree.map_leaves(lambda _p, merged, _a: 0 if merged else None, merged_mask(case), None, "")


def replace_merged(case: Case, args: Any, kwargs: Any, new: list[Any]) -> tuple[Any, Any]:
    """``(args, kwargs)`` with the merged leaves (leaf order) replaced by ``new``."""
    mask = merged_mask(case)
    it = iter(new)
    values = _tree.map_leaves(lambda _p, leaf, _a: leaf, (tuple(args), kwargs), None, "")
    flags = [m for _, m, _ in _tree.leaves_with_paths(mask, None, "")]
    flat = [leaf for _, leaf, _ in _tree.leaves_with_paths(values, None, "")]
    replaced = [next(it) if m else leaf for leaf, m in zip(flat, flags, strict=True)]
    leaf_iter = iter(replaced)
    rebuilt = _tree.map_leaves(lambda _p, _leaf, _a: next(leaf_iter), values, None, "")
    return rebuilt[0], rebuilt[1]


def merged_leaves(case: Case, args: Any, kwargs: Any) -> list[Any]:
    """The leaves of ``(args, kwargs)`` that the case merges, in leaf order."""
    flags = [m for _, m, _ in _tree.leaves_with_paths(merged_mask(case), None, "")]
    flat = [leaf for _, leaf, _ in _tree.leaves_with_paths((tuple(args), kwargs), None, "")]
    return [leaf for leaf, m in zip(flat, flags, strict=True) if m]
