"""The conformance kit's runner and CLI: isolation, exit statuses, gating (--expect, --baseline, diff).

Each test runs the CLI on a few clauses of a tiny target (tests/hostile_targets,
tests/gating_targets), so that the worker starts once or twice and the checks take
well under a second.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

import batchapply_conformance as conformance

TESTS = pathlib.Path(__file__).resolve().parent
SCHEMA = json.loads((pathlib.Path(conformance.__file__).parent / "report.schema.json").read_text())
SHIPPED = pathlib.Path(conformance.__file__).parent / "expectations"


def console(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchapply_conformance", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,  # a hang guard, not a timing assertion
        cwd=cwd,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
            "JAX_PLATFORMS": "cpu",
        },
    )


def run_json(tmp_path: pathlib.Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    report = tmp_path / "report.json"
    done = console(*args, "--json", str(report))
    assert done.returncode in (0, 1, 3), done.stderr
    data = json.loads(report.read_text())
    jsonschema.validate(data, SCHEMA)
    return done.returncode, done.stdout, data


def clause(report: dict[str, Any], clause_id: str) -> dict[str, Any]:
    (found,) = [c for c in report["clauses"] if c["clause"] == clause_id]
    return found


# ---- isolation: a crash, hang or runaway allocation is one case's FAIL ------------------------

ZERO_ROWS = "golden input_classes:rows-without-elements-65536x65536x0"


@pytest.mark.parametrize(
    ("target", "limits", "says"),
    [
        ("aborts_without_rows", [], "CRASH: killed by signal SIGABRT"),
        ("hangs_without_rows", ["--timeout", "1"], "TIMEOUT: still running after 1 s"),
        ("grows_without_rows", ["--timeout", "60", "--memory-limit", "700"], "CRASH: out of memory"),
    ],
)
def test_a_crash_hang_or_oom_is_the_cases_fail_and_the_run_goes_on(
    tmp_path: pathlib.Path, target: str, limits: list[str], says: str
) -> None:
    code, out, report = run_json(
        tmp_path, f"hostile_targets:{target}", "--clause", "BA-1.6", "--clause", "BA-5.4", *limits
    )
    assert code == 1, out
    cases = {c["case"]: c for c in report["cases"]}
    assert cases[ZERO_ROWS]["status"] == "FAIL" and cases[ZERO_ROWS]["detail"].startswith(says)
    assert set(cases[ZERO_ROWS]["charged"]) == {"BA-1.6"}  # the clause the case cites
    failure = next(f for f in clause(report, "BA-1.6")["failures"] if f["case"] == ZERO_ROWS)
    assert failure["detail"].startswith(says)
    # The worker was restarted: the cases after the crash ran, and passed.
    order = [c["case"] for c in report["cases"]]
    after = [cases[name]["status"] for name in order[order.index(ZERO_ROWS) + 1 :]]
    assert after and "PASS" in after, order
    assert f"{ZERO_ROWS}: {says}" in out


def test_the_worker_ends_with_the_runner() -> None:
    """A worker stuck in a hanging target does not outlive a runner that was killed."""
    import signal
    import time

    runner = subprocess.Popen(
        [sys.executable, "-m", "batchapply_conformance", "hostile_targets:hangs_without_rows"]
        + ["--clause", "BA-1.6", "--timeout", "300"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        },
    )
    children = pathlib.Path(f"/proc/{runner.pid}/task/{runner.pid}/children")
    if not children.exists():
        runner.kill()
        pytest.skip("no /proc children file on this system")
    deadline = time.monotonic() + 120
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.2)
    (worker,) = map(int, children.read_text().split())
    time.sleep(3)  # well inside the hanging case by now
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while pathlib.Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pathlib.Path(f"/proc/{worker}").exists() or "Z" in _state(worker)


def _state(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


# ---- exit statuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["hostile_targets.import_raises:BatchApply"], "RuntimeError: this module needs jax<0.4"),
        (["hostile_targets.import_exits:BatchApply"], "SystemExit(0)"),
        (["hostile_targets:hangs_at_construction", "--timeout", "1"], "did not return within 1 s"),
        (["hostile_targets:aborts_at_construction"], "crashed the process (killed by signal SIGABRT)"),
        (["hostile_targets:raises_at_construction"], "raised at construction: make(identity, 2) raised"),
        (["--json", str(TESTS)], "is a directory"),
        (["--json", "/proc/version"], "is not writable"),
        (["--exclude", "BA-99.1"], "unknown clause or case 'BA-99.1'"),
        (["--expect", "no-such-file"], "argument --expect: cannot read"),
        (["--baseline", str(TESTS / "conftest.py")], "argument --baseline: cannot read a report"),
    ],
)
def test_targets_that_cannot_be_checked_and_usage_errors_exit_2(args: list[str], says: str) -> None:
    done = console(*args, "--clause", "BA-5.4")
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert done.stdout == ""  # nothing was checked, no report
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("batchapply-conformance: error: ") and says in last, done.stderr


def test_every_exit_status_is_documented() -> None:
    from batchapply_conformance import _cli

    docs = (TESTS.parent / "docs" / "conformance.md").read_text()
    for code in ("0", "1", "2", "3"):
        assert f"\n  {code}  " in _cli.EXIT_CODES
        assert f"\n| {code} |" in docs


# ---- usability ------------------------------------------------------------------------------------


def test_exclude_a_clause_and_a_case(tmp_path: pathlib.Path) -> None:
    code, out, report = run_json(
        tmp_path,
        "hostile_targets:aborts_without_rows",
        "--clause",
        "BA-1.6",
        "--clause",
        "BA-5.4",
        "--exclude",
        "BA-1.6",
        "--exclude",
        "golden merge_split:zero-size-leading0",
    )
    assert code == 0, out
    assert (
        clause(report, "BA-1.6")["status"] == "NOT RUN"
        and "--exclude BA-1.6" in clause(report, "BA-1.6")["detail"]
    )
    assert clause(report, "BA-5.4")["status"] == "NOT RUN"  # one of its cases was excluded
    assert report["excluded"] == sorted(["BA-1.6", "golden merge_split:zero-size-leading0"])
    assert "conforms (narrowed: " in out.splitlines()[-1]


def test_failures_only_and_titles(tmp_path: pathlib.Path) -> None:
    _, out, report = run_json(
        tmp_path,
        "hostile_targets:aborts_without_rows",
        "--clause",
        "BA-1.6",
        "--clause",
        "BA-5.3",
        "--failures-only",
    )
    rows = [line for line in out.splitlines() if line.startswith("BA-")]
    assert rows == [next(line for line in rows if line.startswith("BA-1.6 "))]
    assert rows[0].endswith("Rows without elements")
    assert clause(report, "BA-5.3")["title"] and clause(report, "BA-1.6")["failed"] == 2


def test_a_local_adapter_file_loads_without_pythonpath(tmp_path: pathlib.Path) -> None:
    adapter = tmp_path / "my_adapter.py"
    adapter.write_text("from batchapply import BatchApply as make\n")
    by_path = subprocess.run(
        [sys.executable, "-m", "batchapply_conformance", f"{adapter}:make", "--clause", "BA-5.4"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert by_path.returncode == 0, by_path.stderr
    by_module = subprocess.run(
        [sys.executable, "-m", "batchapply_conformance", "my_adapter:make", "--clause", "BA-5.4"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert by_module.returncode == 0, by_module.stderr


def test_helpers_are_found_next_to_the_factory_or_where_named() -> None:
    found = console("flax.linen:BatchApply", "--clause", "BA-9.3", "--failures-only")
    assert found.returncode == 1 and "BA-9.3" in found.stdout  # flax.linen.batch_apply's helper
    named = console("flax.linen:BatchApply", "--clause", "BA-9.3", "--helpers", "batchapply")
    assert named.returncode == 0, named.stdout


def test_a_helper_of_another_signature_gets_a_hint() -> None:
    done = console("hostile_targets.odd_helpers:BatchApply", "--clause", "BA-9.1")
    assert done.returncode == 1
    assert (
        "note: `hostile_targets.odd_helpers.merge_leading_dims` does not take SPEC's (x, num_dims)"
        in done.stdout
    )


# ---- gating: --expect, --baseline, diff ---------------------------------------------------------

GATE = ["--clause", "BA-2.2", "--clause", "BA-7.1", "--clause", "BA-3.2"]


@pytest.fixture(scope="module")
def flax_expected() -> dict[str, str]:
    from batchapply_conformance import _gate

    return _gate.read_expectations(SHIPPED / "flax.linen.txt", set())


def test_a_removed_expectation_fails_the_run_naming_it(tmp_path: pathlib.Path) -> None:
    lines = (SHIPPED / "flax.linen.txt").read_text().splitlines()
    (tmp_path / "expect.txt").write_text("\n".join(line for line in lines if not line.startswith("BA-3.2:")))
    done = console("flax.linen:BatchApply", *GATE, "--expect", str(tmp_path / "expect.txt"))
    assert done.returncode == 1, done.stdout
    assert "expect: unexpected FAIL (not in --expect): BA-3.2" in done.stdout


def test_a_new_defect_fails_the_run_naming_it() -> None:
    done = console("gating_targets:flax_reversed_tuples", *GATE, "--expect", "flax.linen")
    assert done.returncode == 1, done.stdout
    assert "expect: unexpected FAIL (not in --expect): BA-7.1" in done.stdout


def test_a_fixed_deviation_is_xpass_and_fails_under_strict(tmp_path: pathlib.Path) -> None:
    code, out, report = run_json(
        tmp_path, "gating_targets:flax_checked_num_dims", *GATE, "--expect", "flax.linen"
    )
    assert code == 1 and clause(report, "BA-2.2")["status"] == "XPASS", out
    assert report["expectations"]["xpass"] == ["BA-2.2"] and report["exit_code"] == 1
    relaxed = console(
        "gating_targets:flax_checked_num_dims", *GATE, "--expect", "flax.linen", "--expect-nonstrict"
    )
    assert relaxed.returncode == 0, relaxed.stdout


def test_an_unknown_id_in_the_expectation_file_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "expect.txt").write_text("BA-3.2: merged anyway\nBA-77.1: no such clause\n")
    done = console("flax.linen:BatchApply", "--expect", str(tmp_path / "expect.txt"))
    assert done.returncode == 2 and done.stdout == ""
    assert f"{tmp_path / 'expect.txt'}:2: unknown ID 'BA-77.1'" in done.stderr


def test_a_case_id_can_be_expected(tmp_path: pathlib.Path) -> None:
    (tmp_path / "expect.txt").write_text(
        f"{ZERO_ROWS}: aborts\ngolden input_classes:rows-without-elements-1024x1024x0: aborts\n"
        "golden input_classes:rows-without-elements-row-order: aborts\n"
    )
    done = console(
        "hostile_targets:aborts_without_rows", "--clause", "BA-1.6", "--expect", str(tmp_path / "expect.txt")
    )
    assert done.returncode == 0, done.stdout
    assert "XFAIL" in next(line for line in done.stdout.splitlines() if line.startswith("BA-1.6 "))


@pytest.fixture(scope="module")
def two_reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """flax.linen and the same with its num_dims check fixed: two real reports."""
    folder = tmp_path_factory.mktemp("reports")
    for name, target in (("old", "flax.linen:BatchApply"), ("new", "gating_targets:flax_checked_num_dims")):
        run_json(folder, target, *GATE)
        (folder / "report.json").rename(folder / f"{name}.json")
    return folder / "old.json", folder / "new.json"


def test_diff_an_improvement_alone_exits_0(two_reports: tuple[pathlib.Path, pathlib.Path]) -> None:
    old, new = two_reports
    done = console("diff", "--all", str(old), str(new))
    assert done.returncode == 0, done.stdout
    assert "BA-2.2: FAIL -> PASS" in done.stdout and "regressions: 0" in done.stdout


def test_diff_a_regression_exits_1_naming_it(two_reports: tuple[pathlib.Path, pathlib.Path]) -> None:
    old, new = two_reports
    done = console("diff", str(new), str(old))
    assert done.returncode == 1, done.stdout
    assert "BA-2.2: PASS -> FAIL" in done.stdout
    assert "case golden errors:E2-num-dims-True: PASS -> FAIL" in done.stdout
    assert done.stdout.splitlines()[-1].endswith("REGRESSED")


def test_baseline_gates_only_on_regressions(two_reports: tuple[pathlib.Path, pathlib.Path]) -> None:
    old, _ = two_reports
    improved = console("gating_targets:flax_checked_num_dims", *GATE, "--baseline", str(old))
    assert improved.returncode == 0, improved.stdout  # BA-3.2 still fails, as in the baseline
    assert "improvements: " in improved.stdout and "BA-2.2: FAIL -> PASS" in improved.stdout
    regressed = console("gating_targets:flax_reversed_tuples", *GATE, "--baseline", str(old))
    assert regressed.returncode == 1, regressed.stdout
    assert "BA-7.1: PASS -> FAIL" in regressed.stdout


def _report(clauses: dict[str, tuple[str, int]], cases: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A hand-written report: clause -> (status, checks NOT RUN), case -> (status, charged clause)."""
    return {
        "target": "m:f",
        "clauses": [
            {"clause": k, "status": s, "not_run": n, "detail": f"{k} detail"} for k, (s, n) in clauses.items()
        ],
        "cases": [
            {"case": k, "status": s, "charged": [c] if s == "FAIL" else [], "detail": f"{k} detail"}
            for k, (s, c) in cases.items()
        ],
    }


@pytest.mark.parametrize(
    ("was", "now"),
    [
        (("PASS", 0), ("XFAIL", 0)),  # fails now, though an expectation file lists it
        (("XPASS", 0), ("XFAIL", 0)),
        (("XPASS", 0), ("NOT RUN", 1)),
        (("N/A", 0), ("NOT RUN", 1)),  # a check applies now, and could not run
        (None, ("NOT RUN", 1)),  # a clause new in this version of the kit, not checked
        (("NOT RUN", 0), ("NOT RUN", 1)),  # skipped on request before, could not run now
        (None, ("XFAIL", 0)),
    ],
)
def test_diff_a_clause_that_fails_or_goes_unchecked_now_is_a_regression(
    was: tuple[str, int] | None, now: tuple[str, int]
) -> None:
    from batchapply_conformance import _gate

    old = _report({"BA-1.1": ("PASS", 0), **({"BA-3.2": was} if was else {})}, {})
    found = _gate.diff(old, _report({"BA-1.1": ("PASS", 0), "BA-3.2": now}, {}))
    assert found.exit_code == 1 and found.regressions[0].startswith(
        f"BA-3.2: {was[0] if was else 'absent'} -> {now[0]}"
    ), found.render()


@pytest.mark.parametrize(
    ("was", "now"),
    [(("FAIL", 0), ("XFAIL", 0)), (("XFAIL", 0), ("FAIL", 0)), (("NOT RUN", 1), ("NOT RUN", 1))],
)
def test_diff_a_clause_that_failed_or_went_unchecked_before_is_no_regression(
    was: tuple[str, int], now: tuple[str, int]
) -> None:
    from batchapply_conformance import _gate

    found = _gate.diff(_report({"BA-3.2": was}, {}), _report({"BA-3.2": now}, {}))
    assert found.exit_code == 0 and not found.regressions, found.render()


def test_diff_a_case_that_no_longer_runs_is_a_regression_inside_a_failing_clause() -> None:
    """The clause FAILed before and still does (FAIL outranks NOT RUN): only the case shows the loss."""
    from batchapply_conformance import _gate

    old = _report({"BA-3.2": ("FAIL", 0)}, {"golden a": ("PASS", ""), "golden b": ("FAIL", "BA-3.2")})
    new = _report({"BA-3.2": ("FAIL", 1)}, {"golden a": ("NOT RUN", ""), "golden b": ("FAIL", "BA-3.2")})
    found = _gate.diff(old, new)
    assert found.exit_code == 1 and found.regressions == ["case golden a: PASS -> NOT RUN: golden a detail"]


def test_diff_a_case_skipped_on_request_is_no_regression() -> None:
    from batchapply_conformance import _gate

    old = _report({"BA-3.2": ("PASS", 0)}, {"golden a": ("PASS", "")})
    new = _report({"BA-3.2": ("NOT RUN", 0)}, {"golden a": ("NOT RUN", "")})
    new["cases"][0]["detail"] = "skipped on request (--exclude golden a)"
    found = _gate.diff(old, new)
    assert found.exit_code == 0 and found.changes == [
        "BA-3.2: PASS -> NOT RUN",
        "case golden a: PASS -> NOT RUN",
    ]


def test_diff_lists_the_first_cases_of_each_clause_unless_asked_for_all() -> None:
    """One fault that fails a hundred cases reads as its clause and a few of them."""
    from batchapply_conformance import _gate

    names = [f"golden c{i:02}" for i in range(13)]
    old = _report({"BA-7.1": ("PASS", 0)}, {n: ("PASS", "") for n in names})
    new = _report({"BA-7.1": ("FAIL", 0)}, {n: ("FAIL", "BA-7.1") for n in names})
    new["cases"][12]["charged"] = ["BA-3.2"]
    found = _gate.diff(old, new)
    short = found.render().splitlines()
    assert short[:2] == ["regressions: 14", "  BA-7.1: PASS -> FAIL: BA-7.1 detail"]
    assert [line.split(":")[0] for line in short[2:13]] == [
        f"  case golden c{i:02}" for i in (*range(10), 12)
    ]
    assert short[13] == (
        "  ... and 2 more cases of BA-7.1 (`batchapply-conformance diff OLD NEW --all` lists every one)"
    )
    assert short[-1] == "diff: 14 regressions, 0 improvements; REGRESSED"
    assert sum(line.startswith("  case ") for line in found.render(None).splitlines()) == 13


def test_diff_against_a_narrowed_run_says_in_one_line_what_it_did_not_run() -> None:
    """A run narrowed by --clause, compared with a full baseline: no regression, and one line,
    not one per case, for the clauses and cases it does not have."""
    from batchapply_conformance import _gate

    old = _report(
        {"BA-1.1": ("PASS", 0), "BA-3.2": ("FAIL", 0)}, {f"golden c{i}": ("PASS", "") for i in range(30)}
    )
    new = _report({"BA-3.2": ("FAIL", 0)}, {})
    found = _gate.diff(old, new)
    assert found.exit_code == 0 and found.render().splitlines() == [
        "regressions: 0",
        "improvements: 0",
        "other changes: 31",
        "  ... and 31 clauses or cases of OLD that NEW does not have (--clause narrows a run; "
        "`batchapply-conformance diff OLD NEW --all` lists them)",
        "diff: 0 regressions, 0 improvements; no regression",
    ]
    assert found.render(None).splitlines()[3:5] == [
        "  BA-1.1: PASS -> absent",
        "  case golden c0: PASS -> absent",
    ]


def test_diff_refuses_what_is_not_a_report(tmp_path: pathlib.Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    done = console("diff", str(tmp_path / "x.json"), str(tmp_path / "x.json"))
    assert done.returncode == 2 and "not a batchapply-conformance report" in done.stderr


def test_the_shipped_expectation_files_name_known_ids(flax_expected: dict[str, str]) -> None:
    assert flax_expected and all(reason for reason in flax_expected.values())


# ---- docs: the samples and the ecosystem matrix come from runs -----------------------------------

ROOT = TESTS.parent


def _load(path: pathlib.Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_samples_come_from_a_run() -> None:
    samples = _load(ROOT / "docs" / "_samples.py")
    stale = [s for page in samples.PAGES for s in samples.regenerate(ROOT / "docs" / page, check=True)]
    assert not stale, f"stale samples {stale}: run `python docs/_samples.py`"


def _ecosystem() -> dict[str, tuple[int, dict[str, int], set[str]]]:
    """target -> (exit status, PASS/FAIL/N/A counts, FAIL clauses), as docs/ecosystem.md shows them."""
    import re

    text = (ROOT / "docs" / "ecosystem.md").read_text()
    rows = re.findall(r"^\| (.+?) \| `(.+?)` \| (\d) \| (\d+) \| (\d+) \| (\d+) \|", text, re.M)
    found = {}
    for label, target, code, passed, failed, na in rows:
        section = text.split(f"\n## {label}\n", 1)[1].split("\n## ", 1)[0]
        counts = {"PASS": int(passed), "FAIL": int(failed), "N/A": int(na)}
        found[target] = (int(code), counts, set(re.findall(r"^- \*\*(BA-[\d.]+)\*\*", section, re.M)))
    return found


def test_each_shipped_expectation_file_lists_exactly_its_rows_fails() -> None:
    """The files that ship with the kit (`--expect flax.linen`, `--expect haiku`, ...) name
    exactly the FAIL clauses of the last full run of their implementation, as docs/ecosystem.md
    records it (the matrix script regenerates both from runs): no run here."""
    from batchapply_conformance import _gate
    from batchapply_conformance.adapters import matrix

    rows = {expect: target for _, target, expect in matrix.ROWS if expect}
    assert sorted(rows) == sorted(p.stem for p in _gate.SHIPPED.glob("*.txt"))
    for expect, target in rows.items():
        listed = set(_gate.read_expectations(_gate.SHIPPED / f"{expect}.txt", set()))
        assert listed == _ecosystem()[target][2], expect


FAST_ROWS = ["batchapply_conformance.adapters.stoix:BatchApply"]


@pytest.mark.parametrize("target", FAST_ROWS)
def test_the_ecosystem_matrix_holds_for_the_fast_rows(tmp_path: pathlib.Path, target: str) -> None:
    code, out, report = run_json(tmp_path, target)
    counts = {status: report["summary"][status] for status in ("PASS", "FAIL", "N/A")}
    failing = {c["clause"] for c in report["clauses"] if c["status"] == "FAIL"}
    assert (code, counts, failing) == _ecosystem()[target], out


def test_the_ecosystem_page_is_the_scripts() -> None:
    """docs/ecosystem.md's prose is what the script writes, with the date of its run (issue 27)."""
    import re

    from batchapply_conformance.adapters import matrix

    text = (ROOT / "docs" / "ecosystem.md").read_text()
    (date,) = re.findall(r"run on\s+(\d{4}-\d{2}-\d{2})\.", text)
    assert text.startswith(matrix.markdown([], date).rstrip("\n") + "\n"), "run the command the page names"


# mylib.BatchApply is flax.linen's with BA-2.2 fixed, and without SPEC section 9's helpers next
# to it (their clauses are N/A there, as is BA-2.6's audit of a class's attributes).
NOT_MYLIBS = {"BA-2.2", "BA-2.6", "BA-9.1", "BA-9.2", "BA-9.3", "BA-9.4", "BA-10.8"}


def test_the_gating_examples_expectations_follow_flax_linens(flax_expected: dict[str, str]) -> None:
    """The example's file is flax.linen's shipped one, less what mylib fixes or lacks: a line
    added to flax.linen.txt (a new check of the kit) goes into the example's file too, or its
    CI job, run in full, exits 1 on an unexpected FAIL."""
    from batchapply_conformance import _gate

    example = _gate.read_expectations(ROOT / "examples" / "gating" / "conformance-expect.txt", set())
    assert sorted(example, key=_spec_key) == sorted(set(flax_expected) - NOT_MYLIBS, key=_spec_key)
    assert all(example[k] == flax_expected[k] for k in example), "the same reason, one line each"


def _spec_key(clause_id: str) -> tuple[int, ...]:
    return tuple(map(int, clause_id[3:].split(".")))


def test_the_gating_example_runs(tmp_path: pathlib.Path) -> None:
    import shutil

    project = tmp_path / "gating"
    shutil.copytree(ROOT / "examples" / "gating", project)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ["PATH"]]),
        "JAX_PLATFORMS": "cpu",
    }
    narrow = ["--clause", "BA-2.2", "--clause", "BA-3.2", "--clause", "BA-6.2"]
    first = subprocess.run(
        ["sh", "ci.sh", *narrow], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stdout + first.stderr
    (project / "report.json").rename(project / "baseline.json")
    second = subprocess.run(
        ["sh", "ci.sh", *narrow], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "diff: 0 regressions" in second.stdout


def test_a_worker_whose_checks_differ_from_the_runners_judges_nothing() -> None:
    """The runner asks for a check by index and name; a worker whose list differs (the kit's files
    changed between the two imports) answers NOT RUN, never another check's outcome."""
    from batchapply_conformance import _worker
    from batchapply_conformance._checks import Check, Outcome

    state = {"checks": [Check(name="golden a", clauses=("BA-5.4",), run=lambda t: Outcome("pass"))]}
    for message in [("run", 0, "golden b"), ("run", 1, "golden a")]:
        kind, outcome = _worker._answer(message, state)
        assert (
            kind == "outcome" and outcome.status == "not_run" and "changed during the run" in outcome.detail
        )
