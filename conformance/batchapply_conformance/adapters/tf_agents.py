"""TF-Agents' ``BatchSquash`` used as a BatchApply (``tf.nest`` over inputs and outputs).

Behaviour: ``flatten`` reshapes every leaf to ``(-1,) + shape[batch_dims:]`` and remembers
the shape of the leaf it saw *last*; ``unflatten`` splits every output by that shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from batchapply_conformance.adapters._tree import nest_map


def BatchApply(f: Callable[..., Any], num_dims: int = 2) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        seen: list[tuple[int, ...]] = []

        def flatten(x: Any) -> Any:
            seen.append(np.shape(x))
            return x.reshape((-1, *np.shape(x)[num_dims:]))

        merged_args, merged_kwargs = nest_map(flatten, (args, kwargs))
        out = f(*merged_args, **merged_kwargs)
        return nest_map(lambda y: y.reshape(seen[-1][:num_dims] + y.shape[1:]), out)

    return call
