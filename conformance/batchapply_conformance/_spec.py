"""The clauses of SPEC.md, read from the copy that ships with the package (or the checkout's)."""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import pathlib
import re

_CLAUSE = re.compile(r"^- \*\*(BA-\d+\.\d+)\*\*(.*?)(?=^- \*\*BA-|^#|^\||\Z)", re.M | re.S)


@dataclasses.dataclass(frozen=True)
class Clause:
    """One SPEC clause: its ID, whether it has a MUST, whether it is withdrawn, and its text."""

    id: str
    must: bool
    withdrawn: bool
    text: str
    title: str = ""


def spec_text() -> str:
    """SPEC.md: the wheel's copy (``batchapply_conformance/SPEC.md``), else the checkout's."""
    shipped = importlib.resources.files("batchapply_conformance").joinpath("SPEC.md")
    if shipped.is_file():
        return shipped.read_text()
    return (pathlib.Path(__file__).resolve().parents[2] / "SPEC.md").read_text()


@functools.cache
def clauses() -> tuple[Clause, ...]:
    """Every clause in SPEC order.

    >>> next(c for c in clauses() if c.id == "BA-3.2").must
    True
    """
    text = spec_text()
    sections = [(m.start(), m[1]) for m in _SECTION.finditer(text)]
    found = []
    for match in _CLAUSE.finditer(text):
        section = next((name for start, name in reversed(sections) if start < match.start()), "")
        section = re.sub(r"\s*\(`\w+` only\)$", "", section)
        body = " ".join(match[2].split())
        found.append(
            Clause(
                id=match[1],
                must="**MUST" in match[2],
                withdrawn="*withdrawn*" in match[2],
                text=body,
                title=_title(body, section),
            )
        )
    return tuple(found)


_SECTION = re.compile(r"^## \d+\. (.+)$", re.M)
_ITALIC = re.compile(r"^(?:\([^)]*\) )?\*([^*]+?)\.?\*")


def _title(body: str, section: str) -> str:
    """The clause's italic title, else its section and the start of its first sentence.

    >>> _title("*Array leaf.* An object is ...", "Terms")
    'Array leaf'
    >>> _title("`f` **MUST** be callable; otherwise the constructor raises `TypeError`.", "Construction")
    'Construction: `f` MUST be callable'
    """
    italic = _ITALIC.match(body)
    if italic:
        return italic[1]
    plain = body.replace("**", "")
    sentence = re.split(r"[.;:](?:\s|$)", plain, maxsplit=1)[0]
    words = sentence.split()
    short = " ".join(words[:8]) + (" ..." if len(words) > 8 else "")
    return f"{section}: {short}" if section else short


def clause_key(clause_id: str) -> tuple[int, ...]:
    """Sort key: BA-2.10 after BA-2.9."""
    return tuple(int(part) for part in clause_id[3:].split("."))


_ERROR_ROW = re.compile(r"^\| (E\d+) \| .* \| `(\w+)` \| (`+)(.+?)\3 \|$")


@functools.cache
def error_table() -> dict[str, tuple[str, str]]:
    """The SPEC error table: row ID -> (exception type name, message prefix).

    >>> error_table()["E9"]
    ('ValueError', 'BatchApply: inputs disagree on their leading shape')
    """
    rows = {}
    for line in spec_text().splitlines():
        match = _ERROR_ROW.match(line)
        if match:
            rows[match[1]] = (match[2], match[4].strip())
    return rows
