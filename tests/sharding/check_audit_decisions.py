"""SPEC draft 3 decisions that need several devices, in both packages (4 simulated CPU devices).

Not collected by the plain test run (the name does not match test_*.py): jax must see
several devices, which needs XLA_FLAGS before jax is imported.
tests/test_audit_decisions.py runs it:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 \
        python -m pytest tests/sharding/check_audit_decisions.py
"""

from __future__ import annotations

import re
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import batchapply
import batchapply_reference

LIBS = [batchapply, batchapply_reference]


@pytest.fixture(params=LIBS, ids=lambda lib: lib.__name__)
def lib(request: pytest.FixtureRequest) -> types.ModuleType:
    module: types.ModuleType = request.param
    return module


def auto_mesh() -> Any:
    return jax.make_mesh((2,), ("b",), devices=jax.devices()[:2], axis_types=(AxisType.Auto,))


@pytest.mark.spec("BA-14.11", "BA-10.7")
def test_c_order_chunks_of_a_concrete_sharded_batch_raise_e25_in_both(lib: types.ModuleType) -> None:
    """C3: the reference returned a C-order chunked result where batchapply raised E25."""
    x = jax.device_put(jnp.arange(8.0).reshape(2, 4, 1), NamedSharding(auto_mesh(), P(None, "b")))
    with pytest.raises(
        ValueError, match=re.escape("BatchApply: chunk_size on a sharded batch needs row_order: args[0]")
    ):
        lib.BatchApply(lambda y: y, chunk_size=2)(x)


@pytest.mark.spec("BA-14.11")
def test_c_order_with_every_row_in_one_chunk_does_not_raise_e25(lib: types.ModuleType) -> None:
    x = jax.device_put(jnp.arange(8.0).reshape(2, 4, 1), NamedSharding(auto_mesh(), P(None, "b")))
    out = lib.BatchApply(lambda y: y * 2, chunk_size=8)(x)
    np.testing.assert_array_equal(np.asarray(out), np.arange(8.0).reshape(2, 4, 1) * 2)


@pytest.mark.spec("BA-14.12")
def test_a_zero_size_sharded_leading_dim_has_count_1(lib: types.ModuleType) -> None:
    """A7: 0 // 0. Count 1, so chunk_size=3 is no E24, and the empty batch comes back."""
    xz = jax.device_put(jnp.zeros((2, 0, 1)), NamedSharding(auto_mesh(), P(None, "b")))
    out = lib.BatchApply(lambda y: y, row_order="shard_major", chunk_size=3)(xz)
    assert out.shape == (2, 0, 1)


@pytest.mark.spec("BA-13.7", "BA-10.6")
def test_chunk_outputs_committed_to_other_devices_raise_e17(lib: types.ModuleType) -> None:
    """G4: jax's 'incompatible devices' (naming a private function) escaped from both."""
    devices = jax.devices()
    calls = [0]

    def f(y: jax.Array) -> jax.Array:
        calls[0] += 1
        return jax.device_put(y, devices[calls[0]])  # chunk k on device k + 1

    x = jnp.arange(4.0).reshape(2, 2, 1)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "BatchApply: chunk outputs disagree: chunk 1 (rows 1 to 1) returned output on devices [2]"
        ),
    ):
        lib.BatchApply(f, chunk_size=1)(x)
    assert calls[0] == 2  # E17 right after chunk 1, before chunk 2 (BA-10.6)


@pytest.mark.spec("BA-13.7")
def test_chunk_outputs_on_one_committed_device_are_joined(lib: types.ModuleType) -> None:
    device = jax.devices()[3]
    x = jnp.arange(4.0).reshape(2, 2, 1)
    out = lib.BatchApply(lambda y: jax.device_put(y, device), chunk_size=1)(x)
    assert out.devices() == {device}
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))


@pytest.mark.spec("BA-5.6")
def test_committed_input_keeps_its_device_uncommitted_follows_the_default(lib: types.ModuleType) -> None:
    """A6: an uncommitted array follows JAX's placement; a committed one stays."""
    devices = jax.devices()
    committed = jax.device_put(jnp.arange(6.0).reshape(2, 3, 1), devices[1])
    uncommitted = jnp.arange(6.0).reshape(2, 3, 1)
    with jax.default_device(devices[3]):
        assert lib.BatchApply(lambda y: y)(committed).devices() == {devices[1]}
        assert lib.BatchApply(lambda y: y)(uncommitted).devices() == {devices[3]}


@pytest.mark.spec("BA-14.8", "BA-14.4")
@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("batchapply:BatchApply", "pass"),
        ("batchapply_reference:BatchApply", "pass"),
        ("tests.audit_fault_targets:e22_under_any_trace", "fail"),
    ],
)
def test_the_kit_checks_shard_major_in_a_partly_manual_shard_map(name: str, verdict: str) -> None:
    """C4: the kit's check passes both packages and fails the E22-under-any-trace fault."""
    from batchapply_conformance._audit_checks import audit_checks
    from batchapply_conformance._checks import Outcome, Target

    (check,) = [c for c in audit_checks() if c.name == "audit shard_major in a partly manual shard_map"]
    outcome = check.run(Target.load(name))
    assert isinstance(outcome, Outcome) and outcome.status == verdict, outcome
