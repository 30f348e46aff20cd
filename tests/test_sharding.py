"""Runs tests/sharding/ (SPEC section 14 on 8 simulated devices) in its own process.

jax reads XLA_FLAGS once, when it starts: this process already has one device, so the
multi-device checks run in a child Python with --xla_force_host_platform_device_count=8.
"""

from __future__ import annotations

import os

import pytest

from tests.sharding.common import run_processes


@pytest.mark.spec("BA-14.5", "BA-14.6", "BA-14.7", "BA-14.8")
def test_sharded_inputs_on_eight_devices() -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    [(_, stdout, _)] = run_processes(
        [["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sharding/check_sharding.py"]],
        env,
        timeout=300,
        what="tests/sharding/check_sharding.py",
    )
    assert " passed" in stdout and " failed" not in stdout, stdout[-2000:]
