"""SPEC section 14 across processes: 2 processes x 4 CPU devices, as on two hosts.

JAX's multi-controller model (one process per host, global arrays no process can address
whole) on one machine: jax.distributed with the coordinator on localhost and gloo collectives
between the processes. tests/sharding/multihost_worker.py holds the checks; this test starts
the processes, waits for them (with a timeout), and shows every process's output when one fails.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile

import pytest

from tests.sharding.common import run_processes

PROCESSES = 2
SKIP = 77  # multihost_worker.SKIP: the platform cannot run multi-process CPU jax


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.skipif(
    sys.platform == "win32", reason="jax.distributed CPU collectives (gloo) need Linux or macOS"
)
@pytest.mark.spec("BA-14.2", "BA-14.5", "BA-14.6", "BA-14.7", "BA-14.9", "BA-14.10", "BA-14.11")
def test_two_processes_of_four_devices() -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    for attempt in range(2):  # the free port may be taken before the coordinator binds it: once more
        try:
            port = str(free_port())
        except OSError as e:  # a sandbox without a loopback interface: no coordinator can listen
            pytest.skip(f"cannot listen on localhost for the jax.distributed coordinator: {e}")
        with tempfile.TemporaryDirectory() as dump:
            try:
                results = run_processes(
                    [
                        ["-m", "tests.sharding.multihost_worker", str(k), str(PROCESSES), port, dump]
                        for k in range(PROCESSES)
                    ],
                    env,
                    timeout=240,
                    what="the multi-process checks (tests/sharding/multihost_worker.py)",
                    ok=(0, SKIP),
                )
            except AssertionError as e:
                if attempt == 0 and "already in use" in str(e).lower():
                    continue
                raise
        break
    if all(rc == SKIP for rc, _, _ in results):
        pytest.skip(results[0][1].strip())
    assert all(rc == 0 for rc, _, _ in results), results
    passed = [  # the names of the checks that passed, without their times
        [line.rsplit(" (", 1)[0] for line in stdout.splitlines() if line.startswith("ok ")]
        for _, stdout, _ in results
    ]
    assert all(ran == passed[0] for ran in passed) and passed[0], results
    assert all("all passed" in stdout for _, stdout, _ in results), results
