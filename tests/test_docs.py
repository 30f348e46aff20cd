"""Docstring examples and every page of the documentation site (README, root pages, docs/) run as doctests."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil

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
