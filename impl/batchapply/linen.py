"""BatchApply as a ``flax.linen`` Module (SPEC section 12).

Importing this module imports flax (the ``flax`` extra); ``import batchapply``
does not.

>>> import jax, jax.numpy as jnp, flax.linen as nn
>>> from batchapply.linen import BatchApply
>>> model = BatchApply(nn.Dense(3))
>>> variables = model.init(jax.random.key(0), jnp.ones((5, 7, 4)))
>>> jax.tree.map(jnp.shape, variables["params"])  # the same tree as nn.Dense(3)'s
{'bias': (3,), 'kernel': (4, 3)}
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
from flax import errors
from flax.core import FrozenDict
from flax.core.scope import Scope

from batchapply import _core

__all__ = ["BatchApply"]


def _thaw_like(axes: Any, tree: Any) -> Any:
    """Undo flax's freezing of a Module field where ``tree`` has the caller's containers.

    flax turns dicts into ``FrozenDict`` and lists into tuples in the fields of a
    Module; ``in_axes``/``out_axes`` must stay pytree prefixes of the arguments
    and outputs, so each frozen container takes back the type found in ``tree``.
    Leaves (``0``/``None``) and other containers are returned as they are.
    """
    if isinstance(axes, FrozenDict | dict):
        children = {
            key: _thaw_like(value, tree[key] if isinstance(tree, Mapping) and key in tree else None)
            for key, value in axes.items()
        }
        if type(tree) is dict or isinstance(tree, collections.OrderedDict):
            return type(tree)(children)
        return FrozenDict(children) if isinstance(axes, FrozenDict) else children
    if type(axes) is tuple:
        same_length = isinstance(tree, list | tuple) and len(tree) == len(axes)
        items = [
            _thaw_like(a, t) for a, t in zip(axes, tree if same_length else [None] * len(axes), strict=True)
        ]
        return items if same_length and isinstance(tree, list) else tuple(items)
    return axes


class _PerChunk(_core.BatchApply):
    """``batchapply.BatchApply`` that calls ``f`` once per chunk on every input kind (BA-12.12)."""

    _call_per_chunk = True


class BatchApply(nn.Module):
    """Apply ``module`` to inputs whose leading ``num_dims`` dims are merged (SPEC BA-12.1).

    A drop-in for ``flax.linen.BatchApply(f, num_dims)``: change the import and
    nothing else. ``module`` is a linen ``Module`` or any other callable:

    - A ``Module`` shares its scope with the wrapper (``nn.share_scope``), so the
      wrapper adds no level to the variable tree: the tree is the one ``module``
      has when applied to pre-merged input (BA-12.2). To name the variables,
      name the inner module (``BatchApply(nn.Dense(4, name="enc"))``) or, in
      ``setup``, the attribute the wrapper is assigned to.
    - A plain callable (a function, a lambda, a bound method) is called as it is,
      as ``flax.linen.BatchApply`` calls it; submodules it creates or calls live
      where they would live without the wrapper (BA-12.3).

    The wrapper's ``__call__`` is not a Module method in flax's sense
    (``nn.nowrap``): the caller stays the current module, so the wrapper never
    appears in the variable tree or in rng paths. Used at the top level
    (``BatchApply(f).init(...)``), modules that ``f`` creates go to the root.

    Attributes:
        module: the linen Module or callable to apply to the merged inputs.
        num_dims: how many leading dims to merge (BA-2.2).
        in_axes: which positional inputs to merge, as in ``batchapply.BatchApply``
            (keyword-only).
        out_axes: which outputs to split, as in ``batchapply.BatchApply``
            (keyword-only).

    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> model = BatchApply(nn.LayerNorm())
    >>> x = jnp.ones((5, 7, 4))
    >>> model.apply(model.init(jax.random.key(0), x), x).shape
    (5, 7, 4)
    """

    module: Callable[..., Any]
    num_dims: int = 2
    in_axes: Any = dataclasses.field(default=0, kw_only=True)
    out_axes: Any = dataclasses.field(default=0, kw_only=True)
    chunk_size: int | None = dataclasses.field(default=None, kw_only=True)
    row_order: Any = dataclasses.field(default="C", kw_only=True)

    def __post_init__(self) -> None:
        # Validate at construction, with the same errors as batchapply.BatchApply (BA-12.1).
        self._batch_apply(self.module, self.in_axes, self.out_axes)
        parent_given = self.parent is None or isinstance(self.parent, nn.Module | Scope)
        try:
            super().__post_init__()
        except errors.AssignSubModuleError:
            if parent_given:
                raise
            # Built in a method where flax forbids submodules (a plain method run through
            # apply(..., method=...), a function lifted by nn.scan): be what
            # flax.linen.BatchApply is there, a plain callable with no scope of its own
            # (BA-12.11). Nothing was registered on the caller: flax checks before naming.
            object.__setattr__(self, "parent", None)
            return
        # Once both are bound, make the wrapper and the inner Module one scope (BA-12.2):
        # a Module created in @nn.compact keeps its own scope (the wrapper takes it);
        # one adopted in setup (or at the top level) gets the wrapper's.
        if self.scope is not None and isinstance(self.module, nn.Module) and self.module.scope is not None:
            nn.share_scope(self, self.module)

    @nn.nowrap
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Merge the inputs, call ``module`` once, split its outputs (SPEC BA-12.1).

        Args:
            *args: positional inputs; those selected by ``in_axes`` are merged.
            **kwargs: keyword inputs, all selected (BA-4.5); flags such as
                ``deterministic=False`` are not arrays and reach ``module`` as they are.

        Returns:
            ``module``'s output with the leading dim of every selected array split back.

        >>> import jax, jax.numpy as jnp, flax.linen as nn
        >>> model = BatchApply(nn.Dense(2), num_dims=3)
        >>> x = jnp.ones((2, 3, 4, 5))
        >>> model.apply(model.init(jax.random.key(0), x), x).shape
        (2, 3, 4, 2)
        """
        top_level = self.scope is not None and isinstance(self.parent, Scope)
        if top_level and not isinstance(self.module, nn.Module):
            # No caller module: modules that a plain callable creates go to the root,
            # the wrapper's own scope (BA-12.3).
            return self._call_at_top_level(*args, **kwargs)
        return self._apply(*args, **kwargs)

    @nn.compact
    def _call_at_top_level(self, *args: Any, **kwargs: Any) -> Any:
        return self._apply(*args, **kwargs)

    @nn.nowrap
    def _apply(self, *args: Any, **kwargs: Any) -> Any:
        in_axes = self.in_axes
        if type(in_axes) is tuple and len(in_axes) == len(args):
            in_axes = tuple(_thaw_like(axes, arg) for axes, arg in zip(in_axes, args, strict=True))
        if self.out_axes is None or type(self.out_axes) is int:
            return self._batch_apply(self.module, in_axes, self.out_axes)(*args, **kwargs)
        module, out_axes = self.module, self.out_axes

        def call(*merged_args: Any, **merged_kwargs: Any) -> Any:
            outputs = module(*merged_args, **merged_kwargs)
            apply.out_axes = _thaw_like(out_axes, outputs)  # read by apply when it splits
            return outputs

        apply = self._batch_apply(call, in_axes, out_axes)
        return apply(*args, **kwargs)

    @nn.nowrap
    def _batch_apply(self, f: Callable[..., Any], in_axes: Any, out_axes: Any) -> _core.BatchApply:
        return _PerChunk(
            f,
            self.num_dims,
            in_axes=in_axes,
            out_axes=out_axes,
            chunk_size=self.chunk_size,
            row_order=self.row_order,
        )
