"""Docstring examples and every page of the documentation site (README, root pages, docs/) run as doctests."""

from __future__ import annotations

import doctest
import importlib
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import batchapply
import batchapply_conformance
import batchapply_reference

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Every page of the documentation site (mkdocs.yml): the root pages and docs/, API pages included.
ROOT_PAGES = ["README.md", "SPEC.md", "CHANGELOG.md", "CONTRIBUTING.md", "BENCHMARKS.md"]
PAGES = [*(ROOT / page for page in ROOT_PAGES), *sorted((ROOT / "docs").rglob("*.md"))]
MODULES = sorted(
    info.name
    for package in (batchapply, batchapply_reference, batchapply_conformance)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if not info.name.endswith(".__main__")  # importing it runs the CLI
) + ["batchapply", "batchapply_reference", "batchapply_conformance"]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_doctests(page: pathlib.Path) -> None:
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_readme_has_examples() -> None:
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, "README.md has no >>> examples"


# Python blocks without >>> prompts are not doctests: each must run somewhere else, named here.
SCRIPTS = {
    "docs/devices.md": "check_sharding.py (8 devices), and test_devices_page_examples_run_as_pasted below",
    "docs/migrating.md": "test_migrating_page_haiku_model below (dm-haiku: the test extra)",
    "docs/conformance.md": "test_conformance_page_pytest_example below",
}


def _scripts(page: pathlib.Path) -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    return [block for block in blocks if ">>>" not in block]


def test_every_python_block_runs() -> None:
    for page in PAGES:
        name = page.relative_to(ROOT).as_posix()
        if _scripts(page):
            assert name in SCRIPTS, f"{name} has a ```python block without >>>: make it a doctest"
    assert all(_scripts(ROOT / name) for name in SCRIPTS), "SCRIPTS names a page without such a block"


def test_conformance_page_pytest_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's pytest example: a conftest.py giving 8 devices, then the test module, run as pasted."""
    conftest, block = _scripts(ROOT / "docs/conformance.md")
    environ: dict[str, str] = {}
    monkeypatch.setattr(os, "environ", environ)
    exec(compile(conftest, "docs/conformance.md", "exec"), {})
    assert environ == {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    monkeypatch.undo()
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/conformance.md", "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    (mark,) = tests[0].pytestmark  # type: ignore[attr-defined]
    assert mark.name == "parametrize" and mark.args[0] == "clause_check" and len(mark.args[1]) > 50


def test_migrating_page_haiku_model() -> None:
    """The Haiku original that the page ports to linen and nnx (dm-haiku is in the test extra)."""
    pytest.importorskip("haiku")
    (block,) = _scripts(ROOT / "docs/migrating.md")
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/migrating.md", "exec"), namespace)
    assert float(namespace["loss"]) < 1.0  # type: ignore[arg-type]


def _devices_blocks(fence: str) -> list[str]:
    page = (ROOT / "docs/devices.md").read_text()
    return re.findall(rf"^```{fence}\n(.*?)^```", page, re.S | re.M)


@pytest.mark.parametrize("k", range(len(_devices_blocks("python"))))
def test_devices_page_examples_run_as_pasted(k: int) -> None:
    """Each multi-device example of docs/devices.md, alone in a fresh Python on this one CPU.

    tests/sharding/check_sharding.py runs them all in a process that already has 8 devices;
    here the example's own first line must set the device count (issue 27).
    """
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    block = _devices_blocks("python")[k]
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_devices_page_multihost_sketch_runs() -> None:
    """The page's multi-host script, as two CPU processes of 4 devices on this machine, as the
    page says: gloo collectives added after ``import jax``, the coordinator on localhost."""
    if sys.platform == "win32":
        pytest.skip("jax.distributed CPU collectives (gloo) need Linux or macOS")
    from tests.sharding.common import run_processes
    from tests.test_multihost import free_port

    (script,) = _devices_blocks("py")
    gloo = 'import jax; jax.config.update("jax_cpu_collectives_implementation", "gloo")\n'
    script = script.replace("import sys\n", "import sys\n" + gloo, 1)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    port = str(free_port())
    results = run_processes(
        [["-c", script, f"localhost:{port}", str(k)] for k in range(2)],
        env,
        timeout=240,
        what="docs/devices.md's multi-host script",
    )
    assert [rc for rc, _, _ in results] == [0, 0], results  # every name defined, every step ran
