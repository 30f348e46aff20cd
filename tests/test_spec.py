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


@pytest.mark.spec("BA-10.1")
def test_spec_has_clauses_in_every_section() -> None:
    sections = {clause.split(".")[0] for clause in clauses()}
    assert sections == {f"BA-{i}" for i in (*range(1, 11), 12, 14)}  # section 11 has no clauses


def test_every_must_clause_is_cited_by_a_test() -> None:
    must = {cid for cid, text in clauses().items() if "**MUST" in text and "*withdrawn*" not in text}
    missing = sorted(must - cited(), key=lambda c: tuple(int(p) for p in c[3:].split(".")))
    assert not missing, f"MUST clauses with no @pytest.mark.spec test: {missing}"


def test_tests_cite_only_existing_clauses() -> None:
    unknown = sorted(cited() - set(clauses()))
    assert not unknown, f"tests cite clauses that SPEC.md does not define: {unknown}"
