"""batchapply: BatchApply for JAX and Flax, defined by SPEC.md.

Merge the leading ``num_dims`` dims of every input array, call ``f`` once,
split the leading dim of every output back.

>>> import jax.numpy as jnp
>>> import batchapply
>>> batchapply.BatchApply(lambda x: x + 1)(jnp.zeros((2, 3, 4))).shape
(2, 3, 4)
"""

# The one version source: hatchling reads it into the distribution's metadata
# (pyproject.toml, [tool.hatch.version]); tests/test_release.py checks they agree.
__version__ = "0.2.0.dev0"

from batchapply._core import BatchApply as BatchApply
from batchapply._core import arbitrary_mergeable_leaf as arbitrary_mergeable_leaf
from batchapply._core import merge_leading_dims as merge_leading_dims
from batchapply._core import ndim_at_least as ndim_at_least
from batchapply._core import split_leading_dim as split_leading_dim

__all__ = [
    "BatchApply",
    "arbitrary_mergeable_leaf",
    "merge_leading_dims",
    "ndim_at_least",
    "split_leading_dim",
]
