"""Laws that hold for every valid call, checked on both packages where they apply."""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import jax
import numpy as np
import pytest
from comparisons import (
    assert_same_arrays,
    assert_same_result,
    examples,
    identity_out_axes,
    is_exact,
    merged_leaves,
    replace_merged,
    split_array_leaves,
    to_jax,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import batchapply
import batchapply_reference
from batchapply_conformance.functions import FUNCTIONS
from batchapply_conformance.strategies import (
    DTYPES,
    Case,
    batched_arrays,
    cases,
    function_of,
    merged_mask,
    run,
)
from batchapply_reference import _tree

LIBS = pytest.mark.parametrize("lib", [batchapply, batchapply_reference], ids=lambda m: m.__name__)
ROW_INDEPENDENT = sorted(name for name, function in FUNCTIONS.items() if function.row_independent)


def flat(tree: Any) -> list[Any]:
    return [leaf for _, leaf, _ in _tree.leaves_with_paths(tree, None, "")]


@pytest.mark.spec("BA-9.1", "BA-9.2", "BA-5.1", "BA-5.2", "BA-5.3", "BA-7.2")
@LIBS
@settings(max_examples=examples(0.25))
@given(data=st.data(), x=batched_arrays(DTYPES), jax_input=st.booleans())
def test_split_undoes_merge(
    lib: types.ModuleType, data: st.DataObject, x: np.ndarray, jax_input: bool
) -> None:
    num_dims = data.draw(st.integers(1, x.ndim), label="num_dims")
    source = to_jax(x) if jax_input else x
    merged = lib.merge_leading_dims(source, num_dims)
    assert type(merged) is type(source) or (jax_input and isinstance(merged, jax.Array))
    back = lib.split_leading_dim(merged, x.shape[:num_dims])
    assert_same_arrays(back, x, exact=True, where="split(merge(x))")


@pytest.mark.spec("BA-1.2", "BA-5.1", "BA-7.2", "BA-7.4")
@LIBS
@settings(max_examples=examples(0.25))
@given(case=cases(functions=["identity"]))
def test_identity_returns_the_inputs_unchanged(lib: types.ModuleType, case: Case) -> None:
    case = dataclasses.replace(case, out_axes=identity_out_axes(case))
    args, kwargs = run(case, lib)
    assert_same_result((args, kwargs), (case.args, case.kwargs), exact=True)
    flags = flat(merged_mask(case))
    for got, given_leaf, merged in zip(
        flat((args, kwargs)), flat((case.args, case.kwargs)), flags, strict=True
    ):
        if not merged:
            assert got is given_leaf, f"{given_leaf!r} came back as {got!r}"


def unmerged_leaves_reach_f_as_themselves(case: Case, lib: types.ModuleType, args: Any, kwargs: Any) -> None:
    calls: list[tuple[Any, Any]] = []
    f = function_of(case)

    def recording(*a: Any, **k: Any) -> Any:
        calls.append((a, k))
        return f(*a, **k)

    run(case, lib, args, kwargs, f=recording)
    ((got_args, got_kwargs),) = calls
    flags = flat(merged_mask(case))
    for got, given_leaf, merged in zip(
        flat((got_args, got_kwargs)), flat((tuple(args), kwargs)), flags, strict=True
    ):
        if not merged:
            assert got is given_leaf, f"{given_leaf!r} reached f as {got!r}"


@pytest.mark.spec("BA-1.2", "BA-1.4", "BA-6.1")
@LIBS
@settings(max_examples=examples(0.25))
@given(case=cases())
def test_unmerged_leaves_reach_f_as_the_same_objects(lib: types.ModuleType, case: Case) -> None:
    unmerged_leaves_reach_f_as_themselves(case, lib, case.args, case.kwargs)


@pytest.mark.spec("BA-1.2", "BA-1.4")
@settings(max_examples=examples(0.2))
@given(case=cases())
def test_unmerged_jax_leaves_reach_f_as_the_same_objects(case: Case) -> None:
    args, kwargs = to_jax((case.args, case.kwargs))
    unmerged_leaves_reach_f_as_themselves(case, batchapply, args, kwargs)


def snapshot(tree: Any) -> Any:
    """New containers (dicts in their key order) holding copies of the NumPy arrays."""
    if isinstance(tree, np.ndarray):
        return tree.copy()
    if type(tree) is dict:
        return {key: snapshot(value) for key, value in tree.items()}
    if _tree.is_namedtuple(tree):
        return type(tree)(*map(snapshot, tree))
    if type(tree) in (list, tuple):
        return type(tree)(map(snapshot, tree))
    return tree


def assert_unchanged(now: Any, before: Any, where: str) -> None:
    assert type(now) is type(before), where
    if type(before) is dict:
        assert list(now) == list(before), f"{where}: dict keys or their order changed"
        for key in before:
            assert_unchanged(now[key], before[key], f"{where}[{key!r}]")
    elif isinstance(before, (list, tuple)):
        assert len(now) == len(before), f"{where}: length changed"
        for i, (n, b) in enumerate(zip(now, before, strict=True)):
            assert_unchanged(n, b, f"{where}[{i}]")
    elif isinstance(before, np.ndarray):
        assert_same_arrays(now, before, exact=True, where=where)


@pytest.mark.spec("BA-5.5")
@LIBS
@settings(max_examples=examples(0.25))
@given(case=cases())
def test_numpy_inputs_are_never_mutated(lib: types.ModuleType, case: Case) -> None:
    before = snapshot((case.args, case.kwargs))
    run(case, lib)
    assert_unchanged((case.args, case.kwargs), before, "inputs")


@pytest.mark.spec("BA-5.1", "BA-7.2")
@settings(max_examples=examples(0.2))
@given(case=cases(functions=ROW_INDEPENDENT, unmerged_rows=False))
def test_row_independent_f_equals_f_per_example_under_vmap(case: Case) -> None:
    """For a row-independent f, BatchApply(f) equals f on one example at a time.

    "One example" is a batch of one row: the merged leaves of ``f``'s inputs get a
    leading axis of size 1, and the rows of the split outputs are read back from it.
    ``jax.vmap`` nested ``num_dims`` times maps that over the leading shape.
    """
    args, kwargs = to_jax((case.args, case.kwargs))
    expected = split_array_leaves(run(case, batchapply, args, kwargs), case.out_axes)
    f = function_of(case)

    def one_example(*rows: Any) -> list[Any]:
        a, k = replace_merged(case, args, kwargs, [row[None] for row in rows])
        return [leaf[0] for leaf in split_array_leaves(f(*a, **k), case.out_axes)]

    per_example = one_example
    for _ in range(case.num_dims):
        per_example = jax.vmap(per_example)
    actual = per_example(*merged_leaves(case, args, kwargs))
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_same_arrays(a, e, is_exact(case), where=f"split output {i}")
