"""SPEC.md hygiene: clause IDs are unique, and every MUST clause is cited by a test."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLAUSE = re.compile(r"^- \*\*(BA-\d+\.\d+)\*\*(.*?)(?=^- \*\*BA-|^#|^\||\Z)", re.M | re.S)


def clauses() -> dict[str, str]:
    """Clause ID -> clause text, in SPEC order."""
    found: dict[str, str] = {}
    for match in CLAUSE.finditer((ROOT / "SPEC.md").read_text()):
        assert match[1] not in found, f"clause {match[1]} is defined twice in SPEC.md"
        found[match[1]] = match[2]
    return found


def cited() -> set[str]:
    """Every clause named in a ``pytest.mark.spec(...)`` call anywhere under tests/."""
    ids: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "spec"
            ):
                ids.update(
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                )
    return ids


# Sections that hold no clauses: "Implementation-defined" lists freedoms, not requirements.
CLAUSELESS_SECTIONS = {"Implementation-defined"}


@pytest.mark.spec("BA-10.1")
def test_spec_has_clauses_in_every_section() -> None:
    headings = re.findall(r"^## (\d+)\. (.+)$", (ROOT / "SPEC.md").read_text(), re.M)
    assert [int(number) for number, _ in headings][:11] == list(range(1, 12))
    expected = {f"BA-{number}" for number, title in headings if title not in CLAUSELESS_SECTIONS}
    sections = {clause.split(".")[0] for clause in clauses()}
    assert sections == expected


def test_every_must_clause_is_cited_by_a_test() -> None:
    must = {cid for cid, text in clauses().items() if "**MUST" in text and "*withdrawn*" not in text}
    missing = sorted(must - cited(), key=lambda c: tuple(int(p) for p in c[3:].split(".")))
    assert not missing, f"MUST clauses with no @pytest.mark.spec test: {missing}"


def test_tests_cite_only_existing_clauses() -> None:
    unknown = sorted(cited() - set(clauses()))
    assert not unknown, f"tests cite clauses that SPEC.md does not define: {unknown}"
