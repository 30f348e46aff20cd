"""MkDocs hook: the site is the repository's own Markdown, each file kept in one place.

README.md is the home page; SPEC.md, CHANGELOG.md and the other root pages, and
every file outside docs/ that a page links to (benchmark notes, examples), join
the site without a copy in the repository. Links are written as repository
paths (they work when reading the files on a forge), and this hook rewrites each
to the site path of its target. A link to a file that does not exist is left as
it is, so that mkdocs reports it and ``mkdocs build --strict`` fails.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]

# Repository path -> site path of the pages outside docs/ in the navigation.
PAGES = {
    "README.md": "index.md",
    "SPEC.md": "SPEC.md",
    "CHANGELOG.md": "CHANGELOG.md",
    "CONTRIBUTING.md": "CONTRIBUTING.md",
    "BENCHMARKS.md": "BENCHMARKS.md",
}
LINK = re.compile(r"(\]\()([^()\s#]+)(#[^()\s]*)?(\))")
SITE: dict[str, str] = {}  # repository path -> site path of every file outside docs/ in the site


def _targets(repo_page: str, markdown: str) -> list[tuple[re.Match[str], str]]:
    """Each relative link of a page, with the repository path it points to."""
    found = []
    for match in LINK.finditer(markdown):
        target = match.group(2)
        if "://" not in target and not target.startswith(("/", "mailto:")):
            found.append((match, posixpath.normpath(posixpath.join(posixpath.dirname(repo_page), target))))
    return found


def on_files(files: Files, config: Any) -> Files:
    """Add the root pages, and every existing file outside docs/ that a page links to."""
    SITE.clear()
    SITE.update(PAGES)
    pages = [(f"docs/{file.src_uri}", ROOT / "docs" / file.src_uri) for file in files.documentation_pages()]
    pages += [(repo, ROOT / repo) for repo in PAGES]
    while pages:
        repo_page, path = pages.pop()
        for _, repo_target in _targets(repo_page, path.read_text(encoding="utf-8")):
            target = ROOT / repo_target
            if repo_target.startswith(("docs/", "../")) or repo_target in SITE or not target.is_file():
                continue  # in docs/ already, outside the repository, or missing: mkdocs checks those
            SITE[repo_target] = repo_target
            if target.suffix == ".md":
                pages.append((repo_target, target))
    for repo_path, site_path in SITE.items():
        inclusion = InclusionLevel.UNDEFINED if repo_path in PAGES else InclusionLevel.NOT_IN_NAV
        files.append(
            File.generated(config, site_path, abs_src_path=str(ROOT / repo_path), inclusion=inclusion)
        )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Link each bare clause ID to its SPEC section, and rewrite each link from a repository path
    to the site path of its target."""
    site_page = page.file.src_uri
    repo_page = next((repo for repo, site in SITE.items() if site == site_page), f"docs/{site_page}")
    if repo_page != "SPEC.md":  # where the clauses are defined
        spec = posixpath.relpath("SPEC.md", posixpath.dirname(repo_page) or ".")
        markdown = link_page_clauses(markdown, _sections(), spec)
    pieces, end = [], 0
    for match, repo_target in _targets(repo_page, markdown):
        site_target = (
            repo_target.removeprefix("docs/") if repo_target.startswith("docs/") else SITE.get(repo_target)
        )
        if site_target is None:
            continue  # not part of the site: mkdocs reports the link
        relative = posixpath.relpath(site_target, posixpath.dirname(site_page) or ".")
        pieces += [markdown[end : match.start(2)], relative]
        end = match.end(2)
    return "".join(pieces) + markdown[end:]


# The API reference (mkdocstrings, through griffe): a griffe extension, loaded from this file by
# mkdocs.yml's `extensions: [docs/_site.py:ApiPages]`.
try:
    import griffe
except ImportError:  # mkdocstrings is not installed: only the hook functions above are used
    griffe = None  # type: ignore[assignment]

DOCTEST = re.compile(r"^>>> |^>>>$")
FENCE = "```"


def fence_doctests(docstring: str) -> str:
    r"""Wrap each unindented ``>>>`` example of a docstring in a ```` ```pycon ```` fence.

    Markdown reads a bare ``>>>`` line as three nested block quotes; fenced, the
    example renders as highlighted code. A doctest example runs from its first
    ``>>>`` line to the next blank line, as ``doctest`` reads it. Examples indented
    under a section (``Examples:``) are left to griffe, which renders those itself.

    >>> fence_doctests("Text.\n\n" + ">" * 3 + " 1 + 1\n2\n\nMore.").splitlines()
    ['Text.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'More.']
    """
    out: list[str] = []
    in_example = in_fence = False
    for line in docstring.splitlines():
        if line.startswith(FENCE) and not in_example:
            in_fence = not in_fence
        elif not in_fence and not in_example and DOCTEST.match(line):
            out.append(FENCE + "pycon")
            in_example = True
        elif in_example and not line.strip():
            out.append(FENCE)
            in_example = False
        out.append(line)
    if in_example:
        out.append(FENCE)
    return "\n".join(out)


CLAUSE = re.compile(r"\b(?:SPEC )?(?:(BA-(\d+)(?:\.\d+)?)|[Ss]ection (\d+))\b")


def _sections() -> dict[str, str]:
    """SPEC.md's section number -> the anchor of its heading (``"3"`` -> ``"3-leading-shape"``)."""
    headings = re.findall(r"^## (\d+)\. (.+)$", (ROOT / "SPEC.md").read_text(), re.M)
    return {number: _slug(f"{number}. {title}") for number, title in headings}


def _slug(heading: str) -> str:
    """The anchor of a heading, as Markdown's ``toc`` extension makes it (``"3. Leading shape"``
    -> ``"3-leading-shape"``)."""
    words = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", words)


def link_clauses(docstring: str, sections: dict[str, str]) -> str:
    """Each SPEC reference in a docstring's prose (``BA-3.2``, ``SPEC section 13``) as a link.

    The link goes to the clause's section of SPEC.md (a path relative to docs/api/, where the
    API pages are); code (```` ``...`` ````, fenced blocks) is left as it is.

    >>> print(link_clauses("Merged (SPEC BA-5.1); ``BA-3.2`` stays.", {"5": "5-merge"}))
    Merged ([SPEC BA-5.1](../SPEC.md#5-merge)); ``BA-3.2`` stays.
    """

    def link(match: re.Match[str]) -> str:
        number = match[2] or match[3]
        return f"[{match[0]}](../SPEC.md#{sections[number]})" if number in sections else match[0]

    out, in_fence = [], False
    for line in docstring.splitlines():
        if line.lstrip().startswith(FENCE):
            in_fence = not in_fence
        if not in_fence:
            pieces = line.split("`")  # even pieces are prose, odd ones inside backticks
            line = "`".join(CLAUSE.sub(link, p) if i % 2 == 0 else p for i, p in enumerate(pieces))
        out.append(line)
    return "\n".join(out)


PAGE_CLAUSE = re.compile(r"(?<![\w\[#-])BA-(\d+)(?:\.\d+)?(?![\w.-]*\])(?![\w-])")
LINK_OR_CODE = re.compile(r"(`+)[^`]*?\1|\[[^\]]*\]\([^)]*\)|<[^>]*>")


def link_page_clauses(markdown: str, sections: dict[str, str], spec: str) -> str:
    """Each bare clause ID in a page's prose (``BA-3.2``) as a link to its SPEC section.

    ``spec`` is SPEC.md's path from the page. Left as they are: IDs that are a link's text
    already, IDs in code (inline or fenced), in HTML (comments included) and in headings.

    >>> print(link_page_clauses("BA-3.2 and [BA-5.1](x) in `BA-7.1`", {"3": "3-s", "5": "5-m"}, "../SPEC.md"))
    [BA-3.2](../SPEC.md#3-s) and [BA-5.1](x) in `BA-7.1`
    """

    def link(match: re.Match[str]) -> str:
        number = match[1]
        return f"[{match[0]}]({spec}#{sections[number]})" if number in sections else match[0]

    out, fence, comment = [], "", False
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if fence:
            fence = "" if stripped.startswith(fence) else fence
        elif stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif comment or stripped.startswith("<!--"):
            comment = "-->" not in line
        elif not stripped.startswith("#"):
            pieces, end = [], 0
            for match in LINK_OR_CODE.finditer(line):  # prose between links, code and HTML
                pieces += [PAGE_CLAUSE.sub(link, line[end : match.start()]), match[0]]
                end = match.end()
            line = "".join(pieces) + PAGE_CLAUSE.sub(link, line[end:])
        out.append(line)
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


if griffe is not None:

    class ApiPages(griffe.Extension):
        """Docstring examples as code, SPEC references as links, and a signature for the linen
        Modules (flax dataclasses)."""

        def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
            objects: list[griffe.Object] = [pkg]
            sections = _sections()
            while objects:
                obj = objects.pop()
                if obj.docstring is not None:
                    obj.docstring.value = link_clauses(fence_doctests(obj.docstring.value), sections)
                objects += [member for member in obj.members.values() if isinstance(member, griffe.Object)]

        def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
            """A ``flax.linen.Module`` subclass is a dataclass: its fields are ``__init__``'s parameters."""
            bases = {getattr(base, "canonical_path", str(base)) for base in cls.bases}
            if "flax.linen.Module" not in bases or "__init__" in cls.members:
                return
            parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
            for member in cls.members.values():
                if not isinstance(member, griffe.Attribute) or member.annotation is None:
                    continue
                kind, default = griffe.ParameterKind.positional_or_keyword, member.value
                value = member.value
                if isinstance(value, griffe.ExprCall) and value.canonical_path == "dataclasses.field":
                    arguments = {
                        arg.name: arg.value for arg in value.arguments if isinstance(arg, griffe.ExprKeyword)
                    }
                    default = arguments.get("default")
                    if str(arguments.get("kw_only")) == "True":
                        kind = griffe.ParameterKind.keyword_only
                parameters.append(
                    griffe.Parameter(member.name, annotation=member.annotation, kind=kind, default=default)
                )
            # flax adds `parent` and `name` to every Module's __init__; a user passes `name` at most.
            keyword = griffe.ParameterKind.keyword_only
            parameters.append(griffe.Parameter("name", annotation="str | None", kind=keyword, default="None"))
            init = griffe.Function(
                "__init__", parent=cls, parameters=griffe.Parameters(*parameters), returns="None"
            )
            cls.set_member("__init__", init)
