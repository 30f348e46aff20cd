"""Runs tests/sharding/ (SPEC section 14 on 8 simulated devices) in its own process.

jax reads XLA_FLAGS once, when it starts: this process already has one device, so the
multi-device checks run in a child Python with --xla_force_host_platform_device_count=8.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.spec("BA-14.5", "BA-14.6", "BA-14.7", "BA-14.8")
def test_sharded_inputs_on_eight_devices() -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sharding/check_sharding.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"tests/sharding failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-2000:]
