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
    """Rewrite each link from a repository path to the site path of its target."""
    site_page = page.file.src_uri
    repo_page = next((repo for repo, site in SITE.items() if site == site_page), f"docs/{site_page}")
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
