"""batchapply_reference: the slow, obviously-correct NumPy reference of SPEC.md.

It never imports jax. It exposes the same public names as `batchapply`, so a
test can run the same code against either package.

>>> import numpy as np
>>> import batchapply_reference as ref
>>> ref.BatchApply(lambda x: x + 1)(np.zeros((2, 3, 4))).shape
(2, 3, 4)
"""

from batchapply_reference._core import BatchApply as BatchApply
from batchapply_reference._core import arbitrary_mergeable_leaf as arbitrary_mergeable_leaf
from batchapply_reference._core import merge_leading_dims as merge_leading_dims
from batchapply_reference._core import ndim_at_least as ndim_at_least
from batchapply_reference._core import split_leading_dim as split_leading_dim
from batchapply_reference._tree import register_node as register_node

# ``register_node`` is the reference's own pytree registry (SPEC BA-1.3); ``batchapply``
# uses JAX's, so it is not one of the shared public names of ``__all__``.
__all__ = [
    "BatchApply",
    "arbitrary_mergeable_leaf",
    "merge_leading_dims",
    "ndim_at_least",
    "split_leading_dim",
]
