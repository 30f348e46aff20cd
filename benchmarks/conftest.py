"""Benchmark options. Not part of the test suite: run with `python -m pytest benchmarks`.

`--scale N` (or BATCHAPPLY_BENCH_SCALE=N) multiplies the batch sizes of the array
workloads by N, for an accelerator; leaf counts of the eager workloads stay as they are.
`--huge` (or BATCHAPPLY_BENCH_HUGE=1) adds 10,000 leaves to the first-call benchmarks (slow:
the floor's one program over every leaf takes a minute or more to compile on a CPU).
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--scale",
        type=int,
        default=int(os.environ.get("BATCHAPPLY_BENCH_SCALE", "1")),
        help="multiply the batch sizes by this factor (e.g. 16 on a GPU); env BATCHAPPLY_BENCH_SCALE",
    )
    parser.addoption(
        "--huge",
        action="store_true",
        help="first-call benchmarks at 10,000 leaves too (slow); env BATCHAPPLY_BENCH_HUGE=1",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--huge"):  # read by test_benchmarks.py when it is collected
        os.environ["BATCHAPPLY_BENCH_HUGE"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """BATCHAPPLY_BENCH_ORDER=reverse runs the benchmarks last to first: the gate alternates the
    order between runs, so that no implementation is always the one timed right after another."""
    if os.environ.get("BATCHAPPLY_BENCH_ORDER") == "reverse":
        items.reverse()


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> int:
    value = int(request.config.getoption("--scale"))
    if value < 1:
        raise pytest.UsageError("--scale must be >= 1")
    return value


def pytest_report_header(config: pytest.Config) -> str:
    import jax

    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    scale = config.getoption("--scale")
    return f"batchapply benchmarks: --scale {scale}, backend {jax.default_backend()} ({devices})"
