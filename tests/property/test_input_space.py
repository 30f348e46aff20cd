"""Differential over the input space users pass (issue 11): mixed NumPy / jax.Array leaves per call,
jax-only leaves, NumPy subclasses and non-numeric dtypes, every container kind, any keyword name,
with and without chunk_size (``batchapply_conformance.input_space``).

Every valid call returns, in both packages, the same structure and per leaf the same type, dtype,
shape, weak type, devices, mask and bytes; every forbidden one raises its SPEC row with the same
message in both (E28 too, since SPEC draft 3: BA-5.9, BA-10.7).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from typing import Any

import jax
import pytest
from comparisons import examples
from hypothesis import event, given, settings

import batchapply
import batchapply_reference
from batchapply_conformance import _differential
from batchapply_conformance._checks import Target
from batchapply_conformance._spec import error_table
from batchapply_conformance.input_space import (
    CLASSES,
    MULTI_DEVICE_CLASSES,
    WIDE_FUNCTIONS,
    WideCall,
    wide_calls,
)


def wide_examples() -> int:
    """At least 100 examples (the ci profile's half): enough to draw every class."""
    return max(100, examples(0.5))


def run(call: WideCall, lib: types.ModuleType) -> Any:
    apply = lib.BatchApply(WIDE_FUNCTIONS[call.function], call.num_dims, chunk_size=call.chunk_size)
    return apply(*call.args, **call.kwargs)


def raised(call: WideCall, lib: types.ModuleType) -> BaseException:
    with pytest.raises(Exception) as info:
        run(call, lib)
    return info.value


@pytest.mark.spec("BA-1.1", "BA-1.2", "BA-1.3", "BA-5.1", "BA-5.2", "BA-5.3", "BA-6.1", "BA-6.2", "BA-7.2")
@pytest.mark.spec("BA-10.1", "BA-13.4", "BA-13.8")
@settings(max_examples=wide_examples())
@given(call=wide_calls())
def test_wide_calls_agree_with_the_reference(call: WideCall) -> None:
    for name in sorted(call.classes):
        event(name)
    if call.error is not None:
        type_name, prefix = error_table()[call.error]
        libs = [batchapply, batchapply_reference]  # E28 binds both (BA-10.7)
        errors = [raised(call, lib) for lib in libs]
        for lib, error in zip(libs, errors, strict=True):
            assert type(error).__name__ == type_name, f"{lib.__name__}: {type(error).__name__}: {error}"
            assert str(error).startswith(prefix), f"{lib.__name__}: {error}"
            assert re.search(r"(args|kwargs)\[", str(error)), f"{lib.__name__} names no leaf: {error}"
        assert len({str(error) for error in errors}) == 1, [str(error) for error in errors]
        return
    # Through the conformance kit's own comparison (issue 22): what it finds here, the CLI finds.
    # (It returns [] where the reference raises: a valid call must not make the reference raise.)
    assert _differential.outcome(batchapply_reference.BatchApply, call)[0] == "ok"
    assert _differential.problems(BATCHAPPLY, call) == []


BATCHAPPLY = Target.load("batchapply:BatchApply")


@pytest.mark.spec("BA-4.2", "BA-4.3", "BA-4.4", "BA-5.1", "BA-5.6", "BA-6.1", "BA-7.2", "BA-7.4")
@pytest.mark.spec("BA-13.3", "BA-13.4", "BA-13.5", "BA-13.8", "BA-14.2", "BA-14.9")
@pytest.mark.parametrize("mode", sorted(_differential.CHECKS))
def test_the_kit_differential_checks_pass_on_batchapply(mode: str) -> None:
    """The CLI's differential checks themselves, each mode of ``input_space.kit_calls`` (num_dims 1
    to 4, chunk_size, row_order, in_axes/out_axes, a closure that changes), on batchapply."""
    # Half the examples the CLI's ci profile gives each mode (the CLI itself runs them all).
    check = _differential.differential_check(mode, examples(_differential.SHARE[mode] / 2), None)
    outcome = check(BATCHAPPLY)
    assert not isinstance(outcome, list) and outcome.status == "pass", outcome


def test_every_input_class_is_drawn() -> None:
    """The table of docs/testing.md: each class is drawn at least once in this many examples."""
    seen: set[str] = set()

    @settings(max_examples=wide_examples(), derandomize=True, database=None)
    @given(call=wide_calls())
    def draw(call: WideCall) -> None:
        seen.update(call.classes)

    draw()
    expected = set(CLASSES) - (MULTI_DEVICE_CLASSES if jax.device_count() < 2 else set())
    assert sorted(expected - seen) == []


@pytest.mark.spec("BA-5.3", "BA-5.6")
def test_wide_calls_on_two_devices() -> None:
    """The differential where JAX sees two devices, so that leaves committed to the second are
    drawn ("leaf: jax on another device"); jax reads XLA_FLAGS once, so in a child process."""
    if jax.device_count() > 1:
        pytest.skip("this process already sees several devices: the tests above draw them")
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        # The ci profile's examples at most: the classes above are already covered in this process.
        "BATCHAPPLY_HYPOTHESIS_PROFILE": os.environ.get("BATCHAPPLY_HYPOTHESIS_PROFILE", "ci"),
    }
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "agree"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert child.returncode == 0 and " passed" in child.stdout, child.stdout[-3000:] + child.stderr[-2000:]
