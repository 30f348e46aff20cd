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


# ---- Structure of the error table and its cross-references (SPEC draft 3, audit findings C2, E2) ----

SPEC_TEXT = (ROOT / "SPEC.md").read_text()
ROW = re.compile(r"^\| (E\d+) \| (.*?) \| ", re.M)
ORDER_CLAUSES = ("BA-10.3", "BA-10.4", "BA-10.5", "BA-10.6", "BA-10.8")


def rows() -> dict[str, str]:
    """Error row ID -> its condition cell."""
    found: dict[str, str] = {row: condition for row, condition in ROW.findall(SPEC_TEXT)}
    return found


def withdrawn_rows() -> set[str]:
    return {row for row, condition in rows().items() if "*withdrawn*" in condition}


def live_rows() -> list[str]:
    """The rows that are not withdrawn, in number order."""
    live = set(rows()) - withdrawn_rows()
    return sorted(live, key=lambda row: int(row[1:]))


def mentions(text: str, row: str) -> bool:
    return re.search(rf"\b{row}\b", text) is not None


@pytest.mark.spec("BA-10.1")
@pytest.mark.parametrize("row", live_rows())
def test_every_error_row_names_a_clause_that_raises_it(row: str) -> None:
    """The row's condition cites a clause, and that clause's text names the row."""
    named = re.findall(r"BA-\d+\.\d+", rows()[row])
    assert named, f"{row} cites no clause"
    assert any(mentions(clauses().get(clause, ""), row) for clause in named), (
        f"{row} cites {named}, and none of them names {row}"
    )


@pytest.mark.spec("BA-10.3", "BA-10.4", "BA-10.5", "BA-10.6", "BA-10.8")
@pytest.mark.parametrize("row", live_rows())
def test_every_error_row_has_its_place_in_the_order(row: str) -> None:
    assert any(mentions(clauses()[clause], row) for clause in ORDER_CLAUSES), f"{row} is in no order clause"


def test_no_clause_cites_a_withdrawn_row() -> None:
    citing = sorted(
        (clause, row)
        for clause, text in clauses().items()
        if "*withdrawn*" not in text
        for row in withdrawn_rows()
        if mentions(text, row)
    )
    assert not citing, f"clauses that cite withdrawn rows: {citing}"


def test_every_cross_reference_exists() -> None:
    """Every BA-x.y and Enn anywhere in SPEC.md (changelog included) is a clause or a row."""
    refs = set(re.findall(r"\bBA-\d+\.\d+\b", SPEC_TEXT))
    assert not sorted(refs - set(clauses())), (
        f"references to clauses that do not exist: {sorted(refs - set(clauses()))}"
    )
    row_refs = set(re.findall(r"\bE\d+\b", SPEC_TEXT))
    assert not sorted(row_refs - set(rows())), (
        f"references to rows that do not exist: {sorted(row_refs - set(rows()))}"
    )


def test_every_section_reference_exists() -> None:
    """Every "section N" (and "sections N to M", "sections N and M") names a section of SPEC.md."""
    headings = {int(number) for number in re.findall(r"^## (\d+)\. ", SPEC_TEXT, re.M)}
    named = {
        int(number)
        for match in re.finditer(r"\b[Ss]ections? (\d+)(?: (?:to|and|or) (\d+))?", SPEC_TEXT)
        for number in match.groups()
        if number is not None
    }
    assert not sorted(named - headings), (
        f"references to sections that do not exist: {sorted(named - headings)}"
    )
