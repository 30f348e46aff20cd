"""Deliberately broken BatchApply factories, for the conformance kit's own tests."""

from __future__ import annotations

import contextlib
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
        if not _is_tracer(x) and getattr(x, "is_deleted", lambda: False)():
            return x  # the wrapped batchapply raises E28 (BA-5.9)
        return x.transpose(reverse + tuple(range(num_dims, x.ndim)))

    def call(*args: Any, **kwargs: Any) -> Any:
        return _tree_map(flip, apply(*_tree_map(flip, args), **_tree_map(flip, kwargs)))

    return call


def _sortable(tree: Any) -> bool:
    """Whether every dict in ``tree`` has keys that sort. jax's flatten of one that has not leaks
    the recursion budget (jaxlib 0.10.2), which the kit's BA-1.5 check sees: the wrappers leave
    such a tree to the wrapped ``batchapply``, which raises E27 and gives the budget back."""
    from batchapply import _trees

    try:
        _trees.raise_if_unsortable(tree, "tree")
    except TypeError:
        return False
    return True


def _tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``jax.tree_util.tree_map``, or ``tree`` as it is where jax cannot flatten it (a dict with
    unsortable keys: the wrapped ``batchapply`` raises its own error, E27, which is not the fault
    under test)."""
    if not _sortable(tree):
        return tree
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
        with jax.enable_x64(True):  # 64-bit NumPy inputs stay 64-bit; f then runs as the caller's
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


# ---- the corpus: one fault each, as real implementations go wrong --------------------------------
#
# Each target is ``batchapply.BatchApply`` (or the reference's behaviour) with ONE fault, modelled on
# a way real BatchApply-like helpers go wrong: Haiku 0.0.x and flax.linen (``jnp.asarray`` on every
# leaf, leading shape from the first leaf, no checks), Sonnet 1/2 and TF-Agents' ``BatchSquash``
# (``reshape((-1,) + trailing)``, the batch shape stored from one tensor), the ``merge_leading_dims``
# helpers of RL libraries (leading shape from the positional arguments only), and jit-based fast
# paths. ``CORPUS`` maps each to the clause the kit must FAIL; tests/test_conformance.py checks it.


def _flat(tree: Any) -> list[Any]:
    """The leaves of ``tree`` (jax's flattening), or [] where jax cannot flatten it."""
    if not _sortable(tree):
        return []
    try:
        return list(tree_util.tree_leaves(tree))
    except (TypeError, ValueError):
        return []


def _is_jax(x: Any) -> bool:
    import jax

    return isinstance(x, jax.Array)


def _is_key(x: Any) -> bool:
    import jax

    return _is_jax(x) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_tracer(x: Any) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def _leading(args: Any, kwargs: Any, num_dims: int) -> tuple[int, ...] | None:
    for x in _flat((args, kwargs)):
        if hasattr(x, "shape") and hasattr(x, "dtype") and len(x.shape) >= num_dims:
            return tuple(x.shape[:num_dims])
    return None


def _cat(parts: list[Any]) -> Any:
    import jax.numpy as jnp

    if any(isinstance(p, np.ma.MaskedArray) for p in parts):
        return np.ma.concatenate(parts)
    if any(_is_jax(p) for p in parts):
        return jnp.concatenate(parts)
    return np.concatenate(parts)


def _forwarding(
    transform_in: Callable[[Any], Any] | None = None, transform_out: Callable[[Any], Any] | None = None
):
    """A factory: ``batchapply.BatchApply`` with ``transform_in`` on every input leaf and
    ``transform_out`` on every output leaf (both where jax can flatten the tree)."""

    def make(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
        import batchapply

        apply = batchapply.BatchApply(f, num_dims, **options)

        def call(*args: Any, **kwargs: Any) -> Any:
            if transform_in is not None:
                args, kwargs = _tree_map(transform_in, (args, kwargs))
            out = apply(*args, **kwargs)
            return out if transform_out is None else _tree_map(transform_out, out)

        return call

    return make


def _checked(f: Any, num_dims: Any, **options: Any) -> None:
    """``batchapply.BatchApply(f, num_dims, **options)``, thrown away: a target that wraps ``f``
    lets batchapply check ``f`` and the options at construction first (E1 to E5, E14, E15, E20),
    so that its one fault is the only one."""
    import batchapply

    batchapply.BatchApply(f, num_dims, **options)


# Section 1 ------------------------------------------------------------------------------------


def _scalar_as_array(x: Any) -> Any:
    return np.asarray(x) if type(x) in (int, float, bool, complex) else x


scalars_as_arrays = _forwarding(_scalar_as_array)
"""Python scalars become 0-d arrays before the call, as ``jnp.asarray`` in Haiku's and flax's
``ndim_at_least`` does: ``f`` no longer gets the very same object (BA-1.2)."""


class _Opaque:
    def __init__(self, node: Any) -> None:
        self.node = node


def nodes_as_leaves(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Custom pytree nodes are not containers (``tf.nest`` knows only its own types): a node among
    the arguments reaches ``f`` whole, its arrays not merged (BA-1.3)."""
    import batchapply
    from batchapply_conformance.nodes import NODE_TYPES

    def unbox(x: Any) -> Any:
        return x.node if isinstance(x, _Opaque) else x

    def g(*args: Any, **kwargs: Any) -> Any:
        return f(*map(unbox, args), **{k: unbox(v) for k, v in kwargs.items()})

    _checked(f, num_dims, **options)
    apply = batchapply.BatchApply(g, num_dims, **options)

    def box(x: Any) -> Any:
        return _Opaque(x) if isinstance(x, NODE_TYPES) else x

    def call(*args: Any, **kwargs: Any) -> Any:
        return apply(*map(box, args), **{k: box(v) for k, v in kwargs.items()})

    return call


def _count_leaves(tree: Any) -> int:
    if isinstance(tree, (list, tuple)):
        return sum(_count_leaves(t) for t in tree)
    if isinstance(tree, dict):
        return sum(_count_leaves(t) for t in tree.values())
    return 1


def recursive_walk(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Walks the inputs with Python recursion first (to count the leaves): a list nested 600 deep
    raises RecursionError (BA-1.5)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        _count_leaves((args, kwargs))
        return apply(*args, **kwargs)

    return call


def reshape_minus_one(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Merges with ``x.reshape((-1,) + x.shape[num_dims:])`` (Sonnet, TF-Agents' BatchSquash): ``-1``
    cannot be inferred for rows without elements, e.g. shape (2, 3, 0) (BA-1.6)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        for x in _flat((args, kwargs)):
            if isinstance(x, np.ndarray) and x.ndim >= num_dims:
                x.reshape((-1,) + x.shape[num_dims:])  # the merge this target does (the result is the same)
        return apply(*args, **kwargs)

    return call


# Section 2 ------------------------------------------------------------------------------------


def num_dims_coerced(f: Callable[..., Any], num_dims: Any = 2, **options: Any) -> Callable[..., Any]:
    """``num_dims`` goes through ``int()``: 2.0, True and "2" are accepted (BA-2.2)."""
    import batchapply

    with contextlib.suppress(TypeError, ValueError):
        num_dims = int(num_dims)
    return batchapply.BatchApply(f, num_dims, **options)


def f_checked_at_call(f: Any, num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """``f`` is checked only when called (flax.linen): a non-callable passes construction (BA-2.3)."""
    import batchapply

    if callable(f):
        return batchapply.BatchApply(f, num_dims, **options)
    batchapply.BatchApply(_identity, num_dims, **options)  # every other argument is checked
    return lambda *args, **kwargs: batchapply.BatchApply(f, num_dims, **options)(*args, **kwargs)


def _identity(*args: Any, **kwargs: Any) -> Any:
    return args, kwargs


def in_axes_dict(
    f: Callable[..., Any], num_dims: int = 2, *, in_axes: Any = 0, **options: Any
) -> Callable[..., Any]:
    """A dict ``in_axes`` is read as the tuple of its values instead of raising E5 (BA-2.5)."""
    import batchapply

    if isinstance(in_axes, dict):
        in_axes = tuple(in_axes.values())
    return batchapply.BatchApply(f, num_dims, in_axes=in_axes, **options)


# Section 3 ------------------------------------------------------------------------------------


def leading_from_first_leaf(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Haiku's merge: the leading shape comes from the first leaf and the others are reshaped to it
    when their sizes allow, so (2, 3, 4) and (3, 2, 4) are merged together (BA-3.2, no E9)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def conform(args: Any, kwargs: Any) -> Any:
        lead = _leading(args, kwargs, num_dims)
        if lead is None or options.get("in_axes", 0) != 0:
            return args, kwargs

        def to_lead(x: Any) -> Any:
            if (
                isinstance(x, np.ndarray)
                and x.ndim >= num_dims
                and x.shape[:num_dims] != lead
                and int(np.prod(x.shape[:num_dims])) == int(np.prod(lead))
            ):
                return x.reshape(lead + x.shape[num_dims:])
            return x

        return _tree_map(to_lead, (args, kwargs))

    def call(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = conform(args, kwargs)
        return apply(*args, **kwargs)

    return call


def positional_leading_only(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """An RL helper's ``merge_leading_dims``: the leading shape is looked up in the positional
    arguments only, so a call whose batch is all keywords raises E8 (BA-4.5). The keyword leaves
    are hidden from ``batchapply`` only for that lookup: it raises E8 in E8's place (after E27,
    E6 and E7), and merges them as usual when a positional leaf gives the leading shape."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def hidden(x: Any) -> Any:
        return np.zeros(()) if len(getattr(x, "shape", ())) >= num_dims else x

    def call(*args: Any, **kwargs: Any) -> Any:
        if _leading(args, {}, num_dims) is None and _sortable(kwargs):
            kwargs = _tree_map(hidden, kwargs)  # no leaf left to merge: batchapply raises E8
        return apply(*args, **kwargs)

    return call


# Section 4 ------------------------------------------------------------------------------------


def in_axes_none_merges(
    f: Callable[..., Any], num_dims: int = 2, *, in_axes: Any = 0, **options: Any
) -> Callable[..., Any]:
    """``in_axes=None`` is read as 0 (``None`` taken for "default"): positional leaves are merged (BA-4.2)."""
    import batchapply

    return batchapply.BatchApply(f, num_dims, in_axes=0 if in_axes is None else in_axes, **options)


def in_axes_length_unchecked(
    f: Callable[..., Any], num_dims: int = 2, *, in_axes: Any = 0, **options: Any
) -> Callable[..., Any]:
    """A tuple ``in_axes`` of another length than the call's positional arguments is made to fit
    instead of raising E6: cut to their number, or padded with ``0`` (BA-4.3)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, in_axes=in_axes, **options)
    if not isinstance(in_axes, (tuple, list)):
        return apply

    def call(*args: Any, **kwargs: Any) -> Any:
        if len(in_axes) == len(args):
            return apply(*args, **kwargs)
        fitted = type(in_axes)([*in_axes[: len(args)], *[0] * (len(args) - len(in_axes))])
        return batchapply.BatchApply(f, num_dims, in_axes=fitted, **options)(*args, **kwargs)

    return call


# ``ignores_options`` (all four options taken and dropped, BA-4.3) was retired in issue 23: it
# carried four faults, each failing its own section. BA-4.3 is ``in_axes_length_unchecked``'s.


# Section 5 ------------------------------------------------------------------------------------


def _bfloat16_up(x: Any) -> Any:
    import jax.numpy as jnp

    return x.astype(jnp.float32) if _is_jax(x) and x.dtype == jnp.bfloat16 else x


bfloat16_as_float32 = _forwarding(_bfloat16_up)
"""bfloat16 ``jax.Array`` inputs reach ``f`` as float32 (a "compute in float32" fast path) (BA-5.2)."""


def writes_output_in_place(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Saves memory by writing an output into an input buffer of the same shape and dtype, one
    that no output shares (so the outputs stay right): the input changes (BA-5.5)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        out = apply(*args, **kwargs)
        outputs = [y for y in _flat(out) if type(y) is np.ndarray]
        inputs = [x for x in _flat((args, kwargs)) if type(x) is np.ndarray and x.flags.writeable]
        for x in inputs:
            if any(np.shares_memory(x, y) for y in outputs):
                continue
            for y in outputs:
                if (y.shape, y.dtype) == (x.shape, x.dtype):
                    x[...] = y
                    return out
        return out

    return call


def _strong(x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.array(x, dtype=x.dtype) if _is_jax(x) and getattr(x, "weak_type", False) else x


weak_type_dropped = _forwarding(_strong)
"""Weak-typed ``jax.Array`` inputs are copied with an explicit dtype, which makes them strong (BA-5.6)."""


def _canonical(x: Any) -> Any:
    import jax.numpy as jnp

    if _is_jax(x) and not _is_key(x) and not _is_tracer(x) and x.dtype.itemsize == 8:
        return jnp.asarray(np.asarray(x))  # outside enable_x64: 32 bits
    return x


x64_truncated = _forwarding(_canonical)
"""A ``jax.Array`` made under ``jax.enable_x64`` goes through NumPy and back: 32 bits (BA-5.6)."""


def _to_default_device(x: Any) -> Any:
    import jax

    if _is_jax(x) and not _is_tracer(x) and not x.is_deleted() and len(x.devices()) == 1:
        return jax.device_put(x, jax.devices()[0])
    return x


moved_to_default_device = _forwarding(_to_default_device)
"""Every single-device ``jax.Array`` is put on the default device first (BA-5.6)."""


def _unmask(x: Any) -> Any:
    return np.asarray(x) if isinstance(x, np.ma.MaskedArray) else x


mask_dropped = _forwarding(_unmask)
"""Masked arrays go through ``np.asarray``: ``f`` gets the data without the mask (BA-5.7)."""


# Section 6 ------------------------------------------------------------------------------------


def jit_cached_f(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """A fast path that keeps a compiled program of ``f``: without ``chunk_size``, in the C order,
    when every input leaf is a ``jax.Array`` of 32 bits or fewer on one device, ``f`` goes through
    one ``jax.jit`` of it, kept with the object: ``f`` is not run again for inputs of the same
    signature, so a closure that changed since is not seen (BA-6.1). Output leaves that ``f``
    returned as NumPy arrays while traced are given back as NumPy arrays; an ``f`` that cannot be
    traced runs itself."""
    import jax

    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)
    if options.get("chunk_size") is not None or options.get("row_order", "C") != "C":
        return apply
    numpy: list[bool] = []  # which output leaves f returned as NumPy arrays, found while jit traces it

    def traced(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        numpy[:] = [type(y) is np.ndarray for y in _flat(out)]
        return out

    compiled = jax.jit(traced)
    untraceable = (
        jax.errors.TracerArrayConversionError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerBoolConversionError,
        jax.errors.TracerIntegerConversionError,
    )

    def g(*args: Any, **kwargs: Any) -> Any:
        try:
            out = compiled(*args, **kwargs)
        except untraceable:
            return f(*args, **kwargs)  # f needs concrete values: no fast path
        except TypeError as e:
            if "JAX type" not in str(e):
                raise
            return f(*args, **kwargs)  # f returns what jax.jit cannot: no fast path
        kinds = iter(numpy)
        return _tree_map(lambda y: np.asarray(y) if next(kinds, False) else y, out)

    fast = batchapply.BatchApply(g, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        leaves = _flat((args, kwargs))
        if (
            leaves
            and all(
                _is_jax(x) and not _is_tracer(x) and not x.is_deleted() and x.dtype.itemsize <= 4
                for x in leaves
            )
            and len({frozenset(x.devices()) for x in leaves}) == 1
            and len(next(iter(leaves)).devices()) == 1
        ):
            return fast(*args, **kwargs)
        return apply(*args, **kwargs)

    return call


class _SelfClash:
    def __init__(self, f: Callable[..., Any], num_dims: int = 2, **options: Any) -> None:
        import batchapply

        self._apply = batchapply.BatchApply(f, num_dims, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # self is not positional-only
        return self._apply(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # the options, read-only (BA-2.6), are batchapply's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._apply, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "_apply":
            raise AttributeError(f"the option {name!r} is read-only")
        object.__setattr__(self, name, value)


self_keyword_clash = _SelfClash
"""``__call__(self, *args, **kwargs)``, as flax.linen's: a keyword named ``self`` clashes (BA-6.2)."""


# Section 7 ------------------------------------------------------------------------------------


def tuples_as_lists(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """A tuple output comes back as a list (the split rebuilds sequences as lists) (BA-7.1)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        out = apply(*args, **kwargs)
        return list(out) if type(out) is tuple else out

    return call


def _python_as_array(x: Any) -> Any:
    return np.asarray(x) if isinstance(x, (int, float, complex, str, bytes)) else x


outputs_as_arrays = _forwarding(transform_out=_python_as_array)
"""Non-array output leaves (ints, strings) come back as 0-d arrays (``jnp.asarray`` on outputs) (BA-7.4)."""


def scalar_outputs_broadcast(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """A rank-0 output (a loss) is broadcast to every row instead of raising E10 (BA-7.3)."""
    import batchapply

    def g(*args: Any, **kwargs: Any) -> Any:
        rows = next((x.shape[0] for x in _flat((args, kwargs)) if getattr(x, "ndim", 0) >= 1), 0)

        def widen(y: Any) -> Any:
            if hasattr(y, "shape") and hasattr(y, "dtype") and len(y.shape) == 0:
                import jax.numpy as jnp

                return (jnp if _is_jax(y) else np).broadcast_to(y, (rows,))
            return y

        return _tree_map(widen, f(*args, **kwargs))

    _checked(f, num_dims, **options)
    return batchapply.BatchApply(g, num_dims, **options)


# Section 8 ------------------------------------------------------------------------------------


def host_shape_probe(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Reads the leading shape through ``np.asarray`` of the first jax leaf: fine eagerly, a
    ``TracerArrayConversionError`` under ``jax.jit`` (BA-8.1)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        for x in _flat((args, kwargs)):
            if _is_jax(x) and not _is_key(x) and (_is_tracer(x) or not x.is_deleted()):
                np.asarray(x)
                break
        return apply(*args, **kwargs)

    return call


# Section 9: tests/broken_helpers.py (a module's helpers are looked up next to its BatchApply).

# Section 10 -----------------------------------------------------------------------------------


def nan_check_first(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Checks eager float inputs for NaN first (a debug mode): on a deleted ``jax.Array`` jax's own
    RuntimeError escapes instead of E28 (BA-10.1)."""
    import jax.numpy as jnp

    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        for x in _flat((args, kwargs)):
            floating = (
                _is_jax(x) and not _is_tracer(x) and not _is_key(x) and jnp.issubdtype(x.dtype, jnp.floating)
            )
            if floating and bool(jnp.isnan(x).any()):
                raise FloatingPointError("NaN in the inputs")
        return apply(*args, **kwargs)

    return call


def reworded_errors(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Call errors are re-raised with the project's own wording, not SPEC's prefixes (BA-10.1)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return apply(*args, **kwargs)
        except (ValueError, TypeError) as e:
            if str(e).startswith("BatchApply"):
                raise type(e)("batch_apply failed: " + str(e).split(": ", 1)[-1]) from None
            raise

    return call


def jax_flattens_first(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Flattens the inputs with ``jax.tree_util`` first: a dict with unsortable keys raises jax's own
    error, not E27 (BA-1.3)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        tree_util.tree_leaves((args, kwargs))
        return apply(*args, **kwargs)

    return call


# Section 13 -----------------------------------------------------------------------------------


def _chunk_sizes(n: int, c: int) -> list[int]:
    return [c] * (n // c) + ([n % c] if n % c else [])


def _chunk_rewriter(rewrite: str):
    """A factory: chunked ``batchapply.BatchApply`` whose ``f`` sees each chunk rewritten:
    ``"pad"`` pads the short last chunk to ``chunk_size`` rows with copies of its first row;
    ``"overlap"`` takes the last ``chunk_size`` rows instead (overlapping the chunk before), then
    drops the extra output rows."""

    def make(
        f: Callable[..., Any],
        num_dims: int = 2,
        *,
        chunk_size: Any = None,
        row_order: Any = "C",
        **options: Any,
    ) -> Callable[..., Any]:
        import batchapply

        state: dict[str, Any] = {}

        def g(*args: Any, **kwargs: Any) -> Any:
            sizes, k = state["sizes"], state["calls"]
            state["calls"] += 1
            m = sizes[k] if k < len(sizes) else -1
            c = chunk_size
            if m <= 0 or m == c or len(sizes) < 2 or row_order != "C":
                state["previous"] = (args, kwargs)
                return f(*args, **kwargs)
            previous = state["previous"]

            def widen(x: Any, before: Any) -> Any:
                if not (
                    hasattr(x, "shape") and hasattr(x, "dtype") and len(x.shape) >= 1 and x.shape[0] == m
                ):
                    return x
                if rewrite == "pad":
                    return _cat([x] + [x[:1]] * (c - m))
                return _cat([before[m - c :], x])

            try:
                args, kwargs = tree_util.tree_map(widen, (args, kwargs), previous)
            except (TypeError, ValueError):
                return f(*args, **kwargs)
            out = f(*args, **kwargs)

            def cut(y: Any) -> Any:  # only rows of the widened chunk: any other leaf gets E10 as due
                if not (hasattr(y, "shape") and len(y.shape) >= 1 and y.shape[0] == c):
                    return y
                return y[:m] if rewrite == "pad" else y[c - m :]

            return _tree_map(cut, out)

        _checked(f, num_dims, chunk_size=chunk_size, row_order=row_order, **options)
        apply = batchapply.BatchApply(g, num_dims, chunk_size=chunk_size, row_order=row_order, **options)

        def call(*args: Any, **kwargs: Any) -> Any:
            n = _rows(args, kwargs, num_dims)  # None: symbolic (jax.export), batchapply raises E18
            state.update(calls=0, sizes=_chunk_sizes(n, chunk_size) if chunk_size and n else [])
            return apply(*args, **kwargs)

        return call

    return make


padded_last_chunk = _chunk_rewriter("pad")
"""The short last chunk is padded to ``chunk_size`` rows (one compiled shape), outputs cut (BA-13.3)."""

overlapping_last_chunk = _chunk_rewriter("overlap")
"""The last chunk is the last ``chunk_size`` rows, overlapping the one before (BA-13.3)."""


def warm_up_call(
    f: Callable[..., Any], num_dims: int = 2, *, chunk_size: Any = None, **options: Any
) -> Callable[..., Any]:
    """With ``chunk_size``, runs the chunked call once to warm up (compile, find output shapes) and
    returns the second run: ``f`` runs twice per chunk (BA-13.4)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, chunk_size=chunk_size, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        if chunk_size is not None:
            apply(*args, **kwargs)
        return apply(*args, **kwargs)

    return call


def _numpy_to_jax_out(x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.asarray(x) if type(x) is np.ndarray and x.dtype.kind in "biufc" and x.dtype.itemsize < 8 else x


def chunk_outputs_as_jax(
    f: Callable[..., Any], num_dims: int = 2, *, chunk_size: Any = None, **options: Any
) -> Callable[..., Any]:
    """Concatenates the chunks' outputs with ``jnp.concatenate``: NumPy outputs come back as
    ``jax.Array`` when the call is cut into chunks (BA-13.8)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, chunk_size=chunk_size, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        out = apply(*args, **kwargs)
        lead = _leading(args, kwargs, num_dims)
        if chunk_size is not None and lead is not None and int(np.prod(lead)) > chunk_size:
            return _tree_map(_numpy_to_jax_out, out)
        return out

    return call


def unchunked_when_divisible(
    f: Callable[..., Any], num_dims: int = 2, *, chunk_size: Any = None, **options: Any
) -> Callable[..., Any]:
    """Skips chunking when ``chunk_size`` divides the rows ("no remainder, no need"): ``f`` sees
    every row at once (BA-13.3). ``batchapply`` gets a ``chunk_size`` of at least ``N``
    (``_one_chunk``), so that it still raises every error of a chunked call (E16 whatever ``N``)."""
    import batchapply

    chunked = batchapply.BatchApply(f, num_dims, chunk_size=chunk_size, **options)
    if chunk_size is None:
        return chunked

    def call(*args: Any, **kwargs: Any) -> Any:
        n = _rows(args, kwargs, num_dims)
        if n is None or n <= chunk_size or n % chunk_size:
            return chunked(*args, **kwargs)
        whole = _one_chunk(chunk_size, n)
        return batchapply.BatchApply(f, num_dims, chunk_size=whole, **options)(*args, **kwargs)

    return call


def chunk_dtypes_unified(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Casts every chunk's outputs to the dtypes of the first chunk's instead of raising E17
    (BA-13.7): only leaves of another dtype, in an output of the first chunk's structure (what
    ``batchapply`` checks before, E27 and E17 for another structure, it still checks)."""
    import batchapply

    first: list[list[Any]] = []

    def g(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        if not _sortable(out):
            return out  # batchapply raises E27
        leaves, treedef = tree_util.tree_flatten(out)
        if not first:
            first.append([getattr(y, "dtype", None) for y in leaves])
            return out
        dtypes = first[0]
        if len(dtypes) != len(leaves):
            return out  # another structure: batchapply raises E17
        cast = [
            y.astype(d) if d is not None and hasattr(y, "astype") and getattr(y, "dtype", d) != d else y
            for y, d in zip(leaves, dtypes, strict=True)
        ]
        return tree_util.tree_unflatten(treedef, cast)

    _checked(f, num_dims, **options)
    apply = batchapply.BatchApply(g, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        first.clear()
        return apply(*args, **kwargs)

    return call


# Section 14 -----------------------------------------------------------------------------------


class _Checked(Exception):
    """Raised by ``_stop`` in place of ``f``: the wrapped ``batchapply`` found no error before ``f``."""


def _stop(*args: Any, **kwargs: Any) -> Any:
    raise _Checked


def row_order_only_for_jax(
    f: Callable[..., Any], num_dims: int = 2, *, row_order: Any = "C", **options: Any
) -> Callable[..., Any]:
    """Shard counts are applied only when a ``jax.Array`` is among the inputs ("NumPy is never
    sharded"): NumPy inputs are merged in the C order whatever ``row_order`` says (BA-14.2). The
    counts are still checked against the inputs (E21, E24: ``batchapply`` with them runs up to
    ``f`` first)."""
    import batchapply

    ordered = batchapply.BatchApply(f, num_dims, row_order=row_order, **options)
    if not isinstance(row_order, (tuple, list)):
        return ordered
    checked = batchapply.BatchApply(_stop, num_dims, row_order=row_order, **options)
    plain = batchapply.BatchApply(f, num_dims, **options)

    def call(*args: Any, **kwargs: Any) -> Any:
        if any(_is_jax(x) for x in _flat((args, kwargs))):
            return ordered(*args, **kwargs)
        with contextlib.suppress(_Checked):
            checked(*args, **kwargs)  # every error due before f, in its order
        return plain(*args, **kwargs)

    return call


def shard_major_as_c(
    f: Callable[..., Any], num_dims: int = 2, *, row_order: Any = "C", **options: Any
) -> Callable[..., Any]:
    """``"shard_major"`` is taken for the C order (the sharding is never read) (BA-14.2, BA-14.4)."""
    import batchapply

    return batchapply.BatchApply(
        f, num_dims, row_order="C" if row_order == "shard_major" else row_order, **options
    )


def _rows(args: Any, kwargs: Any, num_dims: int) -> int | None:
    """The merged rows of a call (from its first leaf of rank ``num_dims`` or more), or None where
    there is no such leaf or its leading shape is symbolic (``jax.export``)."""
    lead = _leading(args, kwargs, num_dims)
    if lead is None or not all(type(d) is int for d in lead):
        return None
    return int(np.prod(lead))


def _one_chunk(chunk_size: int, n: int) -> int:
    """A ``chunk_size`` of at least ``n`` rows that is a multiple of a product of shard counts
    exactly when ``chunk_size`` is (so that ``batchapply`` still raises E24 where it is due):
    ``chunk_size`` times a prime above ``n``, which no product of counts (at most ``n``) divides."""
    prime = next(k for k in range(n + 1, 2 * n + 2) if all(k % p for p in range(2, k)))
    return chunk_size * prime


def global_chunks(
    f: Callable[..., Any], num_dims: int = 2, *, row_order: Any = "C", chunk_size: Any = None, **options: Any
) -> Callable[..., Any]:
    """With shard counts and ``chunk_size``, the merged rows are not chunked at all ("chunks would
    cross shards"): ``f`` sees every row (BA-14.9). ``batchapply`` gets a ``chunk_size`` of at
    least ``N`` (``_one_chunk``), so that it still raises every error of a chunked call."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, row_order=row_order, chunk_size=chunk_size, **options)
    if row_order == "C" or chunk_size is None:
        return apply

    def call(*args: Any, **kwargs: Any) -> Any:
        n = _rows(args, kwargs, num_dims)
        if n is None or n <= chunk_size:
            return apply(*args, **kwargs)
        whole = _one_chunk(chunk_size, n)
        return batchapply.BatchApply(f, num_dims, row_order=row_order, chunk_size=whole, **options)(
            *args, **kwargs
        )

    return call


def _transposed(
    f: Callable[..., Any],
    num_dims: int,
    order_of: Callable[[int], tuple[int, ...]],
    when: Callable[[Any], bool],
) -> Any:
    """``batchapply.BatchApply`` whose leading dims are permuted by ``order_of(num_dims)`` around the
    call (so rows are merged and split in that order) for calls where ``when(leaves)``; the wrapped
    ``batchapply`` checks ``f`` and ``num_dims`` first (E1 to E3)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims)
    order = order_of(num_dims)

    def permute(x: Any) -> Any:
        if not hasattr(x, "transpose") or getattr(x, "ndim", 0) < num_dims or isinstance(x, np.generic):
            return x
        if not _is_tracer(x) and getattr(x, "is_deleted", lambda: False)():
            return x
        return x.transpose(order + tuple(range(num_dims, x.ndim)))

    inverse = tuple(int(i) for i in np.argsort(order))

    def unpermute(x: Any) -> Any:
        if not hasattr(x, "transpose") or getattr(x, "ndim", 0) < num_dims or isinstance(x, np.generic):
            return x
        return x.transpose(inverse + tuple(range(num_dims, x.ndim)))

    def call(*args: Any, **kwargs: Any) -> Any:
        if not when(_flat((args, kwargs))):
            return apply(*args, **kwargs)
        return _tree_map(unpermute, apply(*_tree_map(permute, args), **_tree_map(permute, kwargs)))

    return call


def jax_inputs_transposed(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    """When every input is a ``jax.Array``, the rows are merged and split in (b, t) order, not
    (t, b): a jax fast path that transposes to put the batch first (BA-5.1)."""

    def reverse(n: int) -> tuple[int, ...]:
        return tuple(range(n))[::-1]

    return _transposed(f, num_dims, reverse, lambda leaves: bool(leaves) and all(_is_jax(x) for x in leaves))


def swapped_dims(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    """With 3 or more leading dims, the last two are merged (and split) swapped (BA-5.1)."""

    def last_two_swapped(n: int) -> tuple[int, ...]:
        return tuple(range(n - 2)) + (n - 1, n - 2) if n >= 3 else tuple(range(n))

    return _transposed(f, num_dims, last_two_swapped, lambda leaves: num_dims >= 3)


def chunks_last_first(
    f: Callable[..., Any], num_dims: int = 2, *, chunk_size: Any = None, **options: Any
) -> Callable[..., Any]:
    """Where ``f`` is called once per chunk (eagerly, or under a trace that cannot use
    ``jax.lax.map``), the chunks run last chunk first (BA-13.4). ``batchapply.BatchApply`` whose
    chunk loop first calls ``f`` on every chunk's rows in reverse order (taken as its own loop takes
    them), then runs that loop on the outputs kept: its checks per chunk (E16, E10, E17), its join
    and its every other error are batchapply's own."""
    from batchapply import _exec_chunks
    from batchapply._core import BatchApply

    _checked(f, num_dims, chunk_size=chunk_size, **options)
    kept: list[Any] = []

    def replay(*args: Any, **kwargs: Any) -> Any:
        return kept.pop(0) if kept else f(*args, **kwargs)

    class LastFirst(BatchApply):
        def _call_in_chunks(self, plan: Any, merged: list[Any], treedef: Any, paths: Any) -> Any:
            chunks = plan.chunks
            if chunks is None or chunks.executor != "loop":
                return super()._call_in_chunks(plan, merged, treedef, paths)
            size, c, rows_at = plan.size, chunks.chunk_size, chunks.rows_at
            rows = _exec_chunks._Rows([merged[i] for i in rows_at], size, chunks.dims, chunks.eager)
            outputs: dict[int, Any] = {}
            for start in reversed(range(0, size, c)):
                chunk = list(merged)
                for i, taken in zip(rows_at, rows.take(start, min(start + c, size)), strict=True):
                    chunk[i] = taken
                chunk_args, chunk_kwargs = tree_util.tree_unflatten(treedef, chunk)
                outputs[start] = f(*chunk_args, **chunk_kwargs)
            kept[:] = [outputs[start] for start in sorted(outputs)]
            try:
                return super()._call_in_chunks(plan, merged, treedef, paths)
            finally:
                kept.clear()

    return LastFirst(replay, num_dims, chunk_size=chunk_size, **options)


def unrolled_under_trace(
    f: Callable[..., Any], num_dims: int = 2, *, chunk_size: Any = None, **options: Any
) -> Callable[..., Any]:
    """Under a trace, calls ``f`` once per chunk as eager mode does (``f`` traced once per chunk, a
    program as long as ``N / c``), never in one ``jax.lax.map`` (BA-13.4): ``batchapply.BatchApply``
    with its per-chunk switch on, the one the Flax wrappers set for callables they cannot scan."""
    import batchapply

    class Unrolled(batchapply.BatchApply):
        _call_per_chunk = True

    return Unrolled(f, num_dims, chunk_size=chunk_size, **options)


CORPUS: dict[str, str] = {
    "scalars_as_arrays": "BA-1.2",
    "nodes_as_leaves": "BA-1.3",
    "recursive_walk": "BA-1.5",
    "reshape_minus_one": "BA-1.6",
    "num_dims_coerced": "BA-2.2",
    "f_checked_at_call": "BA-2.3",
    "in_axes_dict": "BA-2.5",
    "leading_from_first_leaf": "BA-3.2",
    "positional_leading_only": "BA-4.5",
    "in_axes_none_merges": "BA-4.2",
    "in_axes_length_unchecked": "BA-4.3",
    "fortran_order": "BA-5.1",
    "jax_inputs_transposed": "BA-5.1",
    "swapped_dims": "BA-5.1",
    "chunks_last_first": "BA-13.4",
    "unrolled_under_trace": "BA-13.4",
    "numpy_to_jax": "BA-5.3",
    "bfloat16_as_float32": "BA-5.2",
    "writes_output_in_place": "BA-5.5",
    "weak_type_dropped": "BA-5.6",
    "x64_truncated": "BA-5.6",
    "moved_to_default_device": "BA-5.6",
    "mask_dropped": "BA-5.7",
    "jit_cached_f": "BA-6.1",
    "self_keyword_clash": "BA-6.2",
    "tuples_as_lists": "BA-7.1",
    "vmap_split": "BA-7.2",
    "scalar_outputs_broadcast": "BA-7.3",
    "outputs_as_arrays": "BA-7.4",
    "host_shape_probe": "BA-8.1",
    "broken_helpers:BatchApply": "BA-9.2",
    "nan_check_first": "BA-10.1",
    "reworded_errors": "BA-10.1",
    "jax_flattens_first": "BA-1.7",
    "padded_last_chunk": "BA-13.3",
    "overlapping_last_chunk": "BA-13.3",
    "warm_up_call": "BA-13.4",
    "chunk_outputs_as_jax": "BA-13.8",
    "unchunked_when_divisible": "BA-13.3",
    "chunk_dtypes_unified": "BA-13.7",
    "row_order_only_for_jax": "BA-14.2",
    "shard_major_as_c": "BA-14.4",
    "global_chunks": "BA-14.9",
}
"""Each one-fault target (``broken_targets:NAME``, or ``module:attr``) and the clause it must FAIL."""

ALSO: dict[str, dict[str, str]] = {
    "bfloat16_as_float32": {"BA-5.6": "the bfloat16 leaf is a jax.Array, whose dtype BA-5.6 keeps too"},
    "x64_truncated": {"BA-5.2": "f gets the 64-bit leaf as 32-bit: another dtype"},
    "fortran_order": {"BA-7.2": "the split is in Fortran order too"},
    "jax_inputs_transposed": {"BA-7.2": "the split is in (b, t) order too"},
    "swapped_dims": {"BA-7.2": "the split swaps the two dims too"},
    "broken_helpers:BatchApply": {
        "BA-10.1": "split_leading_dim's rows (E12, E13, E29) are not raised",
        "BA-10.8": "so neither in the helpers' order",
        "BA-10.2": "NumPy's bare reshape ValueError escapes where E13 applies",
    },
    "f_checked_at_call": {
        "BA-10.1": "E1 is not raised at construction",
        "BA-10.3": "with a bad in_axes as well, E4 comes before E1",
    },
    "in_axes_dict": {"BA-10.1": "E4 is not raised for a dict in_axes"},
    "in_axes_length_unchecked": {
        "BA-10.1": "E6 is not raised",
        "BA-10.4": "so with a bad entry as well, E7 comes where E6 is due first",
    },
    "in_axes_none_merges": {"BA-10.1": "E8 is not raised where in_axes=None leaves no leaf to merge"},
    "positional_leading_only": {
        "BA-3.2": "keyword leaves that disagree on the leading shape get E8, not E9",
        "BA-10.1": "so the row raised is not the one due",
    },
    "num_dims_coerced": {"BA-10.1": "E2 is not raised for a num_dims that is not an int"},
    "jax_flattens_first": {
        "BA-10.1": "jax's own ValueError where E27 is due",
        "BA-10.4": "so E27 is not first either",
        "BA-1.5": "jax's failed sort leaks the recursion budget: a valid deep input then fails",
    },
    "leading_from_first_leaf": {
        "BA-3.1": "the leading shape comes from the first leaf, so the case that pins BA-3.1 gets no E9",
        "BA-10.1": "E9 is not raised",
    },
    "mask_dropped": {
        "BA-13.4": "under a trace the unmasked input goes through jax.lax.map, where a masked one goes "
        "one call per chunk"
    },
    "moved_to_default_device": {
        "BA-13.11": "device_put copies every input, so eager chunks hold it all",
        "BA-1.2": "device_put copies a jax.Array of lower rank too: f gets another object",
    },
    "jit_cached_f": {
        "BA-1.2": "f runs under its jit: it gets tracers, not the objects it was passed",
        "BA-1.3": "its jit compares tree structures: node data whose == has no truth value raises",
    },
    "nan_check_first": {
        "BA-5.9": "a deleted input raises jax's RuntimeError, not E28",
        "BA-10.4": "so E28 is not in its place",
        "BA-10.7": "E28 binds every implementation",
    },
    "nodes_as_leaves": {
        "BA-5.1": "the node's arrays reach f unmerged",
        "BA-13.5": "and unchunked: the chunks' outputs do not join into f's",
    },
    "reshape_minus_one": {
        "BA-5.4": "reshape(-1) cannot infer the size with N = 0 either",
        "BA-10.1": "NumPy's reshape error comes before the row that applies",
        "BA-10.2": "and it is a bare ValueError, not a row's",
    },
    "scalar_outputs_broadcast": {
        "BA-10.1": "E10 is not raised",
        "BA-13.6": "nor per chunk",
        "BA-10.6": "so E10 is not in the per-chunk order",
    },
    "numpy_to_jax": {
        "BA-13.4": "under jax.jit with chunk_size, the converted inputs go through jax.lax.map as "
        "tracers, where NumPy inputs go one call per chunk"
    },
    "weak_type_dropped": {"BA-13.7": "f returns what it gets: chunks that are all weak come back strong"},
    "warm_up_call": {
        "BA-13.2": "the warm-up is one more call of f where N <= chunk_size wants one",
    },
    "shard_major_as_c": {
        "BA-14.2": "the rows are merged and split in C order, not shard-major",
        "BA-14.3": "the call's counts are all 1, not the inputs': the outputs lose the inputs' layout",
        "BA-14.5": "the C order of a sharded batch needs collectives (under Explicit axes, E23)",
        "BA-14.6": "under Explicit axes the C order raises E23 where shard-major is local",
        "BA-14.9": "with chunk_size, E24 is not raised for counts that are never read",
        "BA-14.10": "C-order chunks of a sharded batch raise E25 where local chunks are due",
        "BA-10.1": "E22 and E24 are not raised: the counts are never read",
    },
    "row_order_only_for_jax": {
        "BA-14.9": "with chunk_size, NumPy chunks are cut in the C order, not from every shard's rows"
    },
    "chunk_dtypes_unified": {"BA-10.1": "E17 is not raised for chunks of other dtypes"},
    "global_chunks": {
        "BA-13.3": "the merged rows are not cut into chunks at all",
        "BA-13.4": "so f is called once, not once per chunk",
        "BA-13.7": "one call has no chunks to compare, so E17 is not raised",
        "BA-10.1": "E17 is not raised",
        "BA-14.10": "each device runs f on all its rows at once, not p per chunk",
    },
    "padded_last_chunk": {
        "BA-13.7": "f sees the padded last chunk with chunk_size rows, so an output shaped by the "
        "chunk's rows agrees with the first chunk's: E17 is not raised",
        "BA-10.1": "so E17 is not raised",
        "BA-13.6": "f's output of chunk_size rows for the padded last chunk is cut back to its rows, "
        "so a per-chunk output of chunk_size values (y.sum(0)) is not E10",
    },
    "overlapping_last_chunk": {
        "BA-13.7": "f sees the last chunk with chunk_size rows, so an output shaped by the chunk's "
        "rows agrees with the first chunk's: E17 is not raised",
        "BA-10.1": "so E17 is not raised",
        "BA-13.6": "f's output of chunk_size rows for the widened last chunk is cut back to its rows, "
        "so a per-chunk output of chunk_size values (y.sum(0)) is not E10",
    },
    "unchunked_when_divisible": {
        "BA-13.4": "f is called once, not once per chunk",
        "BA-13.7": "one call has no chunks to compare: E17 is not raised, and the output is weak "
        "where that one call's is",
        "BA-13.11": "f runs on every row at once, so its intermediates follow N, not chunk_size",
        "BA-14.11": "a batch sharded in the C order is not cut into chunks, so E25 is not raised",
        "BA-10.1": "E17 and E25 are not raised",
        "BA-10.7": "E25 binds both packages for a concrete jax.Array",
    },
    "host_shape_probe": {
        clause: "f cannot be traced (np.asarray of a tracer), so every traced check fails"
        for clause in (
            "BA-8.2",
            "BA-8.3",
            "BA-8.4",
            "BA-8.5",
            "BA-8.6",
            "BA-8.7",
            "BA-13.4",
            "BA-13.9",
            "BA-13.10",
            "BA-14.4",
            "BA-14.5",
            "BA-14.6",
            "BA-14.7",
            "BA-14.8",
            "BA-14.9",
            "BA-14.10",
            "BA-14.11",
            "BA-14.12",
            "BA-10.1",
        )
    },
}
"""The other clauses that each target's one fault breaks too, with the reason. A target's clause
set is its ``CORPUS`` clause and these; the kit's FAIL set must be exactly that set (issue 23;
``tests/test_conformance.py`` pins it for every target not in ``OPEN``)."""

OPEN: dict[str, str] = {}
"""Targets whose FAIL set is not yet exactly their clause set, and why (issue 23)."""


# ---- correct wrappers: each must conform ----------------------------------------------------------


def forwarding(
    f: Callable[..., Any],
    num_dims: int = 2,
    *,
    in_axes: Any = 0,
    out_axes: Any = 0,
    chunk_size: Any = None,
    row_order: Any = "C",
) -> Callable[..., Any]:
    """``batchapply.BatchApply`` behind a function with SPEC's signature."""
    import batchapply

    return batchapply.BatchApply(
        f, num_dims, in_axes=in_axes, out_axes=out_axes, chunk_size=chunk_size, row_order=row_order
    )


def kwargs_forwarder(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """``batchapply.BatchApply`` behind ``**options``: every option is forwarded."""
    import batchapply

    return batchapply.BatchApply(f, num_dims, **options)


def copying(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """Copies every plain NumPy input before the call (defensive copies keep every property)."""
    import batchapply

    apply = batchapply.BatchApply(f, num_dims, **options)

    def copy(x: Any) -> Any:
        return x.copy() if type(x) is np.ndarray else x

    def call(*args: Any, **kwargs: Any) -> Any:
        return apply(*_tree_map(copy, args), **_tree_map(copy, kwargs))

    return call


def linen(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """``batchapply.linen.BatchApply`` of a plain callable, called at the top level."""
    from batchapply import linen as wrappers

    return wrappers.BatchApply(f, num_dims, **options)


def nnx(f: Callable[..., Any], num_dims: int = 2, **options: Any) -> Callable[..., Any]:
    """``batchapply.nnx.BatchApply`` of a plain callable."""
    from batchapply import nnx as wrappers

    return wrappers.BatchApply(f, num_dims, **options)


CORRECT = (
    "broken_targets:forwarding",
    "broken_targets:kwargs_forwarder",
    "broken_targets:copying",
    "batchapply_reference:BatchApply",
    "broken_targets:linen",
    "broken_targets:nnx",
)
"""Correct wrappers: each must exit 0."""
