"""flax.linen.BatchApply with one defect added or one fixed: the kit's gating tests (--expect,
--baseline, diff) compare them with flax.linen's shipped expectation file."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any


def flax_reversed_tuples(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    """flax.linen.BatchApply, but a tuple output comes back reversed (a new BA-7.1 FAIL)."""
    import flax.linen as nn

    apply = nn.BatchApply(f, num_dims)

    def call(*args: Any, **kwargs: Any) -> Any:
        out = apply(*args, **kwargs)
        return tuple(reversed(out)) if type(out) is tuple and len(out) > 1 else out

    return call


def flax_checked_num_dims(f: Callable[..., Any], num_dims: int = 2) -> Any:
    """flax.linen.BatchApply, with SPEC's check of num_dims (fixes its BA-2.2 deviation)."""
    import flax.linen as nn

    if isinstance(num_dims, bool):
        raise TypeError(f"BatchApply: `num_dims` must be an int, got {num_dims!r}.")
    try:
        num_dims = operator.index(num_dims)
    except TypeError:
        raise TypeError(f"BatchApply: `num_dims` must be an int, got {num_dims!r}.") from None
    if num_dims < 1:
        raise ValueError(f"BatchApply: `num_dims` must be >= 1, got {num_dims}.")
    return nn.BatchApply(f, num_dims)
