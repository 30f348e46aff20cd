"""What a project that depends on batchapply relies on: the version, the license and metadata in
the wheel, the extras, the README's install section, the changelog, the documentation site's pages.

The README's install commands themselves run in a fresh virtual environment in `.ci/install-check`
(part of `.ci/run`); the documentation site builds with warnings as errors there too.
"""

from __future__ import annotations

import email
import email.message
import pathlib
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest

import batchapply

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel of this checkout (pip builds it with hatchling, ~5 s)."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir", str(ROOT), "-w", out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("batchapply-*.whl")
    return zipfile.ZipFile(path)


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_version_is_the_metadata_version(wheel: zipfile.ZipFile) -> None:
    """One source: the metadata is built from ``batchapply.__version__``."""
    assert _metadata(wheel)["Version"] == batchapply.__version__
    assert "version" not in PYPROJECT["project"] and PYPROJECT["project"]["dynamic"] == ["version"]


def test_wheel_ships_the_license(wheel: zipfile.ZipFile) -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(name).decode() == license_text
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_metadata_has_classifiers_and_urls(wheel: zipfile.ZipFile) -> None:
    metadata = _metadata(wheel)
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert {"Source", "Documentation", "Changelog"} <= set(urls), urls


def test_test_extra_holds_only_what_the_tests_need() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    names = {extra: {re.split(r"[<>=\[]", req)[0] for req in reqs} for extra, reqs in extras.items()}
    tools = {"ruff", "mypy", "mkdocs", "mkdocstrings"}
    assert not names["test"] & tools, names["test"]
    assert tools <= names["dev"] and "batchapply[test]" in extras["dev"]


def test_version_agrees_with_the_changelog_and_the_spec() -> None:
    """0.2.0.dev0 is the unreleased 0.2.0 of CHANGELOG.md and of SPEC.md's Changelog."""
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(\.dev\d+)?", batchapply.__version__)
    assert match is not None, batchapply.__version__
    release, unreleased = match[1], match[2] is not None
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert headings[0] == "Unreleased", headings
    if unreleased:
        assert release in changelog.split("\n## [", 2)[1], "the Unreleased section names the next version"
        assert release not in headings
    else:
        assert headings[1] == release
    spec = (ROOT / "SPEC.md").read_text()
    status = re.search(r"^Status: [^(]*\(version (\d+\.\d+\.\d+)", spec, re.M)
    assert status is not None and status[1] == release, "SPEC.md's Status line names the version"
    spec_log = spec.split("\n## Changelog", 1)[1]
    spec_versions = set(re.findall(r"^- (\d+\.\d+\.\d+)", spec_log, re.M))
    for version in re.findall(r"^- (\d+\.\d+\.\d+) \(unreleased\)", spec_log, re.M):
        assert unreleased and version == release, f"SPEC.md: {version} unreleased; the package: {release}"
    assert spec_versions - {release} <= set(headings), "each released version in SPEC.md's Changelog"


def test_changelog_cites_existing_clauses() -> None:
    spec = (ROOT / "SPEC.md").read_text()
    clauses = set(re.findall(r"\*\*(BA-\d+\.\d+)\*\*", spec))
    rows = set(re.findall(r"^\| (E\d+) \|", spec, re.M))
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert set(re.findall(r"BA-\d+\.\d+", changelog)) <= clauses
    assert set(re.findall(r"\bE\d+\b", changelog)) <= rows


def test_readme_is_a_landing_page() -> None:
    assert len(README.splitlines()) <= 200
    blocks = re.findall(r"```bash\n(.+?)\n```", README, re.S)
    assert "batchapply-conformance" in blocks[0]  # the main command first, then the test command
    section = README.split("## Use it in your project", 1)[1].split("\n## ", 1)[0]
    installs = re.findall(r"^python -m pip install (.+)$", section, re.M)
    for extra in ("", "[flax]", "[conformance]"):
        assert f'"batchapply{extra} @ git+https://<repo-url>"' in installs, extra
        assert (f'".{extra}"' if extra else ".") in installs, extra
    assert README.index("## Use it in your project") < README.index("## Quick example")


def test_readme_links_exist() -> None:
    for target in re.findall(r"\]\(([^)#\s]+)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    assert isinstance(nav, list)
    return [page for item in nav for page in _nav_pages(item)]


def test_site_lists_every_page() -> None:
    """mkdocs.yml's nav holds every docs page (no orphans) and only pages that exist.

    ``mkdocs build --strict`` fails on both too; this says so without installing mkdocs.
    """
    yaml = pytest.importorskip("yaml")
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert len(nav) == len(set(nav)), nav
    docs = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert sorted(docs - set(nav)) == [], "docs pages missing from mkdocs.yml's nav"
    # Outside docs/, docs/_site.py adds README.md as index.md and the root pages by name.
    outside = set(nav) - docs
    assert outside == {"index.md", "SPEC.md", "CHANGELOG.md", "CONTRIBUTING.md", "BENCHMARKS.md"}, outside
    assert all((ROOT / page).is_file() for page in outside - {"index.md"})


def test_golden_drift_points_at_the_compatibility_policy() -> None:
    from tests.golden import regenerate

    page, anchor = regenerate.POLICY.split("#")
    text = (ROOT / page).read_text()
    assert f"## {anchor.replace('-', ' ').capitalize()}" in text
    assert "Golden cases" in text and "message prefix" in text


def test_golden_drift_message_names_the_policy(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case on disk that the reference no longer makes: --check fails and points at the policy."""
    import shutil

    from tests.golden import regenerate

    cases = tmp_path / "cases"
    shutil.copytree(regenerate.GOLDEN_DIR, cases)
    first = sorted(cases.glob("*.jsonl"))[0]
    line = first.read_text().splitlines()[0]
    stale = re.sub(r'^\{"name": "[^"]+"', '{"name": "stale-case"', line)
    assert stale != line
    first.write_text(first.read_text() + stale + "\n")
    monkeypatch.setattr(regenerate, "GOLDEN_DIR", cases)
    assert regenerate.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "1 removed: stale-case" in out and regenerate.POLICY in out, out


def test_site_build_fails_on_a_broken_link(tmp_path: pathlib.Path) -> None:
    """``mkdocs build --strict`` (in .ci/run) passes on the site and fails on a missing page or anchor."""
    pytest.importorskip("mkdocstrings")  # the dev extra
    import shutil

    pages = ("README.md", "SPEC.md", "CHANGELOG.md", "CONTRIBUTING.md", "BENCHMARKS.md")
    for name in ("mkdocs.yml", "LICENSE", *pages):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("docs", "benchmarks", "examples", "impl", "reference", "conformance"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))

    def build() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)

    done = build()
    assert done.returncode == 0, done.stderr
    with (tmp_path / "docs" / "compatibility.md").open("a") as page:
        page.write("\nSee [the guide](no-such-guide.md) and [BA-3.2](../SPEC.md#no-such-section).\n")
    done = build()
    assert done.returncode != 0
    assert "'no-such-guide.md'" in done.stderr and "'#no-such-section'" in done.stderr, done.stderr
