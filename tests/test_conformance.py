"""The conformance kit and its CLI (SPEC as a gate for any implementation)."""

from __future__ import annotations

import atexit
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

import batchapply_conformance as conformance
from batchapply_conformance import _gate, _run
from tests import background

TESTS = pathlib.Path(__file__).resolve().parent
SCHEMA = json.loads((pathlib.Path(conformance.__file__).parent / "report.schema.json").read_text())

# Where flax.linen.BatchApply (a copy of hk.BatchApply) deviates from SPEC.md, one reason per
# clause: the expectation file that ships with the kit (`--expect flax.linen`).
FLAX_DEVIATIONS = _gate.read_expectations(pathlib.Path("flax.linen"), set())


def _cli_env() -> dict[str, str]:
    # 8 simulated CPU devices, so that the multi-device checks of SPEC section 14 run too.
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }


def cli(*args: str, tmp_path: pathlib.Path) -> tuple[int, str, dict[str, Any]]:
    """Run the installed console script; its exit status, stdout and JSON report."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "batchapply_conformance", *args, "--json", str(report)],
        capture_output=True,
        text=True,
        env=_cli_env(),
        check=False,
        timeout=600,
    )
    assert done.returncode in (0, 1, 3), done.stderr
    return done.returncode, done.stdout, json.loads(report.read_text())


REPORTS = pathlib.Path(tempfile.mkdtemp(prefix="batchapply-cli-"))
atexit.register(shutil.rmtree, REPORTS, True)


def cli_in_background(name: str, tests: tuple[str, ...], *args: str) -> None:
    """``cli(*args)`` as a child started beside the tests that read it (tests/background.py)."""
    argv = [sys.executable, "-m", "batchapply_conformance", *args, "--json", str(REPORTS / f"{name}.json")]
    background.register(name, tests, argv, _cli_env(), timeout=600)


def cli_result(name: str) -> tuple[int, str, dict[str, Any]]:
    done = background.result(name)
    assert done.returncode in (0, 1, 3), done.stderr
    return done.returncode, done.stdout, json.loads((REPORTS / f"{name}.json").read_text())


cli_in_background(
    "cli batchapply",
    ("tests/test_conformance.py::test_batchapply_conforms",),
    "batchapply:BatchApply",
    "--profile",
    "dev",
)
cli_in_background(
    "cli flax.linen",
    (
        "tests/test_conformance.py::test_flax_linen_fails_exactly_where_it_deviates",
        "tests/test_conformance.py::test_report_follows_its_schema",
    ),
    "flax.linen:BatchApply",
    "--profile",
    "dev",
    "--expect",
    "flax.linen",
)


def statuses(report: dict[str, Any], status: str) -> set[str]:
    return {c["clause"] for c in report["clauses"] if c["status"] == status}


@pytest.mark.spec("BA-10.1")
def test_batchapply_conforms() -> None:
    code, out, report = cli_result("cli batchapply")
    assert code == 0, out
    assert statuses(report, "FAIL") == set()
    # Section 12 is about the Flax module wrappers, which a factory target does not have.
    assert {c for c in statuses(report, "N/A") if not c.startswith("BA-12.")} == set()
    assert statuses(report, "NOT RUN") == set()
    assert "conforms" in out.splitlines()[-1]


@pytest.fixture(scope="module")
def flax_linen_run() -> tuple[int, str, dict[str, Any]]:
    """One CLI run on flax.linen.BatchApply with the expectation file that ships with the kit,
    read by the tests of its verdicts and of the schema."""
    return cli_result("cli flax.linen")


def test_flax_linen_fails_exactly_where_it_deviates(flax_linen_run: tuple[int, str, dict[str, Any]]) -> None:
    code, out, report = flax_linen_run
    # Exactly the clauses of the shipped expectation file fail (XFAIL), so the gate is green.
    assert code == 0, out
    assert statuses(report, "XFAIL") == set(FLAX_DEVIATIONS) and statuses(report, "FAIL") == set(), out
    assert report["expectations"]["unexpected"] == [] == report["expectations"]["xpass"]
    # Extension clauses (in_axes, out_axes) are N/A; the helpers are found next to the factory
    # (flax.linen.batch_apply), though flax.linen does not export them.
    assert {"BA-4.3", "BA-4.4", "BA-7.5"} <= statuses(report, "N/A")
    leading = next(c for c in report["clauses"] if c["clause"] == "BA-3.2")
    assert "args" in leading["counterexample"] and "expected" in leading["counterexample"]


def test_a_broken_implementation_fails_its_clause_with_a_counterexample(tmp_path: pathlib.Path) -> None:
    code, _, report = cli("broken_targets:fortran_order", "--clause", "BA-5.1", tmp_path=tmp_path)
    assert code == 1
    assert [c["clause"] for c in report["clauses"]] == ["BA-5.1"]
    (clause,) = report["clauses"]
    assert clause["status"] == "FAIL"
    example = clause["counterexample"]
    assert {"args", "expected", "got"} <= set(example)
    assert example["expected"] != example["got"]


# One fault each, and every clause the kit charges it to (the attribution rule of
# docs/conformance.md): a failing property counts against the clause that states it, not
# every clause a case cites. Every target of tests/attribution_targets.py's FAULTS, and every
# target of tests/broken_targets.py's CORPUS but those still OPEN: its clause and the clauses
# its ALSO lists (what the one fault breaks too, each with its reason).


def _one_fault_targets() -> dict[str, set[str]]:
    import attribution_targets  # type: ignore[import-not-found]
    import broken_targets  # type: ignore[import-not-found]

    found = dict(attribution_targets.FAULTS)
    for name, clause in broken_targets.CORPUS.items():
        if name not in broken_targets.OPEN:
            target = name if ":" in name else f"broken_targets:{name}"
            found[target] = {clause, *broken_targets.ALSO.get(name, {})}
    return found


ONE_FAULT = _one_fault_targets()

background.register(
    "one-fault FAIL sets",
    ("tests/test_conformance.py::test_a_single_fault_fails_exactly_its_clauses",),
    [sys.executable, str(TESTS / "corpus_worker.py"), "dev", "--full", *sorted(ONE_FAULT)],
    {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"},
)


@pytest.fixture(scope="module")
def one_fault_runs() -> dict[str, dict[str, Any]]:
    """Every clause of each one-fault target, run by tests/corpus_worker.py on 8 devices, beside the tests."""
    done = background.result("one-fault FAIL sets")
    assert done.returncode == 0, done.stderr[-3000:]
    return {run["target"]: run for run in map(json.loads, done.stdout.splitlines()) if "target" in run}


@pytest.mark.parametrize("target", sorted(ONE_FAULT))
def test_a_single_fault_fails_exactly_its_clauses(
    one_fault_runs: dict[str, dict[str, Any]], target: str
) -> None:
    assert set(one_fault_runs[target]["fails"]) == ONE_FAULT[target], one_fault_runs[target]


def test_golden_comparison_charges_each_property_to_its_clause() -> None:
    import numpy as np

    from batchapply_conformance import golden

    expected = {"x": np.arange(4, dtype=np.int8).reshape(2, 2), "label": "a"}
    got = [np.arange(4, dtype=np.int16).reshape(2, 2)[::-1], "b"]
    assert [kind for kind, _ in golden.mismatches(expected, got, exact=True)] == ["structure"]
    got_dict = {"x": np.arange(4, dtype=np.int16).reshape(2, 2)[::-1], "label": "b"}
    kinds = [kind for kind, _ in golden.mismatches(expected, got_dict, exact=True)]
    assert kinds == ["dtype", "values", "leaf"]


def test_report_follows_its_schema(flax_linen_run: tuple[int, str, dict[str, Any]]) -> None:
    _, _, report = flax_linen_run
    jsonschema.validate(report, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**report, "summary": {"PASS": 1}}, SCHEMA)


def test_runs_are_deterministic() -> None:
    first = conformance.run("batchapply:BatchApply", profile="dev", clauses=["BA-5.1", "BA-10.1"]).to_json()
    second = conformance.run("batchapply:BatchApply", profile="dev", clauses=["BA-5.1", "BA-10.1"]).to_json()
    for report in (first, second):
        report.pop("seconds")
        for case in report["cases"]:
            case.pop("seconds")
    assert first == second


def _console(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchapply_conformance", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,  # a hang guard, not a timing assertion
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
            **(env or {}),
        },
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--clause", "BA-99.1"], "unknown clause BA-99.1; SPEC.md has BA-1.1 to BA-"),
        (["no_colon_here"], "target must be `module:attr`"),
        (["batchapply:NoSuchThing"], "has no attribute 'NoSuchThing'"),
        (["json:dumps"], "`json:dumps` is not a BatchApply factory"),
        (
            ["--json", "/nonexistent/dir/r.json"],
            "argument --json: directory '/nonexistent/dir' does not exist",
        ),
        (["--max-examples", "0"], "argument --max-examples: must be >= 1, got 0"),
        (["--skip", "everything"], "argument --skip: invalid choice"),
    ],
)
def test_usage_errors_and_bad_targets_exit_2_before_any_check(args: list[str], says: str) -> None:
    done = _console(*args)
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert done.stdout == ""  # no check ran, no report
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("batchapply-conformance: error: ") and says in last, done.stderr


def test_clause_hint_spans_the_spec() -> None:
    from batchapply_conformance import _spec

    ids = sorted((c.id for c in _spec.clauses()), key=_spec.clause_key)
    done = _console("--clause", "BA-99.9")
    assert f"SPEC.md has {ids[0]} to {ids[-1]}" in done.stderr


BLOCK_HYPOTHESIS = (
    "import sys; sys.modules['hypothesis'] = None; "  # `import hypothesis` now raises ImportError
    "from batchapply_conformance import main; sys.exit(main(sys.argv[1:]))"
)


def _without_hypothesis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_HYPOTHESIS, "batchapply:BatchApply", "--clause", "BA-1.1", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_without_hypothesis_the_cli_fails_closed(tmp_path: pathlib.Path) -> None:
    done = _without_hypothesis("--json", str(tmp_path / "report.json"))
    assert done.returncode == 3, (done.stdout, done.stderr)
    report = json.loads((tmp_path / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["summary"]["not_run_must_clauses"] == ["BA-1.1"] and report["summary"]["exit_code"] == 3
    assert "install batchapply[conformance]" in done.stderr.strip().splitlines()[-1]
    lines = done.stdout.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("BA-1.1 ")]
    assert "NOT RUN" in lines[at] and "property agreement with non-array leaves" in lines[at + 1]
    assert "not checked: MUST clauses NOT RUN: BA-1.1" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize("narrowing", [["--allow-not-run"], ["--skip", "properties"]])
def test_without_hypothesis_a_narrowed_run_may_pass(narrowing: list[str]) -> None:
    done = _without_hypothesis(*narrowing)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "conforms (narrowed: " in done.stdout.splitlines()[-1]


def test_a_report_not_run_because_of_too_few_devices_exits_3(tmp_path: pathlib.Path) -> None:
    done = _console("batchapply:BatchApply", "--clause", "BA-14.5", env={"XLA_FLAGS": ""})
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "needs 2 or more devices" in done.stderr


def test_progress_bar_draws_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _run.write_progress(15, 30, "golden errors:E9")
    assert "[###############...............] 15/30 golden errors:E9" in terminal.getvalue()


def test_parametrize_with_checks_marks_expected_failures() -> None:
    mark = conformance.parametrize_with_checks(
        "flax.linen:BatchApply", expected_failures={"BA-3.2": "copied from Haiku", "BA-99.9": "stale"}
    )
    params = {p.id: p for p in mark.args[1]}
    assert [m.name for m in params["BA-3.2"].marks] == ["xfail"]
    with pytest.raises(AssertionError, match=r"BA-3\.2 fails"):
        params["BA-3.2"].values[0]()
    params["BA-5.4"].values[0]()  # passes
    with pytest.raises(AssertionError, match=r"BA-99\.9"):
        params["expected-failures-that-match-no-clause"].values[0]()


def _copying_chunker(f: Any, num_dims: int, chunk_size: int = 1) -> Any:
    """Chunks right, but from a merged copy of the whole input: what BA-13.11 rules out."""
    import jax.numpy as jnp

    def call(x: Any) -> Any:
        merged = x.reshape((-1,) + x.shape[num_dims:]) + 0
        outs = [f(merged[i : i + chunk_size]) for i in range(0, merged.shape[0], chunk_size)]
        return jnp.concatenate(outs).reshape(x.shape[:num_dims] + outs[0].shape[1:])

    return call


@pytest.mark.spec("BA-13.11")
def test_chunk_memory_check_catches_a_merged_copy() -> None:
    import types

    from batchapply_conformance import _checks, _transforms

    (check,) = [c for c in _transforms.transform_checks() if c.clauses == ("BA-13.11",)]
    copying = _checks.Target("t:copy", _copying_chunker, types.ModuleType("t"), frozenset({"chunk_size"}))
    assert _status(check.run(copying)) == "fail"
    assert _status(check.run(_checks.Target.load("batchapply:BatchApply"))) == "pass"


@pytest.mark.spec("BA-13.10")
def test_chunk_refusal_check_catches_a_jax_error() -> None:
    import types

    from batchapply_conformance import _checks, _transforms

    (check,) = [c for c in _transforms.transform_checks() if c.clauses == ("BA-13.10",)]
    naive = _checks.Target("t:naive", _copying_chunker, types.ModuleType("t"), frozenset({"chunk_size"}))
    assert _status(check.run(naive)) == "fail"


def _status(found: Any) -> str:
    (outcome,) = found if isinstance(found, list) else [found]
    return str(outcome.status)


@pytest.mark.parametrize(
    ("found", "status"),
    [
        (["pass", "not_run"], "NOT RUN"),
        (["not_run", "pass"], "NOT RUN"),
        (["not_run", "fail"], "FAIL"),
        (["fail", "not_run"], "FAIL"),
        (["na", "pass"], "PASS"),
        (["na"], "N/A"),
    ],
)
def test_fail_outranks_not_run_which_outranks_pass(found: list[str], status: str) -> None:
    from batchapply_conformance import _checks

    check = _checks.Check("c", ("BA-5.1",), lambda _target: _checks.Outcome("pass"))
    results = {"BA-5.1": _run.ClauseResult("BA-5.1", must=True)}
    for outcome in found:
        _run.fold(results, check, _checks.Outcome(outcome, "why"))  # type: ignore[arg-type]
    assert results["BA-5.1"].status == status


def test_a_failure_is_charged_to_its_clauses_and_the_others_pass() -> None:
    from batchapply_conformance import _checks

    check = _checks.Check("c", ("BA-1.3", "BA-5.3"), lambda _target: _checks.Outcome("pass"))
    results = {c: _run.ClauseResult(c, must=True) for c in ("BA-1.3", "BA-5.3", "BA-7.2")}
    _run.fold(results, check, [_checks.Outcome("fail", "type", None, ("BA-5.3", "BA-7.2"))])
    assert {c: r.status for c, r in results.items()} == {"BA-1.3": "PASS", "BA-5.3": "FAIL", "BA-7.2": "FAIL"}


def test_a_check_needing_more_devices_than_jax_sees_did_not_run() -> None:
    """Fail closed: the jax-input and sharding checks share one guard, NOT RUN on too few devices."""
    from batchapply_conformance import _checks, _jax_inputs

    (device_check,) = [c for c in _jax_inputs.jax_input_checks() if c.name == "jax inputs committed device"]
    target = _checks.Target.load("batchapply:BatchApply")
    guarded = _checks.on_jax(lambda t: _checks.Outcome("pass"), devices=10**6)(target)
    assert isinstance(guarded, _checks.Outcome) and guarded.status == "not_run"
    import jax

    outcome = device_check.run(target)
    assert isinstance(outcome, _checks.Outcome)
    assert outcome.status == ("pass" if jax.device_count() >= 2 else "not_run")


def test_exitfirst_stops_at_the_first_must_failure() -> None:
    # --exitfirst (-x), the killing command of `python -m tests.mutation.run --judge cli`: the
    # first check that FAILs a MUST clause ends the run; what is left is NOT RUN on request.
    report = conformance.run("broken_targets:fortran_order", profile="dev", isolate=False, exitfirst=True)
    assert report.exit_code == 1
    assert "BA-5.1" in report.failing_musts, conformance.render(report)
    failed = [i for i, case in enumerate(report.cases) if case.status == "FAIL"]
    assert len(failed) == 1
    rest = report.cases[failed[0] + 1 :]
    assert rest and all(case.status == "NOT RUN" and "--exitfirst" in case.detail for case in rest)
    assert not report.not_run_musts  # stopped on request: only the failure decides the exit status
