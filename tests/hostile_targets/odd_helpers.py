"""batchapply's BatchApply next to a same-named helper of another signature than SPEC's."""

from __future__ import annotations

from typing import Any

from batchapply import BatchApply as BatchApply


def merge_leading_dims(x: Any) -> Any:
    """Merges the first two dimensions only: SPEC's takes ``(x, num_dims)``."""
    return x.reshape((-1, *x.shape[2:]))
