"""One fault per kit check added for the SPEC draft-3 decisions (issue 29), so that each check
is seen to fail (tests/test_audit_decisions.py). Each is ``batchapply.BatchApply`` with the one
behaviour that the editor's audit of 2026-12-07 found in a package, or that draft 3 forbids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import batchapply
from batchapply import _trees

Fn = Callable[..., Any]


def positional_pairing(f: Fn, num_dims: int = 2, *, in_axes: Any = 0, **options: Any) -> Fn:
    """A1 as the old reference: an in_axes dict is paired with its argument by position."""

    def call(*args: Any) -> Any:
        axes = in_axes
        if isinstance(in_axes, tuple):
            axes = tuple(
                dict(zip(a.keys(), e.values(), strict=True))
                if isinstance(e, dict) and isinstance(a, dict) and set(e) == set(a)
                else e
                for e, a in zip(in_axes, args, strict=False)
            )
        return batchapply.BatchApply(f, num_dims, in_axes=axes, **options)(*args)

    return call


def probes_leaves(f: Fn, num_dims: int = 2, **options: Any) -> Fn:
    """U5: looks at every argument's rank with np.ndim (which calls __array__)."""
    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        for a in args:
            if not isinstance(a, (list, tuple, dict)):
                np.ndim(a)
        return apply(*args, **kwargs)

    return call


def plain_ndarray(f: Fn, num_dims: int = 2, **options: Any) -> Fn:
    """A3 as the old reference: NumPy subclasses become ndarray."""
    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        return apply(*[np.asarray(a) if isinstance(a, np.ndarray) else a for a in args], **kwargs)

    return call


def counts_first(f: Fn, num_dims: int = 2, *, row_order: Any = "C", **options: Any) -> Fn:
    """C2 as old batchapply: shard counts read (E21) before the deleted check (E28)."""
    apply = batchapply.BatchApply(f, num_dims, row_order=row_order, **options)

    def call(*args: Any) -> Any:
        if isinstance(row_order, tuple) and args[0].shape[1] % row_order[1]:
            raise ValueError("BatchApply: `row_order` shard counts do not divide the leading dims")
        return apply(*args)

    return call


def e11_first(f: Fn, num_dims: int = 2, **options: Any) -> Fn:
    """C2 as the old reference: E11 before E27 in f's output."""
    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any) -> Any:
        try:
            return apply(*args)
        except TypeError as e:
            if "dict keys cannot be sorted" in str(e) and "output" in str(e):
                raise ValueError("BatchApply: `out_axes` is not a pytree prefix of the output") from None
            raise

    return call


def suggests_out_axes_none(f: Fn, num_dims: int = 2, **options: Any) -> Fn:
    """C7: the chunked E10 message suggests out_axes=None."""
    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any) -> Any:
        try:
            return apply(*args)
        except ValueError as e:
            if str(e).startswith("BatchApply: cannot split output"):
                raise ValueError(str(e) + " Or pass out_axes=None for it.") from None
            raise

    return call


def weak_is_a_dtype(f: Fn, num_dims: int = 2, *, chunk_size: Any = None, **options: Any) -> Fn:
    """A5: a weak chunk output and a strong one raise E17."""
    calls: list[Any] = []

    def g(*a: Any) -> Any:
        out = f(*a)
        calls.append(getattr(out, "weak_type", None))
        if len(set(calls)) > 1:
            raise ValueError("BatchApply: chunk outputs disagree: weak type")
        return out

    apply = batchapply.BatchApply(g, num_dims, chunk_size=chunk_size, **options)

    def call(*args: Any) -> Any:
        calls.clear()
        return apply(*args)

    return call


def e22_under_any_trace(f: Fn, num_dims: int = 2, *, row_order: Any = "C", **options: Any) -> Fn:
    """C4 as old batchapply: shard_major raises E22 under any trace."""
    apply = batchapply.BatchApply(f, num_dims, row_order=row_order, **options)

    def call(*args: Any) -> Any:
        if row_order == "shard_major" and any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(args)):
            raise ValueError("BatchApply: row_order='shard_major' cannot see the sharding of args[0]")
        return apply(*args)

    return call


def warm_path_upcasts(f: Fn, num_dims: int = 2, **options: Any) -> Fn:
    """A path taken once a call repeats (from an object's third call on, as a cache or a program
    compiled in the background would be) that returns bfloat16 outputs as float32: BA-5.6 on
    repeated calls only (issue 26; every kit check that calls an object once passes it)."""
    apply = batchapply.BatchApply(f, num_dims, **options)
    calls = [0]

    def upcast(y: Any) -> Any:
        return y.astype(np.float32) if isinstance(y, jax.Array) and y.dtype == jax.numpy.bfloat16 else y

    def call(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        out = apply(*args, **kwargs)
        return jax.tree.map(upcast, out) if calls[0] >= 3 else out

    return call


def steady_path_copies_kept_leaves(f: Fn, num_dims: int = 2, **options: Any) -> Fn:
    """A path taken from an object's fourth call on (as a plan kept per signature would be) on
    which ``f`` gets a copy of each ``jax.Array`` of lower rank than ``num_dims`` instead of the
    very object: BA-1.2 on repeated calls only (issue 26)."""
    batchapply.BatchApply(f, num_dims, **options)  # the construction errors, as batchapply raises them
    calls = [0]

    def copy_low(x: Any) -> Any:
        return jax.numpy.array(x, copy=True) if isinstance(x, jax.Array) and x.ndim < num_dims else x

    def g(*args: Any, **kwargs: Any) -> Any:
        if calls[0] >= 4:
            args, kwargs = jax.tree.map(copy_low, (args, kwargs))
        return f(*args, **kwargs)

    apply = batchapply.BatchApply(g, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return apply(*args, **kwargs)

    return call


def tree_kept_unguarded(f: Fn, num_dims: int = 2, **options: Any) -> Fn:
    """Keeps the last call's tree structure and compares the next one's with ``==``, unguarded,
    as a plan kept per tree structure could: node data whose ``==`` has no truth value raises
    from a call once it meets other node data (BA-1.3 on repeated calls only; issue 26)."""
    apply = batchapply.BatchApply(f, num_dims, **options)
    last: list[Any] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        try:  # batchapply's own flatten: it gives back what a failed sort in jax's takes (BA-1.5)
            treedef = _trees.flatten((args, kwargs), (args, kwargs), ("args", "kwargs"))[1]
        except Exception:  # a tree that cannot be flattened: batchapply raises its own error
            return apply(*args, **kwargs)
        if last and treedef == last[0]:  # the one fault: this comparison may raise
            pass  # the kept plan would be used
        last[:] = [treedef]
        return apply(*args, **kwargs)

    return call
