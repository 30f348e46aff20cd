"""Checks of SPEC section 8: the target under JAX transformations, against the hand-written reshape.

jax is imported when these checks run, never when the package is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from batchapply_conformance._checks import Check, Outcome, Target, describe_error

T, B, F, HIDDEN, OUT = 3, 4, 5, 6, 2  # time, batch, features, hidden, outputs


def _mlp() -> tuple[Callable[[Any], Any], Any]:
    """A small MLP on [rows, F] and an input of shape [T, B, F]."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)
    w1 = jax.random.normal(jax.random.fold_in(key, 1), (F, HIDDEN))
    w2 = jax.random.normal(jax.random.fold_in(key, 2), (HIDDEN, OUT))
    x = jax.random.normal(jax.random.fold_in(key, 3), (T, B, F))
    return (lambda rows: jnp.tanh(rows @ w1) @ w2), x


def _by_hand(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: f(x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])).reshape(x.shape[:2] + (-1,))


def _close(got: Any, want: Any, what: str) -> Outcome:
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-5):
        return Outcome("pass")
    return Outcome(
        "fail",
        f"{what}: differs from the hand-written reshape",
        {"expected": {"shape": list(want.shape)}, "got": {"shape": list(got.shape)}, "what": what},
    )


def _jit(target: Target) -> Outcome:
    import jax

    f, x = _mlp()
    return _close(jax.jit(target.factory(f, 2))(x), _by_hand(f)(x), "jax.jit(make(mlp, 2))(x)")


def _grad(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp

    f, x = _mlp()
    got = jax.grad(lambda x: jnp.sum(target.factory(f, 2)(x) ** 2))(x)
    want = jax.grad(lambda x: jnp.sum(_by_hand(f)(x) ** 2))(x)
    return _close(got, want, "jax.grad of a loss through make(mlp, 2)")


def _vjp(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp

    f, x = _mlp()
    out, pullback = jax.vjp(target.factory(f, 2), x)
    _, hand_pullback = jax.vjp(_by_hand(f), x)
    return _close(pullback(jnp.ones_like(out))[0], hand_pullback(jnp.ones_like(out))[0], "jax.vjp")


def _vmap(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp

    f, x = _mlp()
    xs = jnp.stack([x, 2 * x])
    return _close(
        jax.vmap(target.factory(f, 2))(xs), jnp.stack([_by_hand(f)(v) for v in xs]), "outer jax.vmap"
    )


def _scan(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp

    f, x = _mlp()
    _, ys = jax.lax.scan(lambda c, step: (c, target.factory(f, 1)(step)), jnp.zeros(()), x)
    return _close(ys, _by_hand(f)(x), "make(mlp, 1) in a jax.lax.scan body")


def _checkpoint(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp

    f, x = _mlp()
    got = jax.grad(lambda x: jnp.sum(jax.checkpoint(target.factory(f, 2))(x)))(x)
    want = jax.grad(lambda x: jnp.sum(_by_hand(f)(x)))(x)
    return _close(got, want, "jax.grad through jax.checkpoint")


def _export(target: Target) -> Outcome:
    import jax
    import jax.numpy as jnp
    from jax import export

    f, x = _mlp()
    spec = jax.ShapeDtypeStruct(export.symbolic_shape(f"t, b, {F}"), jnp.float32)
    exported = export.export(jax.jit(target.factory(f, 2)))(spec)
    return _close(exported.call(x), _by_hand(f)(x), "jax.export with symbolic leading dims, called on x")


def _chunked(target: Target) -> Outcome:
    """BA-13.9: chunk_size under jax.jit and jax.grad gives the unchunked result."""
    import jax
    import jax.numpy as jnp

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    f, x = _mlp()  # T * B = 12 merged rows: chunks of 5, 5 and 2
    chunked = target.factory(f, 2, chunk_size=5)
    got = jax.jit(chunked)(x)
    outcome = _close(got, _by_hand(f)(x), "jax.jit(make(mlp, 2, chunk_size=5))(x)")
    if outcome.status != "pass":
        return outcome
    got_grad = jax.grad(lambda x: jnp.sum(chunked(x) ** 2))(x)
    want_grad = jax.grad(lambda x: jnp.sum(_by_hand(f)(x) ** 2))(x)
    return _close(got_grad, want_grad, "jax.grad through make(mlp, 2, chunk_size=5)")


def _chunks_under_a_trace(target: Target) -> Outcome:
    """BA-13.4 under a trace: a jax.Array input and a NumPy one that JAX holds exactly: the full
    chunks in one ``jax.lax.map`` (``f`` traced once on ``c`` rows, both inputs tracers, then once
    on the last chunk); a NumPy input JAX does not hold (masked, datetime64), or NumPy inputs only:
    ``f`` called once per chunk, the NumPy inputs as NumPy slices, as in eager mode."""
    import jax
    import numpy as np

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    x = np.arange(T * B * F, dtype=np.float32).reshape(T, B, F)  # 12 rows: chunks of 5, 5 and 2
    masked = np.ma.masked_array(x, mask=x % 3 == 0)
    dates = np.arange(T * B).astype("datetime64[s]").reshape(T, B)  # no jax dtype holds it
    seen: list[tuple[str, ...]] = []

    def kind(y: Any) -> str:
        if isinstance(y, np.ma.MaskedArray):
            return "masked"
        return "numpy" if isinstance(y, np.ndarray) else "traced"

    def f(y: Any, *z: Any) -> Any:
        seen.append((*(kind(v) for v in (y, *z)), str(y.shape[0])))
        return y * 2

    chunked = target.factory(f, 2, chunk_size=5)
    linen = sys.modules.get("flax.linen")
    # BA-12.12: a linen wrapper calls a plain callable once per chunk, in a Python loop.
    loops = linen is not None and isinstance(chunked, linen.Module)
    lax_map: list[tuple[str, ...]] = [("traced", "traced", "5"), ("traced", "traced", "2")]
    cases: list[tuple[str, Callable[[Any], Any], list[tuple[str, ...]]]] = [
        ("a jax.Array and a float32 NumPy input", lambda a: chunked(a, x), lax_map),
        (
            "a jax.Array and a masked NumPy input",
            lambda a: chunked(a, masked),
            [("traced", "masked", rows) for rows in ("5", "5", "2")],
        ),
        (
            "a jax.Array and a datetime64 NumPy input",
            lambda a: chunked(a, dates),
            [("traced", "numpy", rows) for rows in ("5", "5", "2")],
        ),
        ("a NumPy input only", lambda a: chunked(x), [("numpy", rows) for rows in ("5", "5", "2")]),
    ]
    twice = x * 2  # before the calls: one that changes x is BA-5.5's fault, not this check's
    for what, call, want in cases:
        seen.clear()
        got = jax.jit(call)(jax.numpy.asarray(x))  # the NumPy inputs are constants of the program
        if seen != want and not (loops and [c[-1] for c in seen] == ["5", "5", "2"]):
            # f called as BA-13.4 says (as often, with inputs of the same kinds) on chunks of other
            # sizes: which rows form a chunk is at fault (BA-13.3), not how f is called.
            sizes = [c[:-1] for c in seen] == [c[:-1] for c in want] and sorted(seen) != sorted(want)
            clause = "BA-13.3" if sizes else "BA-13.4"
            return Outcome(
                "fail",
                f"jax.jit of make(f, 2, chunk_size=5) on {what} of 12 rows: f saw (inputs, rows) {seen}; "
                f"BA-13.4 wants {want}" + (" (chunks of other sizes: BA-13.3)" if sizes else ""),
                {"got": {"calls": [list(c) for c in seen]}, "expected": {"calls": [list(c) for c in want]}},
                (clause,),
            )
        outcome = _close(got, twice, f"jax.jit of make(f, 2, chunk_size=5) on {what}")
        if outcome.status != "pass":
            return outcome
    return Outcome("pass")


def _counted_chunks_under_a_trace(target: Target) -> Outcome:
    """BA-14.9 under jax.jit: shard counts of 2 (no mesh needed: the counts say it) and chunks of
    2 local rows per shard, then a shorter last one; ``f`` tags each row with its position in the
    chunk it saw, so that which rows form a chunk, and their order back, show in the values."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import batchapply_reference

    if "chunk_size" not in target.options or "row_order" not in target.options:
        return Outcome("na", "the target does not take chunk_size and row_order (SPEC sections 13, 14)")

    def tagged(rows: Any) -> Any:
        return rows * 10 + jnp.arange(rows.shape[0], dtype=rows.dtype)[:, None]

    def tagged_numpy(rows: Any) -> Any:
        return rows * 10 + np.arange(rows.shape[0], dtype=rows.dtype)[:, None]

    for counts, leading in (((1, 2), (5, 2)), ((2, 1), (2, 5))):  # 10 rows, 5 per shard
        data = np.arange(10 * 3, dtype=np.float32).reshape(leading + (3,))
        got = jax.jit(target.factory(tagged, 2, row_order=counts, chunk_size=4))(jnp.asarray(data))
        want = batchapply_reference.BatchApply(tagged_numpy, 2, row_order=counts, chunk_size=4)(data)
        outcome = _close(got, want, f"jax.jit(make(f, 2, row_order={counts}, chunk_size=4)) on {leading}")
        if outcome.status != "pass":
            return outcome
    return Outcome("pass")


def _chunk_refusals(target: Target) -> Outcome:
    """BA-13.10: chunk_size with a symbolic number of rows raises ValueError, not JAX's own error."""
    import jax
    import jax.numpy as jnp
    from jax import export

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    f, _ = _mlp()
    spec = jax.ShapeDtypeStruct(export.symbolic_shape(f"t, b, {F}"), jnp.float32)
    try:
        export.export(jax.jit(target.factory(f, 2, chunk_size=5)))(spec)
    except ValueError as e:
        if type(e).__module__.startswith("jax"):
            return Outcome(
                "fail", f"JAX's own exception escaped: {describe_error(e)}", {"got": describe_error(e)}
            )
        return Outcome("pass")
    return Outcome("fail", "jax.export with a symbolic batch and chunk_size=5 did not raise (E18)")


def _chunk_memory(target: Target) -> Outcome:
    """BA-13.11: an eager chunked call holds no merged copy of a whole jax.Array input.

    While ``f`` runs on a chunk, the live JAX buffers above those held before the call must
    stay under the input's size plus the outputs so far and a few chunks; a merged copy of
    the whole input would add the input's size again.
    """
    import jax
    import jax.numpy as jnp

    if "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    rows, features, chunk = 64 * 64, 256, 256  # 4 MiB of float32 in 16 chunks
    x = jnp.ones((64, 64, features), jnp.float32)
    jax.block_until_ready(x)

    def live_bytes() -> int:
        return sum(a.nbytes for a in jax.live_arrays() if not a.is_deleted())

    before = live_bytes()
    peaks: list[int] = []

    def f(y: Any) -> Any:
        peaks.append(live_bytes() - before)
        return y * 2

    target.factory(f, 2, chunk_size=chunk)(x)
    bound = x.nbytes // 2 + 4 * chunk * features * 4  # outputs up to half the input, 4 chunks
    worst = max(peaks, default=0)
    at = peaks.index(worst) if peaks else 0
    # The outputs of the chunks before chunk k hold k chunks; subtract them.
    extra = worst - at * chunk * features * 4
    if len(peaks) >= rows // chunk and extra <= bound:
        return Outcome("pass")
    return Outcome(
        "fail",
        f"f was called {len(peaks)} times (want {rows // chunk}); {extra} bytes above the input and "
        f"the chunk outputs while f ran on chunk {at} (at most {bound})",
    )


def _guarded(check: Callable[[Target], Outcome]) -> Callable[[Target], Outcome]:
    def run(target: Target) -> Outcome:
        if target.module.__name__ == "batchapply_reference":
            return Outcome("na", "section 8 binds JAX implementations; the NumPy reference does not trace")
        try:
            import jax  # noqa: F401
        except ImportError:
            return Outcome("na", "jax is not installed")
        try:
            return check(target)
        except Exception as e:
            return Outcome("fail", f"raised {describe_error(e)}", {"got": describe_error(e)})

    return run


def transform_checks() -> Iterator[Check]:
    for name, clause, check in [
        ("jit", "BA-8.1", _jit),
        ("grad", "BA-8.2", _grad),
        ("vjp", "BA-8.2", _vjp),
        ("vmap", "BA-8.3", _vmap),
        ("scan", "BA-8.4", _scan),
        ("checkpoint", "BA-8.5", _checkpoint),
        ("export", "BA-8.6", _export),
        ("chunked", "BA-13.9", _chunked),
        ("chunks under a trace", "BA-13.4", _chunks_under_a_trace),
        ("counted chunks under a trace", "BA-14.9", _counted_chunks_under_a_trace),
        ("chunk refusals", "BA-13.10", _chunk_refusals),
        ("chunk memory", "BA-13.11", _chunk_memory),
    ]:
        yield Check(name=f"transform {name}", clauses=(clause,), run=_guarded(check), family="transforms")
