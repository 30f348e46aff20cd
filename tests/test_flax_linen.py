"""SPEC section 12: batchapply.linen.BatchApply against the hand-written reshape around real layers."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import errors

from batchapply.linen import CHUNK_MODULES_PREFIX, BatchApply

KEY = jax.random.key(0)
RNGS = {"params": jax.random.key(1), "dropout": jax.random.key(2)}


def data(shape: tuple[int, ...], seed: int = 3) -> jax.Array:
    """Inputs whose rows differ by timestep, so that per-timestep statistics would differ."""
    offset = jnp.arange(shape[0], dtype=jnp.float32).reshape((-1,) + (1,) * (len(shape) - 1))
    return jax.random.normal(jax.random.key(seed), shape) + 3.0 * offset


def shapes(tree: Any) -> Any:
    return jax.tree.map(jnp.shape, tree)


def init(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
    return model.init(*args, **kwargs)


def apply(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
    return model.apply(*args, **kwargs)


def paths(tree: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (jax.tree_util.keystr(path), jnp.shape(leaf))
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    ]


def assert_same_trees(got: Any, want: Any) -> None:
    """Same paths and shapes, and same values (jax.tree.map raises if the structures differ)."""
    assert paths(got) == paths(want)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), got, want)
    assert shapes(got) == shapes(want)


class ByHand(nn.Module):
    """The hand-written reshape around ``make()``: what BatchApply replaces."""

    make: Callable[[], Any]

    @nn.compact
    def __call__(self, x: jax.Array, **kwargs: Any) -> jax.Array:
        lead = x.shape[:2]
        y = self.make()(x.reshape((-1,) + x.shape[2:]), **kwargs)
        return y.reshape(lead + y.shape[1:])


class Wrapped(nn.Module):
    make: Callable[[], Any]

    @nn.compact
    def __call__(self, x: jax.Array, **kwargs: Any) -> jax.Array:
        return BatchApply(self.make())(x, **kwargs)


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable[[], Any]
    shape: tuple[int, ...]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    mutable: tuple[str, ...] = ()


CASES = {
    "Dense": Case(lambda: nn.Dense(5), (3, 4, 6)),
    "Conv-TBHWC": Case(lambda: nn.Conv(4, (3, 3)), (2, 3, 5, 5, 2)),
    "LayerNorm": Case(lambda: nn.LayerNorm(), (3, 4, 6)),
    "BatchNorm": Case(lambda: nn.BatchNorm(use_running_average=False), (3, 4, 6), mutable=("batch_stats",)),
    "Dropout": Case(lambda: nn.Dropout(0.5), (3, 4, 6), kwargs={"deterministic": False}),
    "MultiHeadDotProductAttention-TBLD": Case(
        lambda: nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8), (2, 3, 5, 8)
    ),
}


def run(model: nn.Module, variables: Any, case: Case, x: jax.Array) -> tuple[jax.Array, Any]:
    out, updates = apply(
        model, variables, x, rngs={"dropout": RNGS["dropout"]}, mutable=list(case.mutable), **case.kwargs
    )
    return out, updates


@pytest.mark.spec("BA-12.2")
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_variables_are_those_of_the_layer_on_merged_input(case: Case) -> None:
    x = data(case.shape)
    got = init(Wrapped(case.make), RNGS, x, **case.kwargs)
    want = init(ByHand(case.make), RNGS, x, **case.kwargs)
    assert_same_trees(got, want)  # same paths, hence the same init rngs and values


@pytest.mark.spec("BA-12.1")
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_output_matches_the_hand_written_reshape(case: Case) -> None:
    x = data(case.shape)
    variables = init(ByHand(case.make), RNGS, x, **case.kwargs)
    got, got_updates = run(Wrapped(case.make), variables, case, x)
    want, want_updates = run(ByHand(case.make), variables, case, x)
    assert got.shape == want.shape == case.shape[:2] + want.shape[2:]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_same_trees(got_updates, want_updates)


@pytest.mark.spec("BA-12.1", "BA-12.12")
def test_constructor_fields() -> None:
    params = inspect.signature(BatchApply).parameters
    # flax adds `parent` and `name`
    names = ["module", "num_dims", "in_axes", "out_axes", "chunk_size", "row_order"]
    assert [(name, params[name].kind, params[name].default) for name in names] == [
        ("module", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("num_dims", inspect.Parameter.POSITIONAL_OR_KEYWORD, 2),
        ("in_axes", inspect.Parameter.KEYWORD_ONLY, 0),
        ("out_axes", inspect.Parameter.KEYWORD_ONLY, 0),
        ("chunk_size", inspect.Parameter.KEYWORD_ONLY, None),
        ("row_order", inspect.Parameter.KEYWORD_ONLY, "C"),
    ]
    assert issubclass(BatchApply, nn.Module)


@pytest.mark.spec("BA-12.1", "BA-12.12")
@pytest.mark.parametrize(
    ("kwargs", "error", "prefix"),
    [
        ({"module": "dense"}, TypeError, "BatchApply: `f` must be callable"),
        ({"module": nn.relu, "num_dims": 0}, ValueError, "BatchApply: `num_dims` must be >= 1"),
        ({"module": nn.relu, "num_dims": 2.0}, TypeError, "BatchApply: `num_dims` must be an int"),
        ({"module": nn.relu, "in_axes": {"x": 0}}, ValueError, "BatchApply: `in_axes` must be 0, None"),
        ({"module": nn.relu, "out_axes": 1}, ValueError, "BatchApply: axis values must be 0 or None"),
        ({"module": nn.relu, "chunk_size": True}, TypeError, "BatchApply: `chunk_size` must be an int"),
        ({"module": nn.relu, "chunk_size": 0}, ValueError, "BatchApply: `chunk_size` must be >= 1"),
        ({"module": nn.relu, "row_order": "F"}, ValueError, "BatchApply: `row_order` must be"),
        ({"module": nn.relu, "row_order": (2,)}, ValueError, "BatchApply: `row_order` must be"),
    ],
    ids=[
        "module",
        "num_dims-value",
        "num_dims-type",
        "in_axes-type",
        "out_axes-value",
        "chunk_size-type",
        "chunk_size-value",
        "row_order-value",
        "row_order-length",
    ],
)
def test_arguments_are_checked_at_construction(kwargs: dict[str, Any], error: type, prefix: str) -> None:
    with pytest.raises(error) as info:
        BatchApply(**kwargs)
    assert str(info.value).startswith(prefix)


@pytest.mark.spec("BA-12.1")
def test_in_axes_and_out_axes_reach_the_call() -> None:
    class Scaled(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, scale: jax.Array) -> dict[str, jax.Array]:
            y = nn.Dense(2)(x) * scale
            return {"y": y, "total": y.sum()}

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, scale: jax.Array) -> Any:
            return BatchApply(Scaled(), in_axes=(0, None), out_axes={"y": 0, "total": None})(x, scale)

    x, scale = data((3, 4, 6)), jnp.full((1, 2), 2.0)  # rank 2: merged unless in_axes says None
    variables = init(Model(), KEY, x, scale)
    out = apply(Model(), variables, x, scale)
    dense = variables["params"]["Scaled_0"]["Dense_0"]
    kernel, bias = dense["kernel"], dense["bias"]
    want = np.einsum("tbf,fo->tbo", np.asarray(x), np.asarray(kernel)) + np.asarray(bias)
    np.testing.assert_allclose(out["y"], want * 2.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["total"], (want * 2.0).sum(), rtol=1e-4)


@pytest.mark.spec("BA-12.1")
def test_axes_keep_list_and_dict_containers() -> None:
    # flax freezes Module fields (list -> tuple, dict -> FrozenDict); the axes must stay
    # prefixes of a list argument and of a dict output, as the caller gave them.
    out_axes = {"y": 0, "n": None}
    model = BatchApply(lambda pair: dict(y=pair[0] + pair[1], n=3), in_axes=([0, None],), out_axes=out_axes)
    x, bias = data((3, 4, 6)), jnp.ones((1, 6))
    out = apply(model, {}, [x, bias])
    assert type(out) is dict
    np.testing.assert_allclose(out["y"], np.asarray(x) + 1.0, rtol=1e-6)
    assert out["n"] == 3
    assert model.out_axes is out_axes  # the caller's object, unfrozen


class SetupModel(nn.Module):
    wrap: bool

    def setup(self) -> None:
        self.encoder = BatchApply(nn.Dense(8)) if self.wrap else nn.Dense(8)
        self.norm = BatchApply(nn.LayerNorm()) if self.wrap else nn.LayerNorm()
        self.drop = BatchApply(nn.Dropout(0.5)) if self.wrap else nn.Dropout(0.5)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.wrap:
            return self.drop(self.norm(self.encoder(x)), deterministic=False)
        h = self.norm(self.encoder(x.reshape((-1,) + x.shape[2:])))
        return self.drop(h, deterministic=False).reshape(x.shape[:2] + (8,))


@pytest.mark.spec("BA-12.2", "BA-12.9")
def test_in_setup_the_variables_live_under_the_attribute_name() -> None:
    x = data((3, 4, 6))
    got = init(SetupModel(wrap=True), RNGS, x)
    want = init(SetupModel(wrap=False), RNGS, x)
    assert shapes(got["params"]) == {
        "encoder": {"bias": (8,), "kernel": (6, 8)},
        "norm": {"bias": (8,), "scale": (8,)},
    }
    assert_same_trees(got, want)
    rngs = {"dropout": RNGS["dropout"]}  # the same mask too (BA-12.9)
    np.testing.assert_allclose(
        apply(SetupModel(wrap=True), want, x, rngs=rngs),
        apply(SetupModel(wrap=False), want, x, rngs=rngs),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.spec("BA-12.2")
def test_inner_module_name_names_the_variables_in_compact() -> None:
    class Model(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return BatchApply(nn.Dense(3, name="encoder"))(nn.Dense(6)(x))

    assert shapes(init(Model(), KEY, data((3, 4, 6)))["params"]) == {
        "Dense_0": {"bias": (6,), "kernel": (6, 6)},
        "encoder": {"bias": (3,), "kernel": (6, 3)},
    }


@pytest.mark.spec("BA-12.2")
def test_top_level_wrapper_has_the_inner_modules_tree() -> None:
    x = data((3, 4, 6))
    got = BatchApply(nn.Dense(5)).init(KEY, x)
    want = init(nn.Dense(5), KEY, x.reshape(12, 6))
    assert_same_trees(got, want)


@pytest.mark.spec("BA-12.3")
def test_top_level_plain_callable_creates_its_modules_at_the_root() -> None:
    model = BatchApply(lambda z: nn.Dense(3)(z))
    x = data((3, 4, 6))
    variables = init(model, KEY, x)
    assert shapes(variables) == {"params": {"Dense_0": {"bias": (3,), "kernel": (6, 3)}}}
    dense = variables["params"]["Dense_0"]
    want = np.asarray(x) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
    np.testing.assert_allclose(apply(model, variables, x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-12.2")
@pytest.mark.parametrize("where", ["top-level", "in-compact"])
def test_inside_sequential(where: str) -> None:
    def layers(wrap: bool) -> list[Any]:
        w: Callable[[Any], Any] = BatchApply if wrap else (lambda m: m)
        return [w(nn.Dense(8)), nn.relu, w(nn.Dense(2))]

    class Model(nn.Module):
        wrap: bool

        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return nn.Sequential(layers(self.wrap))(x)

    x = data((3, 4, 6))
    merged = x.reshape(12, 6)
    wrapped: nn.Module
    plain: nn.Module
    if where == "top-level":
        wrapped, plain = nn.Sequential(layers(True)), nn.Sequential(layers(False))
    else:
        wrapped, plain = Model(wrap=True), Model(wrap=False)
    got, want = init(wrapped, KEY, x), init(plain, KEY, merged)
    assert_same_trees(got, want)
    np.testing.assert_allclose(
        apply(wrapped, want, x), apply(plain, want, merged).reshape(3, 4, 2), rtol=1e-5, atol=1e-5
    )


@pytest.mark.spec("BA-12.8")
def test_batchnorm_statistics_cover_all_merged_rows() -> None:
    t, b, f = 4, 5, 3
    x = data((t, b, f))
    model = BatchApply(nn.BatchNorm(use_running_average=False, momentum=0.9))
    variables = init(model, KEY, x)
    out, updates = apply(model, variables, x, mutable=["batch_stats"])
    rows = np.asarray(x, dtype=np.float64).reshape(t * b, f)
    np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * rows.var(0), rtol=1e-5)
    # Normalized over all T*B rows, not per timestep (the data's mean grows with t).
    np.testing.assert_allclose(np.asarray(out).reshape(t * b, f).mean(0), 0.0, atol=1e-5)
    assert np.all(np.abs(np.asarray(out)[0].mean(0)) > 0.5)


@pytest.mark.spec("BA-12.9")
def test_dropout_mask_is_the_hand_written_one_for_the_same_key() -> None:
    x = jnp.ones((4, 5, 16))
    make = lambda: nn.Dropout(0.5)  # noqa: E731
    rngs = {"dropout": jax.random.key(7)}
    got = apply(Wrapped(make), {}, x, deterministic=False, rngs=rngs)
    want = apply(ByHand(make), {}, x, deterministic=False, rngs=rngs)
    np.testing.assert_array_equal(got, want)
    assert set(np.unique(np.asarray(got)).tolist()) == {0.0, 2.0}  # a real mask, kept rows scaled by 2
    other = apply(Wrapped(make), {}, x, deterministic=False, rngs={"dropout": jax.random.key(8)})
    assert not np.array_equal(got, other)


class ScanBody(nn.Module):
    """One timestep: a [Batch, Set, Features] input, a BatchApply over (Batch, Set)."""

    wrap: bool

    @nn.compact
    def __call__(self, carry: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        dense = nn.Dense(3)
        if self.wrap:
            y = BatchApply(dense)(x_t)
        else:
            y = dense(x_t.reshape((-1, x_t.shape[-1]))).reshape(x_t.shape[:2] + (3,))
        return carry + y.mean(axis=1), y


class ScanModel(nn.Module):
    wrap: bool

    @nn.compact
    def __call__(self, xs: jax.Array) -> tuple[jax.Array, jax.Array]:
        scan = nn.scan(
            ScanBody, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0
        )
        carry = jnp.zeros((xs.shape[1], 3))
        out: tuple[jax.Array, jax.Array] = scan(wrap=self.wrap)(carry, xs)
        return out


@pytest.mark.spec("BA-12.1", "BA-12.2")
def test_inside_nn_scan_over_time() -> None:
    xs = data((6, 2, 4, 5))  # [Time, Batch, Set, Features]
    variables = init(ScanModel(wrap=False), KEY, xs)
    assert_same_trees(init(ScanModel(wrap=True), KEY, xs), variables)
    carry, ys = apply(ScanModel(wrap=True), variables, xs)
    kernel = np.asarray(variables["params"]["ScanScanBody_0"]["Dense_0"]["kernel"])
    bias = np.asarray(variables["params"]["ScanScanBody_0"]["Dense_0"]["bias"])
    want_ys = np.asarray(xs) @ kernel + bias
    np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry, want_ys.mean(axis=2).sum(axis=0), rtol=1e-5, atol=1e-5)


@pytest.mark.spec("BA-12.1")
def test_under_jit_and_grad_matches_the_hand_written_reshape() -> None:
    make = lambda: nn.Dense(4)  # noqa: E731
    x = data((3, 4, 6))
    variables = init(ByHand(make), KEY, x)

    def loss(params: Any, model: nn.Module) -> jax.Array:
        return jnp.sum(jnp.tanh(apply(model, {"params": params}, x)) ** 2)

    got = jax.jit(jax.grad(loss), static_argnums=1)(variables["params"], Wrapped(make))
    want = jax.grad(loss)(variables["params"], ByHand(make))
    assert_same_trees(got, want)


# ---- One import: flax.linen.BatchApply -> batchapply.linen.BatchApply ---------------


def compact_style(batch_apply: Callable[..., Any]) -> nn.Module:
    """A model written for flax.linen.BatchApply, in @nn.compact style, taking the class to use."""

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            h = batch_apply(nn.Dense(8))(x)
            h = batch_apply(nn.relu)(h)
            h = batch_apply(lambda z: nn.Dense(4)(z) * 2.0, 2)(h)  # creates its module inside
            return batch_apply(nn.LayerNorm(), 3)(h[..., None, :])[..., 0, :]

    return Model()


def setup_style(batch_apply: Callable[..., Any]) -> nn.Module:
    """The same in setup style: wrappers of setup-defined submodules and of a bound method."""

    class Model(nn.Module):
        def setup(self) -> None:
            self.encoder = nn.Dense(6)
            self.norm = nn.LayerNorm()
            self.encode = batch_apply(self.encoder)
            self.encode_norm = batch_apply(lambda z: self.norm(self.encoder(z)))
            self.norm_only = batch_apply(self.norm.__call__)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.norm_only(self.encode_norm(self.encode(x)))

    return Model()


@pytest.mark.spec("BA-12.3")
@pytest.mark.parametrize("style", [compact_style, setup_style], ids=["compact", "setup"])
def test_switching_from_flax_linen_batchapply_is_one_import(style: Callable[..., nn.Module]) -> None:
    x = data((3, 4, 6))
    theirs, ours = style(nn.BatchApply), style(BatchApply)
    want = init(theirs, KEY, x)
    assert_same_trees(init(ours, KEY, x), want)
    np.testing.assert_allclose(apply(ours, want, x), apply(theirs, want, x), rtol=1e-6, atol=1e-6)


# ---- Every place flax.linen.BatchApply works (BA-12.11) ----------------------------


def by_hand(f: Callable[..., Any], num_dims: int = 2) -> Callable[[jax.Array], jax.Array]:
    """The hand-written reshape, with BatchApply's signature, for models that take the class to use."""

    def call(x: jax.Array) -> jax.Array:
        y = f(x.reshape((-1,) + x.shape[num_dims:]))
        return y.reshape(x.shape[:num_dims] + y.shape[1:])

    return call


class Encoder(nn.Module):
    """Dense, BatchNorm and Dropout, switched by ``train`` as agent code does."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Dense(5)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dropout(0.5, deterministic=not train)(x)


def agent(batch_apply: Callable[..., Any]) -> nn.Module:
    """The issue's pattern: a plain ``unroll`` method, applied with ``method=``, wraps submodules."""

    class Agent(nn.Module):
        def setup(self) -> None:
            self.encoder = Encoder()
            self.q_head = nn.Dense(2)

        def __call__(self, obs: jax.Array, train: bool = False) -> jax.Array:  # one step: [Batch, F]
            return self.q_head(self.encoder(obs, train))

        def unroll(self, obs: jax.Array, train: bool = False) -> jax.Array:  # [Time, Batch, F]
            h = batch_apply(functools.partial(self.encoder, train=train))(obs)
            return batch_apply(self.q_head)(h)

    return Agent()


def run_agent(batch_apply: Callable[..., Any], train: bool) -> Any:
    x = data((3, 4, 6))
    model = agent(batch_apply)
    variables = model.init(RNGS, x, train, method="unroll")
    out, updates = model.apply(
        variables, x, train, method="unroll", mutable=["batch_stats"], rngs={"dropout": jax.random.key(9)}
    )
    return variables, out, updates


def run_repro(batch_apply: Callable[..., Any]) -> Any:
    """The issue's minimal reproduction."""

    class M(nn.Module):
        def setup(self) -> None:
            self.d = nn.Dense(3)

        def unroll(self, x: jax.Array) -> jax.Array:
            return batch_apply(self.d)(x)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.d(x)

    variables = M().init(KEY, jnp.ones((4, 2)))
    return variables, M().apply(variables, data((5, 4, 2)), method=M.unroll)


def run_bound_method(batch_apply: Callable[..., Any]) -> Any:
    """A plain ``__call__`` (neither setup nor compact) wrapping a bound method of ``self``."""

    class M(nn.Module):
        def setup(self) -> None:
            self.d = nn.Dense(3)

        def features(self, z: jax.Array) -> jax.Array:
            return nn.relu(self.d(z))

        def __call__(self, x: jax.Array) -> jax.Array:
            return batch_apply(self.features)(x)

    x = data((3, 4, 6))
    variables = M().init(KEY, x)
    return variables, M().apply(variables, x)


def run_method_lambda(batch_apply: Callable[..., Any]) -> Any:
    """``apply(..., method=lambda module, x: ...)``."""
    x = data((3, 4, 6))
    model = nn.Dense(3)
    variables = model.init(KEY, x[0])
    return variables, model.apply(variables, x, method=lambda m, z: batch_apply(m.__call__)(z))


def run_scan_function(batch_apply: Callable[..., Any]) -> Any:
    """A function lifted by ``nn.scan``: it gets the lifted module as an argument."""

    class M(nn.Module):
        @nn.compact
        def __call__(self, xs: jax.Array) -> tuple[jax.Array, jax.Array]:
            def body(dense: nn.Module, carry: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
                y = batch_apply(dense)(x_t)
                return carry + y.sum(), y

            scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False})
            out: tuple[jax.Array, jax.Array] = scan(nn.Dense(3), jnp.zeros(()), xs)
            return out

    xs = data((5, 2, 4, 6))  # [Time, Batch, Set, Features]
    variables = M().init(KEY, xs)
    return variables, M().apply(variables, xs)


def run_remat_plain_method(batch_apply: Callable[..., Any]) -> Any:
    """``nn.remat`` of a setup-style module whose ``__call__`` is a plain method."""

    class Body(nn.Module):
        def setup(self) -> None:
            self.d = nn.Dense(3)

        def __call__(self, x: jax.Array) -> jax.Array:
            return batch_apply(self.d)(x)

    class M(nn.Module):
        def setup(self) -> None:
            self.body = nn.remat(Body)()

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.body(x)

    x = data((3, 4, 6))
    variables = M().init(KEY, x)
    grads = jax.grad(lambda v: jnp.sum(apply(M(), v, x) ** 2))(variables)
    return variables, M().apply(variables, x), grads


def run_top_level(batch_apply: Callable[..., Any]) -> Any:
    """Outside any module, around ``apply`` and around a bound module."""
    x = data((3, 4, 6))
    model = nn.Dense(3)
    variables = model.init(KEY, x[0])
    return batch_apply(functools.partial(model.apply, variables))(x), batch_apply(model.bind(variables))(x)


PLACES: dict[str, Callable[[Callable[..., Any]], Any]] = {
    "plain-method-repro": run_repro,
    "plain-method-partial-train": functools.partial(run_agent, train=True),
    "plain-method-partial-eval": functools.partial(run_agent, train=False),
    "plain-call-bound-method": run_bound_method,
    "method-lambda": run_method_lambda,
    "nn.scan-function": run_scan_function,
    "nn.remat-plain-method": run_remat_plain_method,
    "top-level": run_top_level,
}


def assert_identical(got: Any, want: Any) -> None:
    assert paths(got) == paths(want)
    jax.tree.map(np.testing.assert_array_equal, got, want)


@pytest.mark.spec("BA-12.11", "BA-12.3", "BA-12.9")
@pytest.mark.parametrize("place", PLACES.values(), ids=PLACES.keys())
def test_every_place_matches_flax_linen_batchapply(place: Callable[[Callable[..., Any]], Any]) -> None:
    ours = place(BatchApply)
    assert_identical(ours, place(nn.BatchApply))  # bit for bit: both only reshape
    assert_same_trees(ours, place(by_hand))


@pytest.mark.spec("BA-12.11", "BA-12.8", "BA-12.9")
def test_the_agent_pattern_updates_batch_stats_and_draws_dropout() -> None:
    # Guards the comparison above against a pattern that does nothing: the statistics move,
    # over all T*B rows, and dropout zeroes some outputs of the training run only.
    variables, out, updates = run_agent(BatchApply, train=True)
    assert not np.allclose(updates["batch_stats"]["encoder"]["BatchNorm_0"]["mean"], 0.0)
    _, eval_out, eval_updates = run_agent(BatchApply, train=False)
    assert_identical(eval_updates, {"batch_stats": variables["batch_stats"]})
    assert out.shape == eval_out.shape == (3, 4, 2)
    assert not np.allclose(out, eval_out)


@pytest.mark.spec("BA-12.11")
def test_in_a_plain_method_the_wrapper_is_not_a_submodule() -> None:
    seen: list[nn.Module] = []

    class M(nn.Module):
        def setup(self) -> None:
            self.d = nn.Dense(3)

        def unroll(self, x: jax.Array) -> jax.Array:
            wrapper = BatchApply(self.d)
            seen.append(wrapper)
            return wrapper(x)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.d(x)

    variables = M().init(KEY, jnp.ones((4, 2)))
    M().apply(variables, data((5, 4, 2)), method=M.unroll)
    assert seen[0].parent is None and seen[0].scope is None  # unbound, like flax's plain class


@pytest.mark.spec("BA-12.11")
def test_a_submodule_created_in_a_plain_method_still_raises_flaxs_error() -> None:
    class M(nn.Module):
        def unroll(self, x: jax.Array) -> jax.Array:
            return BatchApply(nn.Dense(3))(x)  # nn.Dense(3) is what flax rejects here

        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return nn.Dense(3)(x)

    variables = M().init(KEY, jnp.ones((4, 2)))
    with pytest.raises(errors.AssignSubModuleError, match="Submodule Dense must be defined"):
        M().apply(variables, data((5, 4, 2)), method=M.unroll)


# ---- chunk_size and row_order (BA-12.12) -------------------------------------------


def chunked_by_hand(make: Callable[[], Any], chunk: int, **kwargs: Any) -> nn.Module:
    """The hand-written chunk loop: merge, call one layer on each chunk in order, concatenate, split."""

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            layer = make()
            rows = x.reshape((-1,) + x.shape[2:])
            outs = [layer(rows[i : i + chunk], **kwargs) for i in range(0, rows.shape[0], chunk)]
            y = jnp.concatenate(outs)
            return y.reshape(x.shape[:2] + y.shape[1:])

    return Model()


def chunked(make: Callable[[], Any], chunk: int, **kwargs: Any) -> nn.Module:
    class Model(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return BatchApply(make(), chunk_size=chunk)(x, **kwargs)

    return Model()


CHUNK_CASES = {
    "Dense": Case(lambda: nn.Dense(5), (3, 4, 6)),
    "BatchNorm": Case(
        lambda: nn.BatchNorm(use_running_average=False, momentum=0.9), (3, 4, 6), mutable=("batch_stats",)
    ),
}


@pytest.mark.spec("BA-12.12", "BA-13.5")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("case", CHUNK_CASES.values(), ids=CHUNK_CASES.keys())
def test_chunk_size_shares_params_and_carries_state_chunk_to_chunk(case: Case, jit: bool) -> None:
    x = data(case.shape)  # 12 rows: chunks of 5, 5 and 2
    want_model, got_model = chunked_by_hand(case.make, 5, **case.kwargs), chunked(case.make, 5, **case.kwargs)
    variables = init(want_model, RNGS, x)
    assert_same_trees(init(got_model, RNGS, x), variables)

    def run(model: nn.Module) -> Any:
        call = lambda v, z: apply(  # noqa: E731
            model, v, z, rngs={"dropout": RNGS["dropout"]}, mutable=list(case.mutable)
        )
        return (jax.jit(call) if jit else call)(variables, x)

    assert_same_trees(run(got_model), run(want_model))


class DropoutScannedByHand(nn.Module):
    """Chunks of 5 rows the flax way: nn.scan over the full chunks, one dropout key each; then the rest."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        drop = nn.Dropout(0.5, deterministic=False)
        rows = x.reshape((-1,) + x.shape[2:])
        full = rows[:10].reshape((2, 5) + rows.shape[1:])
        scan = nn.scan(
            lambda m, carry, chunk: (carry, m(chunk)), split_rngs={"params": False, "dropout": True}
        )
        _, ys = scan(drop, (), full)
        y = jnp.concatenate([ys.reshape((10,) + ys.shape[2:]), drop(rows[10:])])
        return y.reshape(x.shape[:2] + y.shape[1:])


@pytest.mark.spec("BA-12.12", "BA-12.9")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_dropout_under_chunk_size_draws_one_key_per_chunk(jit: bool) -> None:
    x = jnp.ones((3, 4, 6))  # 12 rows: chunks of 5, 5 and 2
    model = chunked(lambda: nn.Dropout(0.5, deterministic=False), 5)  # at the place of the one by hand

    def run(m: nn.Module, key: jax.Array) -> jax.Array:
        call = lambda z: apply(m, {}, z, rngs={"dropout": key})  # noqa: E731
        out: jax.Array = (jax.jit(call) if jit else call)(x)
        return out

    got = run(model, RNGS["dropout"])
    np.testing.assert_array_equal(got, run(DropoutScannedByHand(), RNGS["dropout"]))
    rows = np.asarray(got).reshape(12, 6)
    assert set(np.unique(rows).tolist()) == {0.0, 2.0}
    assert not np.array_equal(rows[:5], rows[5:10])  # the chunks' masks differ
    assert not np.array_equal(got, run(model, jax.random.key(8)))


@pytest.mark.spec("BA-12.12", "BA-13.9")
def test_chunk_size_bounds_the_compiled_memory() -> None:
    # Noise-free: XLA's own accounting of the temporaries of the compiled program.
    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return nn.Dense(8)(nn.relu(nn.Dense(1024)(x)))

    x = jnp.ones((32, 32, 8))  # 1024 rows: a (1024, 1024) float32 hidden layer is 4 MiB

    def temp_bytes(chunk_size: int | None) -> int:
        model = BatchApply(MLP(), chunk_size=chunk_size)
        variables = init(model, KEY, x[:1, :1])
        compiled = jax.jit(lambda v, z: apply(model, v, z)).lower(variables, x).compile()
        analysis = compiled.memory_analysis()
        assert analysis is not None
        return int(analysis.temp_size_in_bytes)

    whole, chunked_ = temp_bytes(None), temp_bytes(128)
    assert whole >= 4 * 2**20
    assert chunked_ < whole / 4  # the hidden layer of 128 rows, not of 1024


@pytest.mark.spec("BA-12.12", "BA-12.11")
def test_chunk_size_in_a_plain_method_with_a_partial() -> None:
    def run(batch_apply: Callable[..., Any], train: bool) -> Any:
        class Agent(nn.Module):
            def setup(self) -> None:
                self.encoder = Encoder()

            def __call__(self, obs: jax.Array, train: bool = False) -> jax.Array:
                return self.encoder(obs, train)

            def unroll(self, obs: jax.Array, train: bool = False) -> jax.Array:
                return batch_apply(functools.partial(self.encoder, train=train))(obs)

        x = data((3, 4, 6))
        variables = Agent().init(RNGS, x[0])
        return Agent().apply(variables, x, train, method="unroll", mutable=["batch_stats"], rngs=RNGS)

    by_chunks = functools.partial(BatchApply, chunk_size=4)  # 12 rows: 3 chunks
    assert_same_trees(run(by_chunks, train=False), run(BatchApply, train=False))  # rows independent
    _, updates = run(by_chunks, train=True)
    assert not np.allclose(updates["batch_stats"]["encoder"]["BatchNorm_0"]["mean"], 0.0)


@pytest.mark.spec("BA-12.12", "BA-13.5")
def test_chunk_size_with_a_callable_that_cannot_be_lifted_calls_it_per_chunk() -> None:
    make = lambda: nn.BatchNorm(use_running_average=False, momentum=0.9)  # noqa: E731

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            norm = make()
            return BatchApply(lambda z: norm(z) * 2.0, chunk_size=5)(x)  # a lambda: not liftable

    x = data((3, 4, 6))
    want_model = chunked_by_hand(lambda: (lambda m: lambda z: m(z) * 2.0)(make()), 5)
    variables = init(want_model, KEY, x)
    assert_same_trees(init(Model(), KEY, x), variables)
    got = apply(Model(), variables, x, mutable=["batch_stats"])
    assert_same_trees(got, apply(want_model, variables, x, mutable=["batch_stats"]))


@pytest.mark.spec("BA-12.12", "BA-13.5")
def test_batchnorm_under_chunk_size_sees_per_chunk_statistics() -> None:
    t, b, f, c, m = 4, 5, 3, 8, 0.9
    x = data((t, b, f))
    model = BatchApply(nn.BatchNorm(use_running_average=False, momentum=m), chunk_size=c)
    variables = init(model, KEY, x)
    out, updates = apply(model, variables, x, mutable=["batch_stats"])
    rows = np.asarray(x, dtype=np.float64).reshape(t * b, f)
    mean, var = np.zeros(f), np.ones(f)
    for start in range(0, t * b, c):  # chunks of 8, 8 and 4 rows, one update each, in order
        chunk = rows[start : start + c]
        mean, var = m * mean + (1 - m) * chunk.mean(0), m * var + (1 - m) * chunk.var(0)
        # Each chunk is normalized by its own statistics.
        np.testing.assert_allclose(np.asarray(out).reshape(t * b, f)[start : start + c].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["var"], var, rtol=1e-5)
    whole = BatchApply(nn.BatchNorm(use_running_average=False, momentum=m))
    unchunked = apply(whole, variables, x, mutable=["batch_stats"])
    assert not np.allclose(out, unchunked[0], atol=1e-3)


@pytest.mark.spec("BA-12.12", "BA-14.2")
def test_row_order_reaches_the_call() -> None:
    x = data((2, 4, 3))
    seen: list[np.ndarray] = []

    def f(rows: jax.Array) -> jax.Array:
        seen.append(np.asarray(rows))
        return rows * 2.0

    model = BatchApply(f, row_order=(1, 2))
    np.testing.assert_array_equal(apply(model, {}, x), np.asarray(x) * 2.0)
    xs = np.asarray(x)  # counts (1, 2): the first half of B for every t, then the second half
    want = np.concatenate([xs[:, :2].reshape(4, 3), xs[:, 2:].reshape(4, 3)])
    np.testing.assert_array_equal(seen[0], want)
    with pytest.raises(ValueError, match=re.escape("BatchApply: `row_order` shard counts do not divide")):
        apply(BatchApply(f, row_order=[1, 3]), {}, x)


@pytest.mark.spec("BA-12.12")
def test_values_sown_under_chunk_size_are_stacked_per_chunk() -> None:
    class Probe(nn.Module):
        @nn.compact
        def __call__(self, z: jax.Array) -> jax.Array:
            y = nn.Dense(3)(z)
            self.sow("intermediates", "y", y)
            return y

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return BatchApply(Probe(), chunk_size=5)(x)

    x = data((3, 4, 6))  # 12 rows: two full chunks of 5 in the scan, then 2 rows
    variables = init(Model(), KEY, x)
    out, state = apply(Model(), variables, x, mutable=["intermediates"])
    scanned, rest = state["intermediates"]["Probe_0"]["y"]
    assert scanned.shape == (2, 5, 3) and rest.shape == (2, 3)
    rows = np.asarray(out).reshape(12, 3)
    np.testing.assert_array_equal(np.concatenate([np.asarray(scanned).reshape(10, 3), rest]), rows)


class CreatesPerCall(nn.Module):
    how: str

    def torso(self, z: jax.Array) -> jax.Array:
        return nn.relu(nn.Dense(3)(z))  # a new Dense on every call, in the compact context

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f = self.torso if self.how == "bound-method-of-caller" else (lambda z: nn.Dense(3)(z))
        return BatchApply(f, chunk_size=5)(x)


@pytest.mark.spec("BA-12.12")
@pytest.mark.parametrize("how", ["bound-method-of-caller", "lambda"])
def test_chunk_size_refuses_a_callable_that_creates_submodules_per_chunk(how: str) -> None:
    x = data((3, 4, 6))  # 12 rows: 3 chunks of at most 5
    prefix = "batchapply.linen.BatchApply: with `chunk_size`, module must not create submodules per call"
    # The message names the callable and the chunk (kills `_name` returning None, mutation run of
    # 2026-12-07): a bound method by its qualified name, a lambda by where it was written.
    name = (
        "CreatesPerCall.torso"
        if how == "bound-method-of-caller"
        else "CreatesPerCall.__call__.<locals>.<lambda>"
    )
    again = f"{prefix}: {name} created the submodules Dense_1 again for chunk 1, "
    with pytest.raises(ValueError, match=re.escape(again)):
        init(CreatesPerCall(how), KEY, x)
    unchunked = init(CreatesPerCall(how).clone(), KEY, x[:1, :4])  # one chunk: one call, one Dense
    assert list(unchunked["params"]) == ["Dense_0"]


@pytest.mark.spec("BA-12.12", "BA-13.9")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_grads_under_chunk_size_are_the_unchunked_ones_for_a_row_independent_layer(jit: bool) -> None:
    x = data((3, 4, 6))  # 12 rows: chunks of 5, 5 and 2
    variables = init(BatchApply(nn.Dense(3)), KEY, x)

    def grads(chunk_size: int | None) -> Any:
        model = BatchApply(nn.Dense(3), chunk_size=chunk_size)
        loss = lambda v: jnp.sum(jnp.tanh(apply(model, v, x)) ** 2)  # noqa: E731
        return (jax.jit(jax.grad(loss)) if jit else jax.grad(loss))(variables)

    got, want = grads(5), grads(None)  # the same sums, added in another order
    assert paths(got) == paths(want)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), got, want)


@pytest.mark.spec("BA-12.12")
@pytest.mark.parametrize("how", ["partial", "bound method"])
def test_a_partial_of_a_submodule_runs_its_full_chunks_in_one_scan(how: str) -> None:
    # Kills `_liftable`'s partial and bound-method branches returning None (tests/mutation/results,
    # 2026-12-07): the callable would then be called once per chunk, correct but unrolled (4
    # products, no scan).
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            dense = nn.Dense(3)
            f = functools.partial(dense) if how == "partial" else dense.__call__
            return BatchApply(f, chunk_size=2)(x)

    x = data((2, 4, 5))  # 8 rows: 4 full chunks of 2
    variables = init(Net(), KEY, x)
    jaxpr = str(jax.make_jaxpr(lambda v, z: apply(Net(), v, z))(variables, x))
    assert "scan[" in jaxpr and jaxpr.count("dot_general[") == 1, jaxpr


@pytest.mark.spec("BA-12.12")
def test_at_the_top_level_a_callable_that_creates_submodules_per_chunk_raises() -> None:
    # Kills the negated `self.scope is not None` in `_apply`'s caller (tests/mutation/results,
    # 2026-12-07): at the top level the wrapper itself is the caller whose children are watched.
    model = BatchApply(lambda z: nn.Dense(4)(z), chunk_size=2)
    with pytest.raises(ValueError, match=re.escape(CHUNK_MODULES_PREFIX)):
        model.init(KEY, data((2, 3, 5)))


@pytest.mark.spec("BA-12.11", "BA-12.12")
def test_built_in_a_plain_method_it_chunks_as_a_plain_callable() -> None:
    # In a plain method the wrapper has no scope and no module of its own to watch for
    # submodules made per chunk: it chunks as a plain callable does. Kills `caller is not None
    # and not lifted -> or` (linen.py's full mutation run, 2026-12-07), which read the
    # children of no module.
    class Outer(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return nn.Dense(2)(x)

        def method(self, x: jax.Array) -> jax.Array:
            return BatchApply(jnp.tanh, chunk_size=4)(x)

    x = data((2, 5, 3))
    variables = Outer().init(KEY, x)
    out = Outer().apply(variables, x, method=Outer.method)
    np.testing.assert_allclose(np.asarray(out), np.tanh(x), rtol=1e-6)


@pytest.mark.spec("BA-12.11")
def test_a_parent_given_in_a_plain_method_keeps_flax_s_own_error() -> None:
    # Built in a plain method, the wrapper is a plain callable (BA-12.11), unless the user
    # named its parent: then flax's AssignSubModuleError says what is wrong. Kills
    # `self.parent is None or isinstance(...) -> and` (linen.py's full mutation run, 2026-12-07).
    class Outer(nn.Module):
        given: bool

        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return nn.Dense(2)(x)

        def method(self, x: jax.Array) -> jax.Array:
            return BatchApply(jnp.tanh, parent=self)(x) if self.given else BatchApply(jnp.tanh)(x)

    x = data((2, 3, 4))
    variables = Outer(False).init(KEY, x)
    plain = Outer(False).apply(variables, x, method=Outer.method)
    np.testing.assert_allclose(np.asarray(plain), np.tanh(x), rtol=1e-6)
    with pytest.raises(flax.errors.AssignSubModuleError):
        Outer(True).apply(variables, x, method=Outer.method)


@pytest.mark.spec("BA-12.12", "BA-1.6")
def test_init_with_rows_without_elements_runs_every_chunk() -> None:
    # At init chunk 0 runs first, then the scan over the other full chunks, skipped only when
    # there are none: not when a row holds no elements. Kills `stacked[0].shape[0] == 0 ->
    # .shape[-1] == 0` in `_Chunked._map_chunks` (linen.py's full mutation run, 2026-12-07).
    x = jnp.ones((1, 12, 0))
    out, variables = BatchApply(
        nn.Dense(3, kernel_init=nn.initializers.zeros), chunk_size=4
    ).init_with_output(KEY, x)
    assert out.shape == (1, 12, 3) and variables["params"]["kernel"].shape == (0, 3)


@pytest.mark.spec("BA-12.12")
def test_a_name_clash_on_the_first_chunk_keeps_flax_s_own_error() -> None:
    # A name already taken in the caller is the user's clash, not a submodule made once per
    # chunk: on the first chunk flax's NameInUseError passes through unchanged. Kills
    # `before is None or not calls -> and` in the chunk watcher (linen.py's full mutation run,
    # 2026-12-07), which raised the wrapper's chunk error instead.
    class Clash(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            nn.Dense(4, name="proj")(x)
            return BatchApply(lambda z: nn.Dense(4, name="proj")(z), chunk_size=2)(x)

    with pytest.raises(flax.errors.NameInUseError) as info:
        Clash().init(KEY, data((2, 3, 5)))
    assert not str(info.value).startswith(CHUNK_MODULES_PREFIX)


@pytest.mark.spec("BA-12.12")
@pytest.mark.parametrize("rows", [7, 10, 12], ids=["one-full-chunk-and-2", "two-full-chunks", "two-and-2"])
def test_init_with_one_full_chunk_creates_the_variables_once(rows: int) -> None:
    # At init chunk 0 runs before the scan; with one full chunk the scan has nothing left to
    # do. Kills `return first -> return None` in `_Chunked._map_chunks` (mutation run of
    # 2026-12-07): the outputs of that chunk were lost.
    x = data((1, rows, 4))
    model = BatchApply(nn.Dense(3), chunk_size=5)
    variables = init(model, KEY, x)
    want = init(BatchApply(nn.Dense(3)), KEY, x)
    jax.tree.map(np.testing.assert_array_equal, variables, want)
    got = model.init_with_output(KEY, x)[0]
    np.testing.assert_allclose(got, apply(BatchApply(nn.Dense(3)), want, x), rtol=1e-5, atol=1e-5)
