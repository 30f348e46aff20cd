"""Mutation check: the property suite catches deliberate bugs in a copy of batchapply.

Each mutation edits a line or two of a copy of ``impl/batchapply`` (in a temp dir); a
fast subset of the property suite then runs in a subprocess, under the ``dev``-sized
``mutation`` profile, with that copy first on ``PYTHONPATH``, and must fail. The
unmutated copy must pass, so a failure is the mutation's doing. About 1 to 2 minutes
on 2 cores.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROPERTY = ROOT / "tests" / "property"
SUBSET = [
    str(PROPERTY / "test_agreement.py") + "::test_numpy_inputs_agree_with_reference",
    str(PROPERTY / "test_error_parity.py"),
    str(PROPERTY / "test_laws.py") + "::test_identity_returns_the_inputs_unchanged",
]
"""The fast subset: differential agreement on NumPy leaves, error parity, and the identity law
(the jax-input agreement tests of test_agreement.py kill none of these mutants first and take
most of the time: the main suite runs them)."""

# name -> the edits (file in impl/batchapply, line, its mutated replacement)
MUTATIONS: dict[str, list[tuple[str, str, str]]] = {
    "merge_in_fortran_order": [
        (
            "_sharding.py",
            "return x.reshape((math.prod(leading),) + rest)",
            "return x.transpose(tuple(reversed(range(num_dims))) + tuple(range(num_dims, x.ndim)))"
            ".reshape((math.prod(leading),) + rest)",
        ),
        (  # NumPy leaves in C order are reshaped on the plan's fast path
            "_exec_reshape.py",
            "return x.reshape((size,) + tuple(x.shape[n:])) if tuple(x.shape[:n]) == leading else FAILED",
            "return x.transpose(tuple(reversed(range(n))) + tuple(range(n, x.ndim)))"
            ".reshape((size,) + tuple(x.shape[n:])) if tuple(x.shape[:n]) == leading else FAILED",
        ),
    ],
    "no_leading_shape_check": [
        (
            "_exec_reshape.py",
            "if tuple(x.shape[:n]) != leading or (kind(x) == CONCRETE and x.is_deleted()):",
            "if kind(x) == CONCRETE and x.is_deleted():",
        ),
    ],
    "numpy_leaves_to_jax": [
        (
            "_sharding.py",
            "return x.reshape((math.prod(leading),) + rest)",
            "return jax.numpy.asarray(x).reshape((math.prod(leading),) + rest)",
        ),
        (
            "_exec_reshape.py",
            "return x.reshape((size,) + tuple(x.shape[n:])) if tuple(x.shape[:n]) == leading else FAILED",
            "return __import__('jax').numpy.asarray(x).reshape((size,) + tuple(x.shape[n:])) "
            "if tuple(x.shape[:n]) == leading else FAILED",
        ),
    ],
    "split_ignores_out_axes": [
        (
            "_plan.py",
            "selected = None if axes is None else [i for i, axis in enumerate(axes) if axis == 0]",
            "selected = None",
        ),
    ],
    "kwargs_not_merged": [
        (
            "_plan.py",
            "selected = None if type(ba.in_axes) is int else "
            "_selected(ba.in_axes, args, treedef, len(leaves))",
            "selected = list(range(treedef.children()[0].num_leaves)) if type(ba.in_axes) is int "
            "else _selected(ba.in_axes, args, treedef, len(leaves))",
        ),
        ("_plan.py", "kwarg_leaves = list(range(n_arg_leaves, n_leaves))  # BA-4.5", "kwarg_leaves = []"),
    ],
}


def copy_impl(tmp_path: pathlib.Path, mutation: str | None) -> pathlib.Path:
    """A copy of impl/batchapply under ``tmp_path``, with ``mutation`` applied; returns its root."""
    root = tmp_path / "impl"
    shutil.copytree(
        ROOT / "impl" / "batchapply", root / "batchapply", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name, old, new in MUTATIONS[mutation] if mutation is not None else []:
        path = root / "batchapply" / name
        source = path.read_text()
        assert source.count(old) == 1, f"mutation {mutation}: the line to mutate is gone from {name}"
        path.write_text(source.replace(old, new))
    return root


def run_subset(impl_root: pathlib.Path, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """The property subset under the ``mutation`` profile, with ``impl_root`` imported first.

    That profile (tests/conftest.py) is ``dev``-sized (50 examples), derandomized, and does
    not shrink failures.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(impl_root), str(ROOT / "reference"), str(ROOT / "conformance"), str(PROPERTY)]
        ),
        "BATCHAPPLY_HYPOTHESIS_PROFILE": "mutation",
    }
    # One process: it checks that it imports the copy (exit 9 if not: neither a pass nor a
    # test failure), then runs pytest.
    program = (
        "import sys, batchapply, pytest\n"
        "if not batchapply.__file__.startswith(sys.argv[1]):\n"
        "    print('not the copy of batchapply:', batchapply.__file__, file=sys.stderr)\n"
        "    sys.exit(9)\n"
        "sys.exit(pytest.main(sys.argv[2:]))\n"
    )
    command = [sys.executable, "-c", program, str(impl_root), "-x", "-q", f"--rootdir={ROOT}", *SUBSET]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.mutation
def test_unmutated_copy_passes(tmp_path: pathlib.Path) -> None:
    result = run_subset(copy_impl(tmp_path, None), tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.mutation
@pytest.mark.parametrize(
    "mutation",
    [
        pytest.param("merge_in_fortran_order", marks=pytest.mark.spec("BA-5.1")),
        pytest.param("no_leading_shape_check", marks=pytest.mark.spec("BA-3.2")),
        pytest.param("numpy_leaves_to_jax", marks=pytest.mark.spec("BA-5.3")),
        pytest.param("split_ignores_out_axes", marks=pytest.mark.spec("BA-7.4")),
        pytest.param("kwargs_not_merged", marks=pytest.mark.spec("BA-4.5")),
    ],
)
def test_mutant_fails_the_property_suite(tmp_path: pathlib.Path, mutation: str) -> None:
    result = run_subset(copy_impl(tmp_path, mutation), tmp_path)
    # Exit code 1: tests ran and some failed (not 2..4: an import or usage error of the mutant).
    assert result.returncode == 1, (
        f"mutant {mutation} survived:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
    )
