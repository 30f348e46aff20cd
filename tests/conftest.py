"""Shared fixtures: the two packages under test, and hypothesis profiles."""

from __future__ import annotations

import os
import types
from collections.abc import Iterator

import hypothesis
import pytest

import batchapply
import batchapply_reference
from batchapply import _exec_fused

LIBS = [batchapply, batchapply_reference]

# Profiles are chosen by BATCHAPPLY_HYPOTHESIS_PROFILE; under CI=true the default is
# our own "ci" profile (registered under that name on purpose, so that hypothesis's
# built-in "ci" profile is not the one that runs).
hypothesis.settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis.settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    print_blob=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
# The ci profile without shrinking: the same examples, so the same verdict, minus the minimal
# failing example (tests/property/revert_fixes.py runs it once per reverted fix).
hypothesis.settings.register_profile(
    "ci-noshrink",
    hypothesis.settings.get_profile("ci"),
    phases=[
        hypothesis.Phase.explicit,
        hypothesis.Phase.reuse,
        hypothesis.Phase.generate,
        hypothesis.Phase.target,
    ],
)
# dev-sized and deterministic, without shrinking: tests/property/test_mutations.py only needs
# to see a mutant fail, not a minimal example of it.
hypothesis.settings.register_profile(
    "mutation",
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
# The rerun on eight CPU devices (tests/test_eight_devices.py): deterministic, and small, since
# the same properties already ran their full count on one device in the parent process.
hypothesis.settings.register_profile(
    "devices",
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.register_profile(
    "thorough",
    max_examples=10_000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
_default_profile = "ci" if os.environ.get("CI") else "dev"
hypothesis.settings.load_profile(os.environ.get("BATCHAPPLY_HYPOTHESIS_PROFILE", _default_profile))


@pytest.fixture(params=LIBS, ids=lambda lib: lib.__name__)
def lib(request: pytest.FixtureRequest) -> types.ModuleType:
    """Each test that takes ``lib`` runs once per package: same names, same SPEC."""
    module: types.ModuleType = request.param
    return module


@pytest.fixture(autouse=True)
def _background_compiles_done() -> Iterator[None]:
    """After each test, the compiles it handed to batchapply's background thread are done, so
    that none runs into the next test (which may count compiles or patch jax; issue 26)."""
    yield
    _exec_fused.wait()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the long child processes of the selected tests now, beside this one (tests/background.py)."""
    from tests import background

    background.start_for(item.nodeid for item in session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests import background

    background.stop_all()
