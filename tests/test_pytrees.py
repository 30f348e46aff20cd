"""Containers of SPEC BA-1.3 beyond dict/list/tuple: OrderedDict, defaultdict, custom nodes, deep nesting."""

from __future__ import annotations

import collections
import re
import types
from typing import Any

import jax
import numpy as np
import pytest

import batchapply_reference
from batchapply_conformance import nodes


def x(*shape: int) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def jax_paths(tree: Any, prefix: str) -> list[str]:
    return [prefix + jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def calls_of(lib: types.ModuleType, *args: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
    """The result of an identity BatchApply and what f received."""
    seen: list[Any] = []

    def f(*a: Any, **k: Any) -> Any:
        seen.append((a, k))
        return a, k

    return lib.BatchApply(f)(*args, **kwargs), seen


@pytest.mark.spec("BA-1.3")
@pytest.mark.parametrize("node_type", nodes.NODE_TYPES, ids=lambda t: t.__name__)
def test_custom_nodes_are_containers(lib: types.ModuleType, node_type: Any) -> None:
    tree: Any = node_type(x(2, 3, 4), [x(2, 3), "label"])
    (out, _), seen = calls_of(lib, tree)
    merged: Any = seen[0][0][0]
    assert type(merged) is node_type
    assert type(out[0]) is node_type
    assert (merged.a.shape, merged.b[0].shape, merged.b[1]) == ((6, 4), (6,), "label")
    assert out[0].a.shape == (2, 3, 4)
    np.testing.assert_array_equal(np.asarray(out[0].b[0]), tree.b[0])


@pytest.mark.spec("BA-1.3")
@pytest.mark.parametrize("node_type", nodes.NODE_TYPES, ids=lambda t: t.__name__)
def test_custom_node_paths_are_keystr(node_type: Any) -> None:
    tree = {"n": node_type(x(2, 3), [x(2, 3)])}
    found = [path for path, _, _ in batchapply_reference._tree.leaves_with_paths(tree, 0, "args")]
    assert found == jax_paths(tree, "args")


@pytest.mark.spec("BA-1.3", "BA-3.2")
@pytest.mark.parametrize("node_type", nodes.NODE_TYPES, ids=lambda t: t.__name__)
def test_errors_name_custom_node_leaves_by_keystr(lib: types.ModuleType, node_type: Any) -> None:
    tree = node_type(x(2, 3), x(3, 2))
    bad = jax_paths((tree,), "args")[1]
    with pytest.raises(ValueError, match=re.escape(f"{bad} has (3, 2)")):
        lib.BatchApply(lambda n: n)(tree)


@pytest.mark.spec("BA-1.3", "BA-4.4")
@pytest.mark.parametrize("node_type", nodes.NODE_TYPES, ids=lambda t: t.__name__)
def test_in_axes_prefix_through_a_custom_node(lib: types.ModuleType, node_type: Any) -> None:
    tree = node_type(x(2, 3, 4), x(5))
    f = lib.BatchApply(lambda n: n.a + n.b[:4], in_axes=(node_type(0, None),))
    np.testing.assert_array_equal(np.asarray(f(tree)), tree.a + tree.b[:4])


@pytest.mark.spec("BA-1.3")
def test_ordered_dict_keeps_insertion_order_defaultdict_sorts(lib: types.ModuleType) -> None:
    tree = {
        "o": collections.OrderedDict([("z", x(2, 3)), ("a", x(2, 3, 1))]),
        "d": collections.defaultdict(list, {"z": x(2, 3), "a": x(2, 3, 1)}),  # type: ignore[arg-type]
    }
    found = [path for path, _, _ in batchapply_reference._tree.leaves_with_paths(tree, 0, "args")]
    assert found == jax_paths(tree, "args")
    (out, _), seen = calls_of(lib, tree)
    assert type(seen[0][0][0]["o"]) is collections.OrderedDict
    assert list(seen[0][0][0]["o"]) == ["z", "a"]
    merged_d = seen[0][0][0]["d"]
    assert type(merged_d) is collections.defaultdict and merged_d.default_factory is list
    assert type(out[0]["d"]) is collections.defaultdict and out[0]["d"]["a"].shape == (2, 3, 1)


@pytest.mark.spec("BA-1.3")
def test_first_leaf_of_an_ordered_dict_sets_the_leading_shape(lib: types.ModuleType) -> None:
    tree = collections.OrderedDict([("z", x(2, 3)), ("a", x(3, 2))])
    with pytest.raises(ValueError, match=re.escape("args[0]['z'] has (2, 3), args[0]['a'] has (3, 2)")):
        lib.BatchApply(lambda t: t)(tree)


@pytest.mark.spec("BA-1.5")
@pytest.mark.parametrize("depth", [500])
def test_deep_nesting(lib: types.ModuleType, depth: int) -> None:
    tree: Any = x(2, 3)
    for i in range(depth):
        tree = [tree] if i % 2 else {"k": tree}
    out = lib.BatchApply(lambda t: t)(tree)
    for i in reversed(range(depth)):
        out = out[0] if i % 2 else out["k"]
    np.testing.assert_array_equal(np.asarray(out), x(2, 3))


@pytest.mark.spec("BA-1.5")
def test_reference_nesting_has_no_depth_limit() -> None:
    tree: Any = x(2, 3)
    for _ in range(20_000):
        tree = (tree,)
    out = batchapply_reference.BatchApply(lambda t: t)(tree)
    assert batchapply_reference._tree.structure(out) == batchapply_reference._tree.structure(tree)


@pytest.mark.spec("BA-1.6")
@pytest.mark.parametrize("leading", [(1024, 1024), (65536, 65536)])
@pytest.mark.parametrize("order", ["C", "counts"])
def test_rows_without_elements_cost_no_work_per_row(
    lib: types.ModuleType, leading: tuple[int, int], order: str
) -> None:
    """Row by row, 2**32 empty rows would take hours; nothing here depends on N."""
    row_order: Any = "C" if order == "C" else (2, 4)
    empty = np.zeros((*leading, 0), np.float32)
    calls, seen = calls_of_rows(lib, row_order, empty, np.zeros((*leading, 3, 0), np.int8))
    out_x, out_y = calls
    assert seen == [((leading[0] * leading[1], 0), (leading[0] * leading[1], 3, 0))]
    assert (out_x.shape, out_x.dtype, out_y.shape, out_y.dtype) == (
        (*leading, 0),
        np.float32,
        (*leading, 3, 0),
        np.int8,
    )
    assert type(lib.split_leading_dim(np.zeros((leading[0] * leading[1], 0)), leading)) is np.ndarray


def calls_of_rows(lib: types.ModuleType, row_order: Any, *args: Any) -> tuple[Any, list[Any]]:
    seen: list[Any] = []

    def f(*merged: Any) -> Any:
        seen.append(tuple(m.shape for m in merged))
        return merged

    return lib.BatchApply(f, row_order=row_order)(*args), seen
