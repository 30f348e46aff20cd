"""SPEC section 12: batchapply.nnx.BatchApply against the hand-written reshape around real layers."""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from batchapply.nnx import BatchApply


def data(shape: tuple[int, ...], seed: int = 3) -> jax.Array:
    """Inputs whose rows differ by timestep, so that per-timestep statistics would differ."""
    offset = jnp.arange(shape[0], dtype=jnp.float32).reshape((-1,) + (1,) * (len(shape) - 1))
    return jax.random.normal(jax.random.key(seed), shape) + 3.0 * offset


def by_hand(layer: Callable[..., Any], x: jax.Array, **kwargs: Any) -> jax.Array:
    """The hand-written reshape that BatchApply replaces."""
    y = layer(x.reshape((-1,) + x.shape[2:]), **kwargs)
    out: jax.Array = y.reshape(x.shape[:2] + y.shape[1:])
    return out


def plain(a: Any) -> Any:
    """An array to compare: rng keys as their raw data."""
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(a)
    return a


def pure(tree: Any) -> Any:
    """Nested dicts of arrays, whether ``tree`` is an nnx.State or a dict of them."""
    if isinstance(tree, nnx.State):
        return nnx.to_pure_dict(tree)
    if isinstance(tree, dict):
        return {k: pure(v) for k, v in tree.items()}
    return tree


def paths(tree: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (jax.tree_util.keystr(path), jnp.shape(leaf))
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    ]


def assert_same_states(got: Any, want: Any) -> None:
    got, want = pure(got), pure(want)
    assert paths(got) == paths(want)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(plain(a), plain(b), rtol=1e-5, atol=1e-5), got, want)


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable[[], nnx.Module]
    shape: tuple[int, ...]


CASES = {
    "Linear": Case(lambda: nnx.Linear(6, 5, rngs=nnx.Rngs(0)), (3, 4, 6)),
    "Conv-TBHWC": Case(lambda: nnx.Conv(2, 4, (3, 3), rngs=nnx.Rngs(0)), (2, 3, 5, 5, 2)),
    "LayerNorm": Case(lambda: nnx.LayerNorm(6, rngs=nnx.Rngs(0)), (3, 4, 6)),
    "BatchNorm": Case(lambda: nnx.BatchNorm(6, rngs=nnx.Rngs(0)), (3, 4, 6)),
    "Dropout": Case(lambda: nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=5)), (3, 4, 6)),
    "MultiHeadAttention-TBLD": Case(
        lambda: nnx.MultiHeadAttention(2, 8, qkv_features=8, decode=False, rngs=nnx.Rngs(0)), (2, 3, 5, 8)
    ),
}


@pytest.mark.spec("BA-12.4", "BA-12.9")
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_output_and_state_updates_match_the_hand_written_reshape(case: Case) -> None:
    x = data(case.shape)
    layer, twin = case.make(), case.make()  # same seeds: same parameters and rng streams
    assert_same_states(nnx.state(layer), nnx.state(twin))
    got = BatchApply(layer)(x)
    want = by_hand(twin, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_same_states(nnx.state(layer), nnx.state(twin))  # batch stats, rng counts


@pytest.mark.spec("BA-12.5")
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_state_is_the_wrapped_modules_under_module(case: Case) -> None:
    layer = case.make()
    wrapper = BatchApply(layer)
    assert wrapper.module is layer
    want = nnx.state(layer)
    got = nnx.state(wrapper)
    assert set(got.keys()) == {"module"}
    assert_same_states(got["module"], want)
    leaves = jax.tree.leaves(nnx.state(case.make()))
    assert len(jax.tree.leaves(got)) == len(leaves)  # no variables of its own


@pytest.mark.spec("BA-12.5")
def test_variables_are_shared_with_the_wrapped_module() -> None:
    layer = nnx.Linear(6, 5, rngs=nnx.Rngs(0))
    wrapper = BatchApply(layer)
    assert layer.kernel is not None and layer.bias is not None
    layer.kernel[...] = jnp.zeros((6, 5))
    layer.bias[...] = jnp.arange(5.0)
    np.testing.assert_array_equal(wrapper(data((3, 4, 6))), np.broadcast_to(np.arange(5.0), (3, 4, 5)))


def test_the_wrapper_adds_two_attributes_to_the_graph() -> None:
    """nnx.jit walks every attribute of the graph on every call: the module and one for the
    five options (issue 26: five attributes cost 2% of a small step), read back by name."""
    wrapper = BatchApply(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), 3, in_axes=[0], chunk_size=8, row_order="C")
    assert [k for k in vars(wrapper) if not k.startswith("_")] == ["module", "options"]
    assert (wrapper.num_dims, wrapper.in_axes, wrapper.out_axes) == (3, (0,), 0)
    assert (wrapper.chunk_size, wrapper.row_order) == (8, "C")
    with pytest.raises(AttributeError):
        wrapper.num_dims = 2
    axes: Any = collections.defaultdict(int, {"a": 0, "b": None})  # reaches the core as it is
    arg: Any = collections.defaultdict(int, {"a": jnp.ones((2, 3, 4)), "b": jnp.ones(3)})
    out = BatchApply(lambda t: t["a"], in_axes=(axes,))(arg)
    assert out.shape == (2, 3, 4)


@pytest.mark.spec("BA-12.4", "BA-12.12")
def test_constructor_signature() -> None:
    params = list(inspect.signature(BatchApply.__init__).parameters.values())[1:]  # after self
    assert [(p.name, p.kind, p.default) for p in params] == [
        ("module", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("num_dims", inspect.Parameter.POSITIONAL_OR_KEYWORD, 2),
        ("in_axes", inspect.Parameter.KEYWORD_ONLY, 0),
        ("out_axes", inspect.Parameter.KEYWORD_ONLY, 0),
        ("chunk_size", inspect.Parameter.KEYWORD_ONLY, None),
        ("row_order", inspect.Parameter.KEYWORD_ONLY, "C"),
    ]
    assert issubclass(BatchApply, nnx.Module)


@pytest.mark.spec("BA-12.4", "BA-12.12")
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "prefix"),
    [
        (("linear",), {}, TypeError, "BatchApply: `f` must be callable"),
        ((jax.nn.relu, 0), {}, ValueError, "BatchApply: `num_dims` must be >= 1"),
        ((jax.nn.relu, True), {}, TypeError, "BatchApply: `num_dims` must be an int"),
        ((jax.nn.relu,), {"in_axes": {"x": 0}}, ValueError, "BatchApply: `in_axes` must be 0, None"),
        ((jax.nn.relu,), {"out_axes": -1}, ValueError, "BatchApply: axis values must be 0 or None"),
        ((jax.nn.relu,), {"chunk_size": 2.0}, TypeError, "BatchApply: `chunk_size` must be an int"),
        ((jax.nn.relu,), {"chunk_size": -1}, ValueError, "BatchApply: `chunk_size` must be >= 1"),
        ((jax.nn.relu,), {"row_order": "rows"}, ValueError, "BatchApply: `row_order` must be"),
        ((jax.nn.relu,), {"row_order": (1, 0)}, ValueError, "BatchApply: `row_order` must be"),
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
        "row_order-count",
    ],
)
def test_arguments_are_checked_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type, prefix: str
) -> None:
    with pytest.raises(error) as info:
        BatchApply(*args, **kwargs)
    assert str(info.value).startswith(prefix)


@pytest.mark.spec("BA-12.4")
def test_in_axes_and_out_axes_keep_their_containers() -> None:
    wrapper = BatchApply(
        lambda pair: {"y": pair[0] + pair[1], "n": 3}, in_axes=([0, None],), out_axes={"y": 0, "n": None}
    )
    x = data((3, 4, 6))
    out = nnx.jit(lambda w, a: w([a, jnp.ones((1, 6))])["y"])(wrapper, x)
    np.testing.assert_allclose(out, np.asarray(x) + 1.0, rtol=1e-6)
    assert wrapper([x, jnp.ones((1, 6))])["n"] == 3


@pytest.mark.spec("BA-12.6")
def test_stateless_callables_are_accepted() -> None:
    x = data((3, 4, 6))
    np.testing.assert_allclose(BatchApply(jax.nn.relu)(x), np.maximum(np.asarray(x), 0.0))


class Holder(nnx.Module):
    def __init__(self) -> None:
        self.linear = nnx.Linear(6, 5, rngs=nnx.Rngs(0))


def hiding(how: str) -> tuple[Callable[..., Any], str]:
    """A callable that reaches a Linear outside the nnx graph, and how the error names it."""
    holder = Holder()
    if how == "bound-method":
        return holder.linear.__call__, "a bound method of Linear"
    if how == "closure":
        return (lambda x: holder.linear(x)), "a function that closes over Holder"
    if how == "partial-of-method":
        return functools.partial(holder.linear.__call__), "a bound method of Linear"
    return functools.partial(lambda m, x: m(x), holder.linear), "a functools.partial that holds Linear"


@pytest.mark.spec("BA-12.6")
@pytest.mark.parametrize("how", ["bound-method", "closure", "partial-of-method", "partial-holding"])
def test_callables_that_hide_nnx_state_are_rejected(how: str) -> None:
    f, description = hiding(how)
    prefix = "batchapply.nnx.BatchApply: `module` must hold its state where nnx can see it"
    with pytest.raises(TypeError, match=re.escape(f"{prefix}; got {description},")):
        BatchApply(f)


@pytest.mark.spec("BA-12.7", "BA-12.9")
def test_rngs_passed_at_call_time_are_the_callers_object() -> None:
    x = jnp.ones((4, 5, 16))
    rngs, twin = nnx.Rngs(dropout=7), nnx.Rngs(dropout=7)
    drop = BatchApply(nnx.Dropout(0.5))
    first = drop(x, rngs=rngs)
    np.testing.assert_array_equal(first, by_hand(nnx.Dropout(0.5), x, rngs=twin))
    assert rngs.dropout.count[...] == twin.dropout.count[...] == 1  # the caller's counter advanced
    assert set(np.unique(np.asarray(first)).tolist()) == {0.0, 2.0}
    second = drop(x, rngs=rngs)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, by_hand(nnx.Dropout(0.5), x, rngs=twin))


# Whatever in_axes says at an nnx object's position (an axis, None, or a structure written
# for the object's own pytree), the object itself reaches f (BA-12.7).
@pytest.mark.spec("BA-12.7")
@pytest.mark.parametrize("axes", [(0, 0), (0, None), (0, {"noise": 0})], ids=str)
def test_positional_nnx_objects_pass_through(axes: tuple[Any, ...]) -> None:
    seen: list[Any] = []

    def f(x: jax.Array, rngs: nnx.Rngs) -> jax.Array:
        seen.append(rngs)
        return x + jax.random.normal(rngs.noise(), x.shape[-1:])

    rngs = nnx.Rngs(noise=1)
    out = BatchApply(f, in_axes=axes)(data((3, 4, 6)), rngs)
    assert seen == [rngs] and seen[0] is rngs
    want = np.asarray(data((3, 4, 6))) + np.asarray(jax.random.normal(nnx.Rngs(noise=1).noise(), (6,)))
    np.testing.assert_allclose(out, want, rtol=1e-6)


@pytest.mark.spec("BA-12.8")
def test_batchnorm_statistics_cover_all_merged_rows() -> None:
    t, b, f = 4, 5, 3
    x = data((t, b, f))
    bn = nnx.BatchNorm(f, momentum=0.9, rngs=nnx.Rngs(0))
    out = BatchApply(bn)(x)
    rows = np.asarray(x, dtype=np.float64).reshape(t * b, f)
    np.testing.assert_allclose(bn.mean[...], 0.1 * rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.var[...], 0.9 + 0.1 * rows.var(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out).reshape(t * b, f).mean(0), 0.0, atol=1e-5)
    assert np.all(np.abs(np.asarray(out)[0].mean(0)) > 0.5)  # not normalized per timestep


STYLES = ["by-hand", "wrap-at-call", "wrap-as-attribute"]


class Model(nnx.Module):
    """An encoder, BatchNorm and a decoder over [Time, Batch, Features], in one of three styles."""

    def __init__(self, style: str) -> None:
        rngs = nnx.Rngs(0)
        self.style = style
        layers: tuple[Any, ...] = (
            nnx.Linear(6, 8, rngs=rngs),
            nnx.BatchNorm(8, rngs=rngs),
            nnx.Linear(8, 2, rngs=rngs),
        )
        if style == "wrap-as-attribute":
            layers = tuple(BatchApply(layer) for layer in layers)
        self.encoder, self.norm, self.decoder = layers

    def __call__(self, x: jax.Array) -> jax.Array:
        def net(h: jax.Array) -> jax.Array:
            return self.decoder(nnx.relu(self.norm(self.encoder(h))))

        if self.style == "by-hand":
            return net(x.reshape((-1, x.shape[-1]))).reshape(x.shape[:2] + (2,))
        if self.style == "wrap-at-call":
            return BatchApply(self.decoder)(nnx.relu(BatchApply(self.norm)(BatchApply(self.encoder)(x))))
        return net(x)


def layer_states(model: Model) -> dict[str, Any]:
    """The state of each layer, whether it is held directly or through a BatchApply."""
    layers = {"encoder": model.encoder, "norm": model.norm, "decoder": model.decoder}
    return {k: nnx.state(v.module if isinstance(v, BatchApply) else v) for k, v in layers.items()}


def train_step(model: Model, optimizer: nnx.Optimizer[Model], x: jax.Array, y: jax.Array) -> jax.Array:
    def loss_fn(m: Model) -> jax.Array:
        return jnp.mean((m(x) - y) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@pytest.mark.spec("BA-12.4", "BA-12.5")
def test_wrapping_at_call_time_keeps_the_state_tree() -> None:
    assert_same_states(nnx.state(Model("wrap-at-call")), nnx.state(Model("by-hand")))


@pytest.mark.spec("BA-12.4")
@pytest.mark.parametrize("style", STYLES[1:])
def test_grad_under_jit_matches_the_hand_written_reshape(style: str) -> None:
    x = data((3, 4, 6))

    def grads(model: Model) -> Any:
        return nnx.grad(lambda m: jnp.sum(jnp.tanh(m(x)) ** 2))(model)

    got = nnx.jit(grads)(Model(style))
    want = grads(Model("by-hand"))
    if style == "wrap-as-attribute":
        got = {name: got[name]["module"] for name in ("encoder", "norm", "decoder")}
    assert_same_states(got, want)


@pytest.mark.spec("BA-12.4")
@pytest.mark.parametrize("style", STYLES[1:])
def test_optimizer_steps_under_jit_match_the_hand_written_reshape(style: str) -> None:
    x, y = data((3, 4, 6)), data((3, 4, 2), seed=4)
    step = nnx.jit(train_step)
    losses, states = {}, {}
    for s in (style, "by-hand"):
        model = Model(s)
        optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
        losses[s] = [float(step(model, optimizer, x, y)) for _ in range(5)]
        states[s] = layer_states(model)
    np.testing.assert_allclose(losses[style], losses["by-hand"], rtol=1e-5)
    assert losses[style][-1] < losses[style][0]
    assert_same_states(states[style], states["by-hand"])


class Cell(nnx.Module):
    """One timestep over [Batch, Set, Features]: BatchApply over (Batch, Set)."""

    def __init__(self) -> None:
        self.dense = BatchApply(nnx.Linear(5, 3, rngs=nnx.Rngs(0)))

    def __call__(self, carry: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        y = self.dense(x_t)
        return carry + y.mean(axis=1), y


@pytest.mark.spec("BA-12.4")
def test_inside_nnx_scan_over_time() -> None:
    xs = data((6, 2, 4, 5))  # [Time, Batch, Set, Features]
    cell = Cell()

    @nnx.scan(in_axes=(None, nnx.Carry, 0), out_axes=(nnx.Carry, 0))
    def over_time(cell: Cell, carry: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        return cell(carry, x_t)

    carry, ys = over_time(cell, jnp.zeros((2, 3)), xs)
    linear = cell.dense.module
    assert isinstance(linear, nnx.Linear) and linear.bias is not None
    kernel, bias = np.asarray(linear.kernel[...]), np.asarray(linear.bias[...])
    want_ys = np.asarray(xs) @ kernel + bias
    np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry, want_ys.mean(axis=2).sum(axis=0), rtol=1e-5, atol=1e-5)


# ---- chunk_size and row_order (BA-12.12) -------------------------------------------


def chunked_by_hand(layer: Callable[..., Any], x: jax.Array, chunk: int) -> jax.Array:
    """The hand-written chunk loop: merge, call the layer on each chunk in order, concatenate, split."""
    rows = x.reshape((-1,) + x.shape[2:])
    y = jnp.concatenate([layer(rows[i : i + chunk]) for i in range(0, rows.shape[0], chunk)])
    out: jax.Array = y.reshape(x.shape[:2] + y.shape[1:])
    return out


CHUNK_CASES = {
    "Linear": CASES["Linear"],
    "BatchNorm": Case(lambda: nnx.BatchNorm(6, momentum=0.9, rngs=nnx.Rngs(0)), (3, 4, 6)),
    "Dropout": CASES["Dropout"],
}


@pytest.mark.spec("BA-12.12", "BA-13.5")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("case", CHUNK_CASES.values(), ids=CHUNK_CASES.keys())
def test_chunk_size_calls_the_layer_once_per_chunk_in_order(case: Case, jit: bool) -> None:
    x = data(case.shape)  # 12 rows: chunks of 5, 5 and 2
    layer, twin = case.make(), case.make()
    wrapper = BatchApply(layer, chunk_size=5)
    got = nnx.jit(lambda w, z: w(z))(wrapper, x) if jit else wrapper(x)
    want = chunked_by_hand(twin, x, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_same_states(nnx.state(layer), nnx.state(twin))  # BatchNorm statistics, Rngs counters


@pytest.mark.spec("BA-12.12", "BA-13.5")
def test_batchnorm_under_chunk_size_sees_per_chunk_statistics() -> None:
    t, b, f, c, m = 4, 5, 3, 8, 0.9
    x = data((t, b, f))
    bn = nnx.BatchNorm(f, momentum=m, rngs=nnx.Rngs(0))
    out = np.asarray(BatchApply(bn, chunk_size=c)(x)).reshape(t * b, f)
    rows = np.asarray(x, dtype=np.float64).reshape(t * b, f)
    mean, var = np.zeros(f), np.ones(f)
    for start in range(0, t * b, c):  # chunks of 8, 8 and 4 rows, one update each, in order
        chunk = rows[start : start + c]
        mean, var = m * mean + (1 - m) * chunk.mean(0), m * var + (1 - m) * chunk.var(0)
        np.testing.assert_allclose(out[start : start + c].mean(0), 0.0, atol=1e-5)  # its own statistics
    np.testing.assert_allclose(bn.mean[...], mean, rtol=1e-5)
    np.testing.assert_allclose(bn.var[...], var, rtol=1e-5)
    whole = (rows - rows.mean(0)) / np.sqrt(rows.var(0) + 1e-5)  # normalized over all T*B rows
    assert not np.allclose(out, whole, atol=1e-2)


@pytest.mark.spec("BA-12.12", "BA-12.7")
def test_rngs_passed_at_call_time_advance_once_per_chunk() -> None:
    x = jnp.ones((3, 4, 16))
    rngs, twin = nnx.Rngs(dropout=7), nnx.Rngs(dropout=7)
    got = BatchApply(nnx.Dropout(0.5), chunk_size=5)(x, rngs=rngs)
    want = chunked_by_hand(lambda rows: nnx.Dropout(0.5)(rows, rngs=twin), x, 5)
    np.testing.assert_array_equal(got, want)
    assert rngs.dropout.count[...] == twin.dropout.count[...] == 3  # chunks of 5, 5 and 2 rows


@pytest.mark.spec("BA-12.12", "BA-14.2")
def test_row_order_reaches_the_call() -> None:
    x = data((2, 4, 3))
    seen: list[np.ndarray] = []

    def f(rows: jax.Array) -> jax.Array:
        seen.append(np.asarray(rows))
        return rows * 2.0

    np.testing.assert_array_equal(BatchApply(f, row_order=(1, 2))(x), np.asarray(x) * 2.0)
    xs = np.asarray(x)  # counts (1, 2): the first half of B for every t, then the second half
    np.testing.assert_array_equal(seen[0], np.concatenate([xs[:, :2].reshape(4, 3), xs[:, 2:].reshape(4, 3)]))
    with pytest.raises(ValueError, match=re.escape("BatchApply: `row_order` shard counts do not divide")):
        BatchApply(f, row_order=[1, 3])(x)


@pytest.mark.spec("BA-12.12", "BA-13.9")
def test_chunk_size_bounds_the_compiled_memory() -> None:
    # Noise-free: XLA's own accounting of the temporaries of the compiled program.
    class MLP(nnx.Module):
        def __init__(self) -> None:
            self.hidden = nnx.Linear(8, 1024, rngs=nnx.Rngs(0))
            self.out = nnx.Linear(1024, 8, rngs=nnx.Rngs(1))

        def __call__(self, x: jax.Array) -> jax.Array:
            out: jax.Array = self.out(nnx.relu(self.hidden(x)))
            return out

    x = jnp.ones((32, 32, 8))  # 1024 rows: a (1024, 1024) float32 hidden layer is 4 MiB

    def temp_bytes(chunk_size: int | None) -> int:
        graph, state = nnx.split(BatchApply(MLP(), chunk_size=chunk_size))
        compiled = jax.jit(lambda s, z: nnx.merge(graph, s)(z)).lower(state, x).compile()
        analysis = compiled.memory_analysis()
        assert analysis is not None
        return int(analysis.temp_size_in_bytes)

    whole, chunked = temp_bytes(None), temp_bytes(128)
    assert whole >= 4 * 2**20
    assert chunked < whole / 4  # the hidden layer of 128 rows, not of 1024


@pytest.mark.spec("BA-12.12", "BA-13.9")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_grads_under_chunk_size_are_the_unchunked_ones_for_a_row_independent_layer(jit: bool) -> None:
    x = data((3, 4, 6))  # 12 rows: chunks of 5, 5 and 2

    def grads(chunk_size: int | None) -> Any:
        layer = nnx.Linear(6, 3, rngs=nnx.Rngs(0))
        wrapper = BatchApply(layer, chunk_size=chunk_size)
        loss = lambda w: jnp.sum(jnp.tanh(w(x)) ** 2)  # noqa: E731
        return (nnx.jit(nnx.grad(loss)) if jit else nnx.grad(loss))(wrapper)

    assert_same_states(grads(5), grads(None))


@pytest.mark.spec("BA-12.12", "BA-13.4")
def test_a_stateless_callable_is_chunked_as_batchapply_chunks_it() -> None:
    # Kills `stateful and chunk_size` -> `stateful or chunk_size` in __call__ (tests/mutation/results,
    # 2026-12-07): a stateless callable needs no nnx.scan; eagerly it is called once per chunk with
    # concrete rows, as batchapply.BatchApply calls it (BA-13.4), never traced.
    seen: list[tuple[bool, int]] = []

    def f(rows: jax.Array) -> jax.Array:
        seen.append((isinstance(rows, jax.core.Tracer), rows.shape[0]))
        return rows * 2

    out = BatchApply(f, chunk_size=2)(jnp.ones((2, 3, 4)))
    np.testing.assert_array_equal(out, 2 * np.ones((2, 3, 4)))
    assert seen == [(False, 2), (False, 2), (False, 2)]
