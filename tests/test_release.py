"""What a project that depends on batchapply relies on: the version, the license and metadata in
the wheel, the extras, the README's install section, the changelog, the documentation site's pages.

The README's install commands themselves run in a fresh virtual environment in `.ci/install-check`
(part of `.ci/run`); the documentation site builds with warnings as errors there too.
"""

from __future__ import annotations

import email
import email.message
import html.parser
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
    # No Project-URL until the repository has a public address; then real ones, no placeholders.
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    for label, url in urls.items():
        assert re.fullmatch(r"https://[\w.-]+\.[a-z]+(/[\w./#-]*)?", url), (label, url)
        assert "repo-url" not in url and "docs/index.md" not in url, (label, url)


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


def _build_site(tree: pathlib.Path, site: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tree / site)]
    return subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def site_tree(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A copy of the site's sources with the site built into ``site/`` (``mkdocs build --strict``, ~3 s)."""
    pytest.importorskip("mkdocstrings")  # the dev extra
    import shutil

    tree = tmp_path_factory.mktemp("site")
    pages = ("README.md", "SPEC.md", "CHANGELOG.md", "CONTRIBUTING.md", "BENCHMARKS.md")
    for name in ("mkdocs.yml", "LICENSE", *pages):
        shutil.copy(ROOT / name, tree / name)
    for folder in ("docs", "benchmarks", "examples", "impl", "reference", "conformance"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = _build_site(tree, "site")
    assert done.returncode == 0, done.stderr
    return tree


def test_site_build_fails_on_a_broken_link(site_tree: pathlib.Path) -> None:
    """``mkdocs build --strict`` (in .ci/run) passes on the site and fails on a missing page or anchor."""
    page = site_tree / "docs" / "compatibility.md"
    text = page.read_text()
    page.write_text(text + "\nSee [the guide](no-such-guide.md) and [BA-3.2](../SPEC.md#no-such-section).\n")
    try:
        done = _build_site(site_tree, "broken-site")
    finally:
        page.write_text(text)
    assert done.returncode != 0
    assert "'no-such-guide.md'" in done.stderr and "'#no-such-section'" in done.stderr, done.stderr


class _Html(html.parser.HTMLParser):
    """The text of a page outside ``<pre>`` blocks, the text of each ``<pre>``, and the tags seen."""

    def __init__(self) -> None:
        super().__init__()
        self.prose: list[str] = []
        self.code: list[str] = []
        self.tags: set[str] = set()
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.add(tag)
        if tag == "pre":
            self._pre += 1
            self.code.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre -= 1

    def handle_data(self, data: str) -> None:
        if self._pre:
            self.code[-1] += data
        else:
            self.prose.append(data)


def _docstring_examples() -> set[str]:
    """The first source line of every ``>>>`` example in the docstrings of the three packages.

    Lines of 12 characters or more: a bare name (``encoded``) is a word of the prose as well.
    """
    import doctest
    import importlib
    import pkgutil

    import batchapply_conformance
    import batchapply_reference

    lines: set[str] = set()
    for package in (batchapply, batchapply_reference, batchapply_conformance):
        names = [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
        for name in [package.__name__, *names]:
            if name.endswith("__main__"):
                continue
            for test in doctest.DocTestFinder().find(importlib.import_module(name)):
                lines.update(example.source.splitlines()[0] for example in test.examples)
    return {line for line in lines if len(line) >= 12}


def test_api_examples_render_as_code(site_tree: pathlib.Path) -> None:
    """Every docstring example on an API page is a highlighted code block (issue 27).

    Markdown reads a bare ``>>>`` line as three nested block quotes and runs the
    example's lines together into one paragraph; docs/_site.py's ``ApiPages``
    fences each example as ``pycon``.
    """
    examples = _docstring_examples()
    pages = sorted((site_tree / "site" / "api").glob("*/index.html"))
    assert len(pages) == 4, pages
    for page in pages:
        parsed = _Html()
        parsed.feed(page.read_text())
        name = page.parent.name
        assert "blockquote" not in parsed.tags, f"api/{name}: an example rendered as a block quote"
        prose = "\n".join(parsed.prose)
        assert ">>>" not in prose, f"api/{name}: a >>> example outside a code block"
        shown = sorted({line.strip() for line in prose.splitlines()} & examples)
        assert shown == [], f"api/{name}: example lines rendered as text: {shown}"
        prompts = sum(block.count(">>> ") for block in parsed.code)
        assert prompts >= 5, f"api/{name}: {prompts} >>> prompts in code blocks"


class _Prose(html.parser.HTMLParser):
    """The text of a page's article outside links, code and headings."""

    SKIP = frozenset({"a", "code", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "script", "style"})

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self._article = self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._article += tag == "article"
        self._skip += tag in self.SKIP

    def handle_endtag(self, tag: str) -> None:
        self._article -= tag == "article"
        self._skip -= tag in self.SKIP

    def handle_data(self, data: str) -> None:
        if self._article and not self._skip:
            self.text.append(data)


def test_clause_ids_are_links(site_tree: pathlib.Path) -> None:
    """Outside SPEC.md, every clause ID in a page's prose is a link to its SPEC section (issue 27):
    docs/_site.py's ``link_page_clauses`` links the bare ones."""
    pages = [page for page in (site_tree / "site").rglob("index.html") if page.parent.name != "SPEC"]
    assert len(pages) >= 15, pages
    bare = {}
    for page in pages:
        parsed = _Prose()
        parsed.feed(page.read_text())
        found = re.findall(r"\bBA-\d+(?:\.\d+)?", "".join(parsed.text))
        if found:
            bare[page.parent.relative_to(site_tree / "site").as_posix()] = found[:5]
    assert bare == {}, f"clause IDs not linked: {bare}"


# A package is not installed (sys.argv[2], flax by default): every import of it fails as a missing
# package does.
_WITHOUT_FLAX = """
import importlib, importlib.abc, sys
missing = sys.argv[2] if len(sys.argv) > 2 else "flax"
class NoFlax(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == missing or name.startswith(missing + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoFlax())
import batchapply  # the core needs no flax
try:
    importlib.import_module(sys.argv[1])
except ModuleNotFoundError as error:
    print(type(error).__name__, error.name, error, sep="|")
"""


@pytest.mark.parametrize("module", ["batchapply.linen", "batchapply.nnx"])
def test_flax_modules_without_flax_say_how_to_install_it(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FLAX, module], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    kind, name, message = done.stdout.strip().split("|")
    assert (kind, name) == ("ModuleNotFoundError", "flax")
    assert message.startswith(f'{module} needs flax, which is not installed: pip install "batchapply[flax]"')


@pytest.mark.parametrize("module", ["batchapply.linen", "batchapply.nnx"])
def test_flax_modules_pass_on_a_missing_dependency_of_flax(module: str) -> None:
    """Only flax itself missing gets the install hint: a package that flax imports (msgpack) keeps
    its own error (kills the guard's ``raise -> pass``, mutation run of 2026-12-07)."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FLAX, module, "msgpack"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    kind, name, message = done.stdout.strip().split("|")
    assert (kind, name, message) == ("ModuleNotFoundError", "msgpack", "No module named 'msgpack'")


def test_generated_numbers_match_their_json() -> None:
    """The benchmark tables of BENCHMARKS.md and docs/performance.md are the JSON's (issue 27)."""
    from benchmarks import plots

    assert plots.main(["--check", "--tables-only"]) == 0, "run: python benchmarks/plots.py"


def test_plots_match_their_json() -> None:
    """docs/images/*.svg are what benchmarks/plots.py draws from the JSON (matplotlib: the dev extra)."""
    pytest.importorskip("matplotlib")
    from benchmarks import plots

    assert plots.main(["--check"]) == 0, "run: python benchmarks/plots.py"


def test_compiled_memory_numbers_match_a_fresh_compile() -> None:
    """The `jax.jit` column of the peak-memory table, recomputed: compiled now, never run."""
    from benchmarks import chunk_memory, plots

    recorded = plots.load()["memory"]
    for variant, temp_bytes in recorded["compiled_temp_bytes"].items():
        fresh = chunk_memory.compiled_temp_bytes(recorded["rows_log2"], chunk_memory._chunk_size(variant))
        assert fresh == temp_bytes, (variant, fresh, temp_bytes)


def test_site_hooks_examples() -> None:
    """docs/_site.py's own examples (the fences and links the API pages get)."""
    import doctest
    import importlib.util

    spec = importlib.util.spec_from_file_location("_site", ROOT / "docs" / "_site.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    pytest.importorskip("mkdocs")  # the hooks import mkdocs (the dev extra)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.attempted >= 2 and result.failed == 0


def test_eager_call_ratios_compare_medians_per_call_index() -> None:
    """benchmarks/eager_calls.py and the gate's --calls (issue 26): one stalled call in one
    process does not decide a call index; the gated names are every call index against flax
    and the steady state against the floor at 10,000 leaves."""
    from benchmarks import eager_calls, gate

    def run(calls: list[float], steady: float) -> dict[str, object]:
        return {"calls": calls, "steady": steady}

    results = {
        "100": {
            "batchapply": [run([2.0, 1.0], 1.0), run([4.0, 1.0], 3.0), run([3.0, 90.0], 2.0)],
            "flax": [run([4.0, 2.0], 2.0)] * 3,
            "floor": [run([9.0, 9.0], 1.0)] * 3,
        }
    }
    assert eager_calls.summary(results) == {
        "100:call1:batchapply/flax": 0.75,
        "100:call2:batchapply/flax": 0.5,
        "100:steady:batchapply/flax": 1.0,
        "100:steady:batchapply/floor": 2.0,
    }
    assert gate.gated("calls:100:call2:batchapply/flax")
    assert gate.gated("calls:10000:steady:batchapply/floor")
    assert not gate.gated("calls:100:steady:batchapply/floor")
    assert not gate.gated("calls:100:steady:batchapply/flax")
