"""The conformance kit: check any BatchApply implementation against SPEC.md, clause by clause.

From the shell: ``batchapply-conformance flax.linen:BatchApply`` (or
``python -m batchapply_conformance``). From Python::

    report = run("batchapply:BatchApply", profile="dev")
    assert report.conforms, render(report)

From another project's pytest suite, one test per clause::

    @parametrize_with_checks("mylib:BatchApply", expected_failures={"BA-3.2": "known"})
    def test_conformance(clause_check):
        clause_check()
"""

from batchapply_conformance._checks import Target as Target
from batchapply_conformance._checks import TargetError as TargetError
from batchapply_conformance._cli import main as main
from batchapply_conformance._pytest import parametrize_with_checks as parametrize_with_checks
from batchapply_conformance._run import ClauseResult as ClauseResult
from batchapply_conformance._run import Report as Report
from batchapply_conformance._run import render as render
from batchapply_conformance._run import run as run

__all__ = [
    "ClauseResult",
    "Report",
    "Target",
    "TargetError",
    "main",
    "parametrize_with_checks",
    "render",
    "run",
]
