"""The number of devices is a dimension of the suite (issue 24): selected modules again, on eight.

Every other test runs in this process, which sees one CPU device. JAX reads ``XLA_FLAGS`` once,
at import, so the modules below run again in a child ``python -m pytest`` with
``--xla_force_host_platform_device_count=8`` and the ``devices`` hypothesis profile (20
derandomized examples per property, scaled per test as in every profile; ``thorough`` is passed
through). They are the ones whose code paths depend on the device count:

- ``tests/property/test_contexts.py``: the differential over every entry point (``BatchApply``
  under jit, grad and vmap; the linen and nnx wrappers; Haiku's ``init`` and ``apply``) and the
  shard-major order inside ``shard_map`` and on Explicit axes, which need several devices.
  With several devices ``batchapply`` keeps each chunk's outputs on their devices
  (``_one_placement``): under a trace that check met tracers and crashed (repros 1 and 2).
- ``tests/property/test_chunking_laws.py``: eager chunks of ``jax.Array`` inputs take one path
  on a single CPU device (views of host memory) and another when the arrays are committed
  among several devices.
- ``tests/property/test_row_order_laws.py`` and ``test_transform_invariance.py``: the row-order
  laws and jit, grad and outer vmap of the merge and split, whose placement and shard-count
  decisions read the device count (a tracer's counts, BA-14.4).
- ``tests/test_flax_linen.py -k chunk``, ``tests/test_flax_nnx.py -k chunk`` and
  ``tests/test_haiku_cases.py``: the wrappers' and Haiku's chunked calls run the same
  placement checks inside ``nn.scan``, ``nnx.scan`` and ``haiku.scan``. The wrappers' other
  tests (variable trees, rng paths, setup and compact placement) do not depend on the device
  count and run once, here.

Not rerun: the NumPy-only agreement, error parity and golden corpus (no device is involved);
``tests/sharding`` (already on eight devices, ``tests/test_sharding.py``); and
``tests/property/test_input_space.py``, which reruns its differential on two devices itself.
Measured (2-core machine, shared): about two minutes, see docs/testing.md.
"""

from __future__ import annotations

import os
import sys

import jax
import pytest

from tests import background

DEVICES = 8
MODULES = [
    "tests/property/test_contexts.py",
    "tests/property/test_chunking_laws.py",
    "tests/property/test_row_order_laws.py",
    "tests/property/test_transform_invariance.py",
    "tests/test_haiku_cases.py",
    "tests/test_flax_linen.py",
    "tests/test_flax_nnx.py",
]
# Of the wrappers' modules, their chunked calls only (see above).
SELECTION = "not test_flax or chunk"


def _child() -> background.Job:
    """The selected modules in a child that sees eight devices (run beside the tests: tests/background.py)."""
    profile = os.environ.get("BATCHAPPLY_HYPOTHESIS_PROFILE")
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES}",
        "JAX_PLATFORMS": "cpu",
        "BATCHAPPLY_HYPOTHESIS_PROFILE": "thorough" if profile == "thorough" else "devices",
    }
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *MODULES, "-k", SELECTION]
    return background.register("eight devices", ("tests/test_eight_devices.py",), argv, env)


if jax.device_count() < DEVICES:
    _child()


@pytest.mark.spec("BA-13.9", "BA-14.4", "BA-14.8", "BA-12.12")
def test_selected_modules_on_eight_devices() -> None:
    if jax.device_count() >= DEVICES:
        pytest.skip("this process already sees eight devices: the selected modules run here")
    child = background.result("eight devices")
    assert child.returncode == 0 and " passed" in child.stdout, child.stdout[-4000:] + child.stderr[-2000:]
