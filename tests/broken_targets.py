"""Deliberately broken BatchApply factories, for the conformance kit's own tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from jax import tree_util


def fortran_order(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    """``batchapply.BatchApply`` with rows merged and split in Fortran order (the first leading
    index varies fastest): wrong only where f mixes rows (BA-5.1, BA-7.2)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims)
    reverse = tuple(reversed(range(num_dims)))

    def flip(x: Any) -> Any:  # C order over the reversed leading dims is Fortran order over them
        if isinstance(x, np.generic) or getattr(x, "ndim", 0) < num_dims or not hasattr(x, "transpose"):
            return x
        if getattr(x, "is_deleted", lambda: False)():  # the wrapped batchapply raises E28 (BA-5.9)
            return x
        return x.transpose(reverse + tuple(range(num_dims, x.ndim)))

    def call(*args: Any, **kwargs: Any) -> Any:
        return _tree_map(flip, apply(*_tree_map(flip, args), **_tree_map(flip, kwargs)))

    return call


def _tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``jax.tree_util.tree_map``, or ``tree`` as it is where jax cannot flatten it (a dict with
    unsortable keys: the wrapped ``batchapply`` raises its own error, E27, which is not the fault
    under test)."""
    try:
        return tree_util.tree_map(fn, tree)
    except (TypeError, ValueError):
        return tree


def _to_jax(tree: Any) -> Any:
    """Every plain NumPy array in ``tree`` that JAX can hold as a ``jax.Array`` of the same dtype
    (the caller enables x64); subclasses (masked arrays, matrices), other dtypes and arrays
    without elements stay."""
    import jax.numpy as jnp

    def convert(x: Any) -> Any:
        if type(x) is not np.ndarray or x.size == 0:  # jnp.asarray((65536, 65536, 0)) takes minutes
            return x
        try:
            return jnp.asarray(x)
        except TypeError:  # str, object, structured dtypes
            return x

    return _tree_map(convert, tree)


def numpy_to_jax(
    f: Callable[..., Any],
    num_dims: int = 2,
    *,
    in_axes: Any = 0,
    out_axes: Any = 0,
    chunk_size: Any = None,
    row_order: Any = "C",
) -> Callable[..., Any]:
    """``batchapply.BatchApply`` on the inputs converted to ``jax.Array`` (dtypes kept):
    f gets jax.Array for NumPy inputs (BA-5.3), so the outputs are jax.Array (BA-7.2)."""
    import jax

    import batchapply

    apply = batchapply.BatchApply(
        f, num_dims, in_axes=in_axes, out_axes=out_axes, chunk_size=chunk_size, row_order=row_order
    )

    def call(*args: Any, **kwargs: Any) -> Any:
        with jax.enable_x64(True):
            args, kwargs = _to_jax((args, kwargs))
            return apply(*args, **kwargs)

    return call


def vmap_split(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    """Merges and calls f right (f sees NumPy), then splits each output through ``jax.vmap``,
    so the caller gets ``jax.Array`` back for NumPy inputs (BA-7.2; the kit sees only
    outputs, so it charges BA-5.3 too)."""
    import jax
    import jax.numpy as jnp

    import batchapply

    apply = batchapply.BatchApply(f, num_dims)

    def through_vmap(z: Any) -> Any:
        if isinstance(z, np.ndarray) and z.ndim >= 1 and z.size > 0:  # (see _to_jax on no elements)
            return jax.vmap(jnp.copy)(z)  # (jax.vmap of an identity would hand z back as it is)
        return z

    def call(*args: Any, **kwargs: Any) -> Any:
        out = apply(*args, **kwargs)
        with jax.enable_x64(True):
            return _tree_map(through_vmap, out)

    return call
