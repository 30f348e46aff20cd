"""Golden cases: both packages reproduce every pinned outcome; the corpus matches the reference.

Regenerate with ``python -m tests.golden.regenerate`` (the tests never write golden files).
"""

from __future__ import annotations

import copy
import pathlib
import re
import types

import pytest

import batchapply
import batchapply_reference
from batchapply_conformance import functions, golden

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "cases"
SPEC = GOLDEN_DIR.parents[2] / "SPEC.md"

try:
    CORPUS = list(golden.load_corpus())
    LOAD_ERROR: Exception | None = None
except (FileNotFoundError, ValueError) as e:  # reported by test_corpus_is_readable
    CORPUS, LOAD_ERROR = [], e


def test_corpus_is_readable() -> None:
    assert LOAD_ERROR is None, str(LOAD_ERROR)


def test_missing_corpus_names_the_regenerate_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(golden.importlib.resources, "files", lambda _: tmp_path)
    monkeypatch.setattr(golden, "__file__", str(tmp_path / "a" / "b" / "golden.py"))
    with pytest.raises(FileNotFoundError, match=re.escape(golden.REGENERATE_COMMAND)):
        golden.corpus_files()


def test_corpus_loads_with_warnings_as_errors() -> None:
    """The np.matrix cases (rows E26, E29) build their matrices without NumPy's
    PendingDeprecationWarning, so that the kit's pytest helper passes in a project whose pytest
    turns warnings into errors (docs/conformance.md's snippet failed all 95 clauses there)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = list(golden.load_corpus())
    leaves = [leaf for _, case in cases for leaf in _leaves((case.args, case.kwargs))]
    assert any(type(leaf).__name__ == "matrix" for leaf in leaves)


def _leaves(tree: object) -> list[object]:
    if isinstance(tree, (tuple, list)):
        return [leaf for child in tree for leaf in _leaves(child)]
    if isinstance(tree, dict):
        return [leaf for child in tree.values() for leaf in _leaves(child)]
    return [tree]


def test_corpus_size() -> None:
    assert len(CORPUS) >= 200
    assert sum(path.stat().st_size for path in golden.corpus_files()) < 5 * 2**20


def test_corpus_covers_every_clause_and_error_row() -> None:
    text = SPEC.read_text()
    bodies = dict(re.findall(r"^- \*\*(BA-\d+\.\d+)\*\*(.*?)(?=^- \*\*BA-|^#|^\||\Z)", text, re.M | re.S))
    clauses = set(bodies)
    # Not input/output pairs of a BatchApply call: JAX transformations (section 8,
    # tests/test_transforms.py), the Flax modules (section 12, tests/test_flax_*.py) and
    # the clauses that need tracers or several devices (tests/sharding/).
    exempt = {c for c in clauses if c.startswith(("BA-8.", "BA-12."))}
    exempt.add("BA-5.6")  # jax.Array inputs: tests/test_exact_inputs.py
    # Draft 3 clauses that no NumPy call can pin (tests/test_audit_decisions.py and the kit's
    # "audit" checks pin them): jax.Array inputs (BA-5.9 deleted, BA-14.11 and BA-14.12
    # sharded), f that raises or runs in threads (BA-6.3, BA-6.4), attributes (BA-2.6), and
    # dict key order (BA-7.6: golden.mismatches compares plain dicts by key, not order).
    exempt |= {"BA-2.6", "BA-5.9", "BA-6.3", "BA-6.4", "BA-7.6", "BA-14.11", "BA-14.12"}
    jax_only = {c for c, body in bodies.items() if "`batchapply` only" in body}
    pinned = {clause for _, case in CORPUS for clause in case.clauses}
    assert sorted(clauses - exempt - jax_only - pinned) == []
    rows = set(re.findall(r"^\| (E\d+) \|", text, re.M)) - set(
        re.findall(r"^\| (E\d+) \|.*(?:`batchapply` only|\*withdrawn\*)", text, re.M)
    )
    pinned_rows = {case.expected_error["row"] for _, case in CORPUS if case.expected_error}
    jax_input_rows = {"E25", "E28"}  # a sharded or deleted jax.Array: tests/test_errors.py
    assert sorted(rows - pinned_rows - jax_input_rows) == []


def test_corpus_matches_the_reference() -> None:
    """Regenerated in memory, the corpus must equal the files: they cannot drift apart unnoticed."""
    from tests.golden import corpus, regenerate

    fresh = corpus.build()
    on_disk = {path.stem: path.read_text() for path in sorted(GOLDEN_DIR.glob("*.jsonl"))}
    old = {case.name: case for _, case in CORPUS}
    new = {case.name: case for cases in fresh.values() for case in cases}
    changes = "\n".join(regenerate.summarize(old, new))
    assert {stem: golden.dumps(cases) for stem, cases in fresh.items()} == on_disk, (
        f"the golden files differ from the reference:\n{changes}\nRun `{golden.REGENERATE_COMMAND}` "
        "and record any changed expected value in SPEC.md's Changelog and CHANGELOG.md; the "
        f"compatibility policy says which version bump it needs ({regenerate.POLICY})."
    )


@pytest.mark.parametrize("lib", [batchapply, batchapply_reference], ids=lambda m: m.__name__)
@pytest.mark.parametrize(("group", "case"), CORPUS, ids=[f"{g}:{c.name}" for g, c in CORPUS])
def test_golden_case(lib: types.ModuleType, group: str, case: golden.GoldenCase) -> None:
    where = f"golden case {group}:{case.name} (clauses {', '.join(case.clauses)})"
    if case.expected_error is not None:
        error = case.expected_error
        with pytest.raises(Exception) as info:
            golden.replay(case, lib)
        got = f"{type(info.value).__name__}: {info.value}"
        assert type(info.value).__name__ == error["type"], f"{where}: expected {error['type']}, got {got}"
        prefix = error["prefix"].replace("{num_dims}", str(case.num_dims))
        assert str(info.value).startswith(prefix), f"{where}: expected prefix {prefix!r}, got {got}"
        return
    before = copy.deepcopy((case.args, case.kwargs))
    try:
        got = golden.replay(case, lib)
    except Exception as e:
        pytest.fail(f"{where}: expected an output, got {type(e).__name__}: {e}")
    untouched = golden.mismatch(before, (case.args, case.kwargs), exact=True, path="inputs")
    assert untouched is None, f"{where}: the call mutated its inputs (BA-5.5): {untouched}"
    exact = case.function is None or case.target != "BatchApply" or functions.FUNCTIONS[case.function].exact
    problem = golden.mismatch(case.expected, got, exact=exact)
    assert problem is None, f"{where}: {problem}"


def test_installed_corpus_is_the_checkouts() -> None:
    """A wheel ships tests/golden/cases as batchapply_conformance/_golden; it must not be stale."""
    files = golden.corpus_files()
    if files[0].parent == GOLDEN_DIR:
        pytest.skip("running from a checkout (editable install): the corpus is tests/golden/cases itself")
    assert {p.name: p.read_text() for p in files} == {
        p.name: p.read_text() for p in GOLDEN_DIR.glob("*.jsonl")
    }


def test_mismatch_reports_differences_and_accepts_a_passed_through_nan() -> None:
    nan = float("nan")
    assert golden.mismatch({"a": nan, "b": [1.0]}, {"a": nan, "b": [1.0]}, exact=True) is None
    assert golden.mismatch({"a": 1.0}, {"a": 2.0}, exact=True) == "output['a']: expected 1.0, got 2.0"
    assert golden.mismatch((1,), [1], exact=True) == "output: expected a tuple, got list"
