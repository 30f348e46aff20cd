"""A library that ships its own BatchApply: here flax.linen's, with SPEC's check of num_dims
added (one of flax's deviations fixed), so that its expectation file lists one fewer."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import flax.linen as nn


def BatchApply(f: Callable[..., Any], num_dims: int = 2) -> Any:
    if isinstance(num_dims, bool):
        raise TypeError(f"BatchApply: `num_dims` must be an int, got {num_dims!r}.")
    try:
        num_dims = operator.index(num_dims)
    except TypeError:
        raise TypeError(f"BatchApply: `num_dims` must be an int, got {num_dims!r}.") from None
    if num_dims < 1:
        raise ValueError(f"BatchApply: `num_dims` must be >= 1, got {num_dims}.")
    return nn.BatchApply(f, num_dims)
