"""Zero overhead under jit, proven without timing (issue 6, SPEC BA-8.1).

For each workload, ``jax.jit(BatchApply(f))`` and the hand-written reshape around
the same ``f`` compile to the same optimized HLO, once names, ids and metadata
(source lines, op names) are normalized away. The jaxprs are equal too: under a
trace BatchApply records exactly the reshapes one would write by hand, and no
nested call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import pytest

from batchapply import BatchApply
from tests.workloads import attention, conv, mlp, rnn

KEY = jax.random.key(0)


def normal(i: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(jax.random.fold_in(KEY, i), shape)


def row_mixing_mean(x: jax.Array) -> jax.Array:
    """Mixes rows: every row sees the mean over the merged batch."""
    return x - x.mean(axis=0, keepdims=True)


# name -> (f, batched inputs [T, B, ...], unbatched inputs passed with in_axes=None)
WORKLOADS: dict[str, tuple[Callable[..., Any], list[jax.Array], list[jax.Array]]] = {
    "identity": (lambda x: x, [normal(1, (4, 8, 16))], []),
    "elementwise": (lambda x: jnp.sin(x) * 2.0 + 1.0, [normal(1, (4, 8, 16))], []),
    "mlp": (mlp, [normal(1, (4, 8, 16))], [normal(2, (16, 32)), normal(3, (32, 8))]),
    "conv_tbhwc": (conv, [normal(1, (3, 2, 8, 8, 4))], [normal(2, (3, 3, 4, 6))]),
    "attention": (attention, [normal(i, (3, 2, 5, 8)) for i in (1, 2, 3)], []),
    "scan_inside": (rnn, [normal(1, (3, 4, 6, 8))], [normal(2, (8, 8))]),
    "row_mixing_mean": (row_mixing_mean, [normal(1, (4, 8, 16))], []),
}


def by_hand(f: Callable[..., Any], n_batched: int) -> Callable[..., Any]:
    """The hand-written reshape around ``f``: merge [T, B] of the batched inputs, split the output."""

    def apply(*inputs: jax.Array) -> Any:
        t, b = inputs[0].shape[:2]
        merged = [x.reshape((t * b,) + x.shape[2:]) for x in inputs[:n_batched]]
        out = f(*merged, *inputs[n_batched:])
        return out.reshape((t, b) + out.shape[1:])

    return apply


def batch_applied(f: Callable[..., Any], n_batched: int, n_unbatched: int) -> Callable[..., Any]:
    return BatchApply(f, in_axes=(0,) * n_batched + (None,) * n_unbatched)


_METADATA = re.compile(r",? metadata=\{[^}]*\}")
_HEADER_PARAM = re.compile(r"[\w.\-]+: (?=[a-z]+\d*\[|\()")
_NAME = re.compile(r"%[\w.\-]+")


def normalized_hlo(text: str) -> str:
    """Optimized HLO text without module name, source-location tables, metadata, names and ids."""
    lines = []
    in_tables = False
    for line in text.splitlines():
        if line.startswith("HloModule "):
            line = re.sub(r"^HloModule [^,]+", "HloModule m", line)
        elif line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            in_tables = True
            continue
        elif in_tables and (line.startswith(("%", "ENTRY")) or not line.strip()):
            in_tables = not line.startswith(("%", "ENTRY"))
            if in_tables:
                continue
        elif in_tables:
            continue
        line = _METADATA.sub("", line)
        if line.startswith(("%", "ENTRY")):
            line = _HEADER_PARAM.sub("p: ", line)  # parameter names in computation headers
        lines.append(line)
    names: dict[str, str] = {}
    renamed = _NAME.sub(lambda m: names.setdefault(m[0], f"%n{len(names)}"), "\n".join(lines))
    return renamed.strip()


def compiled_hlo(fn: Callable[..., Any], inputs: list[jax.Array]) -> str:
    text = jax.jit(fn).lower(*inputs).compile().as_text()
    assert text is not None
    return normalized_hlo(text)


@pytest.mark.spec("BA-8.1")
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_optimized_hlo_equals_the_hand_written_reshape(name: str) -> None:
    f, batched, unbatched = WORKLOADS[name]
    inputs = batched + unbatched
    got = compiled_hlo(batch_applied(f, len(batched), len(unbatched)), inputs)
    want = compiled_hlo(by_hand(f, len(batched)), inputs)
    assert "ENTRY" in want and "%n0" in want  # the normalization kept the program
    assert got == want


@pytest.mark.spec("BA-8.1")
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_jaxpr_equals_the_hand_written_reshape(name: str) -> None:
    f, batched, unbatched = WORKLOADS[name]
    inputs = batched + unbatched
    got = jax.make_jaxpr(batch_applied(f, len(batched), len(unbatched)))(*inputs)
    want = jax.make_jaxpr(by_hand(f, len(batched)))(*inputs)
    assert str(got) == str(want)


@pytest.mark.spec("BA-8.2")
def test_gradient_hlo_equals_the_hand_written_reshape() -> None:
    f, batched, unbatched = WORKLOADS["mlp"]

    def loss(through: Callable[..., Any]) -> Callable[..., Any]:
        return lambda x, w1, w2: jnp.sum(through(x, w1, w2) ** 2)

    grad_args = (0, 1, 2)
    got = compiled_hlo(jax.grad(loss(batch_applied(f, 1, 2)), grad_args), batched + unbatched)
    want = compiled_hlo(jax.grad(loss(by_hand(f, 1)), grad_args), batched + unbatched)
    assert got == want


def test_normalization_keeps_real_differences() -> None:
    # Guards the normalizer: two different programs must not compare equal.
    x = [normal(1, (4, 8, 16))]
    assert compiled_hlo(by_hand(jnp.sin, 1), x) != compiled_hlo(by_hand(jnp.cos, 1), x)
