"""The four public helpers (SPEC section 9), as in Haiku's ``hk.BatchApply`` module."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from batchapply import _errors, _trees
from batchapply._leaves import ARRAY_TYPES


def ndim_at_least(x: Any, num_dims: int) -> bool:
    """Whether ``x`` is an array leaf with ``ndim >= num_dims`` (SPEC BA-9.3).

    Unlike Haiku's, it never converts ``x``: a string is simply not an array.

    >>> import jax.numpy as jnp
    >>> ndim_at_least(jnp.zeros((2, 3)), 2), ndim_at_least("abc", 0)
    (True, False)

    Args:
        x: any value; only NumPy arrays, NumPy scalars and ``jax.Array`` count.
        num_dims: the least rank.

    Returns:
        ``True`` for an array leaf of rank ``>= num_dims``, else ``False``.
    """
    return isinstance(x, ARRAY_TYPES) and x.ndim >= num_dims


def merge_leading_dims(x: Any, num_dims: int) -> Any:
    """Merge the leading ``num_dims`` dims of an array leaf into one (SPEC BA-9.1).

    Anything else (non-arrays, arrays of lower rank) is returned as it is.

    >>> import jax.numpy as jnp
    >>> merge_leading_dims(jnp.zeros((2, 3, 4)), 2).shape
    (6, 4)

    Args:
        x: a NumPy or jax array, or any other value.
        num_dims: how many leading dims to merge.

    Returns:
        ``x`` reshaped to ``(prod(x.shape[:num_dims]),) + x.shape[num_dims:]``, or
        ``x`` itself if it is not an array of rank ``>= num_dims``.

    Raises:
        TypeError: ``x`` is a ``numpy.matrix``, which stays 2-D under reshape.
    """
    if not ndim_at_least(x, num_dims):
        return x
    if isinstance(x, np.matrix):
        raise _errors.helper_matrix("merge_leading_dims", x)
    return x.reshape((math.prod(x.shape[:num_dims]),) + tuple(x.shape[num_dims:]))


def split_leading_dim(x: Any, to_dim: Sequence[Any]) -> Any:
    """Split the leading dim of ``x`` into ``to_dim`` (SPEC BA-9.2).

    One entry of ``to_dim`` may be ``-1``: it is inferred from the leading size,
    as ``numpy.reshape`` does.

    >>> import jax.numpy as jnp
    >>> x = jnp.zeros((6, 4))
    >>> split_leading_dim(x, (2, 3)).shape, split_leading_dim(x, (-1, 3)).shape
    ((2, 3, 4), (2, 3, 4))

    Args:
        x: a NumPy or jax array of rank ``>= 1``.
        to_dim: the sizes to split the leading dim into; their product is
            ``x.shape[0]``.

    Returns:
        ``x`` reshaped to ``tuple(to_dim) + x.shape[1:]``.

    Raises:
        TypeError: ``x`` is not an array, or is a ``numpy.matrix``.
        ValueError: ``x`` has rank 0, or ``to_dim`` does not multiply to ``x.shape[0]``.
    """
    if not isinstance(x, ARRAY_TYPES):
        raise _errors.split_type(x)
    if isinstance(x, np.matrix):
        raise _errors.helper_matrix("split_leading_dim", x)
    if x.ndim == 0:
        raise _errors.split_rank(to_dim)
    to_dim = _split_shape(tuple(x.shape), _to_dim(tuple(x.shape), to_dim))
    return x.reshape(to_dim + tuple(x.shape[1:]))


def _to_dim(shape: tuple[Any, ...], to_dim: Any) -> tuple[int, ...]:
    """``to_dim`` as a tuple of ints: a tuple or list of integers, bool excluded (BA-9.2, E13)."""
    entries = []
    for entry in to_dim if isinstance(to_dim, (tuple, list)) else [None]:
        try:
            if isinstance(entry, bool):
                raise TypeError
            entries.append(operator.index(entry))  # type: ignore[arg-type]  # TypeError for None
        except TypeError:
            raise _errors.split_to_dim(shape, to_dim) from None
    return tuple(entries)


def _split_shape(shape: tuple[Any, ...], to_dim: tuple[Any, ...]) -> tuple[Any, ...]:
    """``to_dim`` with its one ``-1`` inferred from the leading size, as in ``numpy.reshape`` (BA-9.2).

    Raises E13 when no such shape has the leading size ``shape[0]``.
    """
    leading = shape[0]
    holes = [i for i, d in enumerate(to_dim) if isinstance(d, int | np.integer) and d == -1]
    known = [d for i, d in enumerate(to_dim) if i not in holes]
    size = math.prod(known)
    why = None
    if len(holes) > 1 or any(d < 0 for d in known):
        why = "its entries must be sizes >= 0, with at most one -1 (inferred, as in numpy.reshape)"
    elif holes and size == 0:
        why = "the other entries multiply to 0, so the -1 cannot be inferred"
    elif holes and leading % size != 0:
        why = f"the -1 cannot be inferred: {leading} is not a multiple of {size}, the product of the others"
    elif not holes and size != leading:
        why = f"its product is {size}, not {leading}"
    if why is not None:
        raise _errors.split_shape(shape, to_dim, why)
    return tuple(leading // size if i in holes else d for i, d in enumerate(to_dim))


def arbitrary_mergeable_leaf(num_dims: int, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The first array leaf with ``ndim >= num_dims``, args before kwargs, or None (BA-9.4).

    >>> import jax.numpy as jnp
    >>> arbitrary_mergeable_leaf(2, ("text", jnp.zeros((2, 3))), {}).shape
    (2, 3)

    Args:
        num_dims: the least rank of a mergeable leaf.
        args: the positional arguments, pytrees.
        kwargs: the keyword arguments, pytrees.

    Returns:
        The first leaf, in pytree order, for which ``ndim_at_least(leaf, num_dims)``;
        ``None`` if there is none.
    """
    args, kwargs = tuple(args), dict(kwargs)
    for leaf in _trees.flatten((args, kwargs), (args, kwargs), ("args", "kwargs"))[0]:  # E27 (BA-1.7)
        if ndim_at_least(leaf, num_dims):
            return leaf
    return None
