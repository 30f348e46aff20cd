"""BatchApply as a ``flax.linen`` Module (SPEC section 12).

Importing this module imports flax (the ``flax`` extra); importing
``batchapply`` alone does not.

>>> import jax, jax.numpy as jnp, flax.linen as nn
>>> from batchapply.linen import BatchApply
>>> model = BatchApply(nn.Dense(3))
>>> variables = model.init(jax.random.key(0), jnp.ones((5, 7, 4)))
>>> jax.tree.map(jnp.shape, variables["params"])  # the same tree as nn.Dense(3)'s
{'bias': (3,), 'kernel': (4, 3)}
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

import jax.numpy as jnp

try:
    import flax.linen as nn
    from flax import errors
    from flax.core import DenyList
    from flax.core.scope import Scope
except ModuleNotFoundError as error:
    if error.name is None or error.name.split(".")[0] != "flax":
        raise
    raise ModuleNotFoundError(
        f'batchapply.linen needs flax, which is not installed: pip install "batchapply[flax]" ({error})',
        name=error.name,
    ) from error

from batchapply import _core
from batchapply._core import PyTree

__all__ = ["BatchApply"]

CHUNK_MODULES_PREFIX = (
    "batchapply.linen.BatchApply: with `chunk_size`, module must not create submodules per call"
)


def _name(f: Any) -> str:
    """A short name for a callable in an error message: ``Model.torso``, ``<lambda>``."""
    f = f.func if isinstance(f, functools.partial) else f
    return str(getattr(f, "__qualname__", type(f).__name__))


def _liftable(f: Any) -> tuple[nn.Module, Callable[[nn.Module], Callable[..., Any]]] | None:
    """The Module that ``f`` calls, and ``f`` rebuilt around a lifted copy of it.

    ``f`` is a Module, a bound method of one, or a ``functools.partial`` of these;
    anything else (a lambda over submodules, ``nn.relu``) gives None.
    """
    if isinstance(f, nn.Module):
        return f, lambda lifted: lifted
    if inspect.ismethod(f) and isinstance(f.__self__, nn.Module):
        method = f.__func__
        return f.__self__, lambda lifted: functools.partial(method, lifted)
    if isinstance(f, functools.partial):
        inner = _liftable(f.func)
        if inner is not None:
            module, rebuild = inner
            return module, lambda lifted: functools.partial(rebuild(lifted), *f.args, **f.keywords)
    return None


class _Chunked(_core.BatchApply):
    """``batchapply.BatchApply`` whose full chunks run in one ``nn.scan`` over the module (BA-12.12).

    ``jax.lax.map`` cannot hold a linen module: the variables it would create or
    update inside its body are tracers of that body. ``nn.scan`` lifts the
    module's scope instead: ``params`` are shared by the chunks (broadcast), every
    other collection (``batch_stats``) is carried from chunk to chunk, and every
    rng stream but ``params`` is split, one key per chunk. A callable that is not
    a Module, a bound method of one or a partial of these cannot be lifted: it is
    called once per chunk in a Python loop.
    """

    _map_when_eager = True
    _lift: tuple[nn.Module, Callable[[nn.Module], Callable[..., Any]]] | None = None
    _lifted: list[Callable[..., Any]]

    def lift_into(
        self, lift: tuple[nn.Module, Callable[[nn.Module], Callable[..., Any]]] | None, lifted: list[Any]
    ) -> None:
        self._lift, self._lifted = lift, lifted
        self._call_per_chunk = lift is None

    def _map_chunks(self, body: Callable[[list[Any]], list[Any]], stacked: list[Any]) -> list[Any]:
        assert self._lift is not None
        module, rebuild = self._lift
        lifted = self._lifted

        def step(scoped: nn.Module, carry: tuple[()], chunk: list[Any]) -> tuple[tuple[()], list[Any]]:
            lifted.append(rebuild(scoped))
            try:
                return carry, body(chunk)
            finally:
                lifted.pop()

        first: list[Any] = []
        if module.is_initializing():
            # The carried collections must exist before the scan: chunk 0 creates them.
            first = [y[None] for y in body([rows[0] for rows in stacked])]
            stacked = [rows[1:] for rows in stacked]
            if not first or stacked[0].shape[0] == 0:
                return first
        scan = nn.scan(
            step,
            variable_axes={"intermediates": 0},  # sown values: one entry per chunk, stacked
            variable_broadcast="params",
            variable_carry=DenyList("intermediates"),
            split_rngs={"params": False, True: True},
        )
        _, mapped = scan(module, (), stacked)
        if first:
            return [jnp.concatenate(pair) for pair in zip(first, mapped, strict=True)]
        return list(mapped)


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

    It works wherever ``flax.linen.BatchApply`` does (BA-12.11). Built where
    flax allows no submodule (a plain method run with
    ``model.apply(v, x, method=Model.unroll)``, a function lifted by
    ``nn.scan``), it is an unbound Module with no scope, which calls ``module``
    in the caller's context exactly as flax's plain class does:
    ``BatchApply(functools.partial(self.encoder, train=train))(obs)`` there
    gives flax's variables, ``batch_stats`` updates and dropout masks.

    With ``chunk_size``, the full chunks run in one ``nn.scan`` over ``module``
    (a Module, a bound method of one, or a partial of these), so the compiled
    memory follows the chunk: ``params`` are shared by the chunks, other
    collections are carried from chunk to chunk, and each chunk draws its own
    ``dropout`` key. A ``BatchNorm`` therefore normalizes each chunk by that
    chunk's statistics and updates its running averages once per chunk
    (BA-13.5), unlike the one update over all rows without ``chunk_size``.
    Another callable is called once per chunk in a Python loop (BA-12.12).

    Attributes:
        module: the linen Module or callable to apply to the merged inputs.
        num_dims: how many leading dims to merge (BA-2.2).
        in_axes: which positional inputs to merge, as in ``batchapply.BatchApply``
            (keyword-only).
        out_axes: which outputs to split, as in ``batchapply.BatchApply``
            (keyword-only).
        chunk_size: at most this many merged rows per call of ``module``
            (section 13; keyword-only).
        row_order: the order of the merged rows on sharded inputs (section 14;
            keyword-only).

    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> model = BatchApply(nn.LayerNorm())
    >>> x = jnp.ones((5, 7, 4))
    >>> model.apply(model.init(jax.random.key(0), x), x).shape
    (5, 7, 4)
    """

    module: Callable[..., Any]
    num_dims: int = 2
    in_axes: Literal[0] | tuple[PyTree, ...] | list[PyTree] | None = dataclasses.field(
        default=0, kw_only=True
    )
    out_axes: Literal[0] | PyTree | None = dataclasses.field(default=0, kw_only=True)
    chunk_size: int | None = dataclasses.field(default=None, kw_only=True)
    row_order: Literal["C", "shard_major"] | tuple[int, ...] | list[int] = dataclasses.field(
        default="C", kw_only=True
    )

    def __post_init__(self) -> None:
        # Validate at construction, with the same errors as batchapply.BatchApply (BA-12.1).
        _core.BatchApply(
            self.module,
            self.num_dims,
            in_axes=self.in_axes,
            out_axes=self.out_axes,
            chunk_size=self.chunk_size,
            row_order=self.row_order,
        )
        # flax freezes the fields when the module binds (dicts become FrozenDict, lists tuples):
        # keep the axes as given, so that they match as they do in batchapply.BatchApply (BA-12.1).
        object.__setattr__(self, "_given_axes", (self.in_axes, self.out_axes))
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

    def clone(self, **kwargs: Any) -> BatchApply:
        """flax's clone, with the axes as given rather than frozen (see ``__post_init__``)."""
        clone = super().clone(**kwargs)
        in_axes, out_axes = self._given_axes
        given = (kwargs.get("in_axes", in_axes), kwargs.get("out_axes", out_axes))
        object.__setattr__(clone, "_given_axes", given)
        return clone

    @nn.nowrap
    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # BA-6.2
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
    def _call_at_top_level(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._apply(*args, **kwargs)

    @nn.nowrap
    def _apply(self, /, *args: Any, **kwargs: Any) -> Any:
        in_axes, out_axes = self._given_axes
        options = {"in_axes": in_axes, "out_axes": out_axes, "row_order": self.row_order}
        if self.chunk_size is None:
            return _core.BatchApply(self.module, self.num_dims, **options)(*args, **kwargs)
        module = self.module
        lifted: list[Callable[..., Any]] = []  # module as the running nn.scan binds it (BA-12.12)
        # The module whose compact method runs the call, where a callable may create submodules.
        caller = (
            self.parent if isinstance(self.parent, nn.Module) else self if self.scope is not None else None
        )
        lift = _liftable(module)
        if lift is not None and lift[0] is caller:
            lift = None  # the caller's own methods may create submodules inline: not liftable
        calls: list[None] = []  # one entry per call of module outside the scan

        def again(what: str) -> ValueError:  # BA-12.12: one set of parameters, not one per chunk
            return ValueError(
                f"{CHUNK_MODULES_PREFIX}: {_name(module)} created {what} again for chunk {len(calls)}, "
                "so each chunk would get its own parameters. Pass the Module itself "
                "(BatchApply(nn.Dense(4), chunk_size=...)), or create the submodules outside the "
                "wrapped function (in setup, or before the wrapper in a compact method) and close "
                "over them."
            )

        def call(*merged_args: Any, **merged_kwargs: Any) -> Any:
            before = set(caller._state.children) if caller is not None and not lifted else None
            try:
                outputs = (lifted[-1] if lifted else module)(*merged_args, **merged_kwargs)
            except errors.NameInUseError as e:  # a named submodule, made once per chunk
                if before is None or not calls:
                    raise
                raise again(f"a named submodule ({e})") from None
            if before is not None and caller is not None:
                new = sorted(set(caller._state.children) - before)
                if new and calls:
                    raise again(f"the submodules {', '.join(new)}")
                calls.append(None)
            return outputs

        apply = _Chunked(call, self.num_dims, chunk_size=self.chunk_size, **options)
        apply.lift_into(lift, lifted)
        return apply(*args, **kwargs)
