"""The golden corpus: which calls are pinned. Expected outcomes come from the reference.

Each group becomes one JSON-lines file in tests/golden/. Add a case here, then run
``python -m tests.golden.regenerate``; never edit the .jsonl files by hand.
"""

from __future__ import annotations

import collections
import itertools
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import ml_dtypes
import numpy as np

import batchapply_reference
from batchapply_conformance import golden
from batchapply_conformance._spec import error_table
from batchapply_conformance.golden import GoldenCase, Opaque

Pair = golden.namedtuple_type("Pair", ["first", "second"])
DTYPES = ["bool", "int8", "int16", "int32", "uint8", "uint32", "float16", "bfloat16", "float32", "complex64"]


def array(shape: tuple[int, ...], dtype: str = "int32", start: int = 0) -> np.ndarray:
    """Integer-valued data (exact in every dtype) that differs from element to element."""
    values = (np.arange(math.prod(shape)) + start) % 7
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    return values.astype(np_dtype).reshape(shape)


def floats(shape: tuple[int, ...], dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """Non-integral floating data, to exercise the lossless float encoding."""
    values = np.random.default_rng(seed).normal(size=shape)
    if dtype == "complex64":
        values = values + 1j * np.random.default_rng(seed + 1).normal(size=shape)
    return values.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)


def outcome(spec: dict[str, Any]) -> GoldenCase:
    """Run one case spec on the reference and pin what it did."""
    case = GoldenCase(
        name=re.sub(r"[^0-9A-Za-z._-]+", "", spec["name"]),
        clauses=tuple(spec["clauses"]),
        function=spec.get("function", "identity"),
        num_dims=spec.get("num_dims", 2),
        in_axes=spec.get("in_axes", 0),
        out_axes=spec.get("out_axes", 0),
        args=tuple(spec.get("args", ())),
        kwargs=dict(spec.get("kwargs", {})),
        target=spec.get("target", "BatchApply"),
        row_order=spec.get("row_order", "C"),
        chunk_size=spec.get("chunk_size"),
    )
    try:
        result = golden.replay(case, batchapply_reference)
    except (TypeError, ValueError) as e:
        for row, (type_name, prefix) in error_table().items():
            if type(e).__name__ == type_name and str(e).startswith(prefix.split("{")[0]):
                return _with(case, expected_error={"row": row, "type": type_name, "prefix": prefix})
        raise AssertionError(f"golden case {case.name}: an error that is in no SPEC table row: {e!r}") from e
    return _with(case, expected=result)


def _with(case: GoldenCase, **changes: Any) -> GoldenCase:
    import dataclasses

    return dataclasses.replace(case, **changes)


Spec = dict[str, Any]
GROUPS: dict[str, Callable[[], Iterator[Spec]]] = {}


def group(function: Callable[[], Iterator[Spec]]) -> Callable[[], Iterator[Spec]]:
    GROUPS[function.__name__] = function
    return function


@group
def merge_split() -> Iterator[Spec]:
    leading_shapes = [(3,), (2, 3), (2, 1, 3), (1, 2, 1, 2)]
    for dtype, leading in itertools.product(DTYPES, leading_shapes):
        yield {
            "name": f"identity-{dtype}-leading{'x'.join(map(str, leading))}",
            "clauses": ["BA-5.1", "BA-5.2", "BA-7.2"],
            "num_dims": len(leading),
            "args": [array(leading + (2,), dtype)],
        }
    for leading in [(0,), (0, 3), (2, 0), (0, 0, 2)]:
        yield {
            "name": f"zero-size-leading{'x'.join(map(str, leading))}",
            "clauses": ["BA-5.4"],
            "num_dims": len(leading),
            "args": [array(leading + (3,), "float32")],
        }
    for trailing in [(), (1,), (2, 3), (1, 2, 2)]:
        yield {
            "name": f"trailing-rank{len(trailing)}",
            "clauses": ["BA-5.1", "BA-7.2"],
            "args": [array((2, 3) + trailing)],
        }
    for function, leading in itertools.product(
        ["reverse_rows", "gather_rows", "int_arith"], [(4,), (2, 3), (3, 1, 2), (2, 2, 3)]
    ):
        yield {
            "name": f"{function}-leading{'x'.join(map(str, leading))}",
            "clauses": ["BA-5.1", "BA-7.2", "BA-6.1"],
            "function": function,
            "num_dims": len(leading),
            "args": [array(leading + (2,), "int32")],
        }


@group
def pytrees() -> Iterator[Spec]:
    x = array((2, 3, 2))
    leaves: dict[str, Any] = {
        "str": "label",
        "int": 7,
        "float": 2.5,
        "bool": True,
        "complex": 1 + 2j,
        "object": Opaque("marker"),
        "none": None,
        "numpy-scalar": np.float32(1.5),
        "rank0-array": np.array(3, dtype=np.int16),
        "low-rank-array": array((2,)),
    }
    for name, leaf in leaves.items():
        # identity returns its inputs; an array that was not merged cannot be split
        # back (BA-7.3), so those outputs are returned as they are with out_axes.
        unsplit = ((0, None), 0) if isinstance(leaf, np.ndarray | np.generic) else 0
        yield {
            "name": f"pass-through-{name}",
            "clauses": ["BA-1.1", "BA-1.2", "BA-1.4", "BA-7.4"],
            "args": [x, leaf],
            "out_axes": unsplit,
        }
    # NumPy string arrays are array leaves (BA-1.1): merged and split like any other when
    # their rank allows, passed through when it does not. jnp.asarray refuses them.
    strings = np.array([["a", "bc", "d"], ["e", "f", "gh"]])
    yield {"name": "numpy-str-array-merged", "clauses": ["BA-1.1", "BA-5.1", "BA-7.2"], "args": [x, strings]}
    yield {
        "name": "numpy-str-array-passed-through",
        "clauses": ["BA-1.1", "BA-1.2", "BA-7.4"],
        "args": [x, np.array(["u", "vw"])],
        "out_axes": ((0, None), 0),
    }
    yield {
        "name": "pass-through-none-in-containers",  # (the structure-* cases hold arrays only)
        "clauses": ["BA-1.2", "BA-7.4"],
        "args": [[x, (array((2, 3, 1), start=2), [None, array((2, 3, 4), start=3)])], Pair(x, None)],
    }
    containers: dict[str, Any] = {
        "dict-unsorted-keys": {"zeta": x, "alpha": array((2, 3), start=1), "mid": array((2, 3, 3), start=2)},
        # Arrays only: a None or a string in a structure case would charge a pass-through
        # defect (BA-1.2, the pass-through-* cases) to the structure clauses too.
        "nested-list-tuple": [
            x,
            (array((2, 3, 1), start=2), [array((2, 3), start=6), array((2, 3, 4), start=3)]),
        ],
        "namedtuple": Pair(x, [array((2, 3), start=4), array((2, 3, 1), start=7)]),
        "dict-in-namedtuple": Pair({"b": x, "a": array((2, 3))}, array((2, 3, 2), start=8)),
        "empty-containers": {"list": [], "tuple": (), "dict": {}, "x": x},
    }
    for name, tree in containers.items():
        yield {
            "name": f"structure-{name}",
            "clauses": ["BA-1.3", "BA-1.4", "BA-6.1", "BA-7.1"],
            "args": [tree],
        }
    yield {
        "name": "kwargs-are-merged",
        "clauses": ["BA-1.3", "BA-4.5", "BA-6.1"],
        "args": [x],
        "kwargs": {"mask": array((2, 3), "bool")},
    }
    yield {
        "name": "kwargs-only",
        "clauses": ["BA-1.3", "BA-4.5"],
        "kwargs": {"b": array((2, 3, 1)), "a": array((2, 3), start=5)},
    }
    # Cases pin only what they are about: Python scalars and strings appear in the
    # pass-through cases alone, so that one defect does not fail unrelated clauses.
    for function, clauses in [
        ("named_pieces", ["BA-7.4"]),  # returns a count (int) and names (str)
        ("more_leaves", ["BA-7.4"]),  # returns a label (str)
        ("first_row_leaf", ["BA-7.1", "BA-7.2"]),
        ("concat_features", ["BA-7.1", "BA-7.2"]),
    ]:
        yield {
            "name": f"output-structure-{function}",
            "clauses": clauses,
            "function": function,
            "args": [{"a": x, "b": array((2, 3, 2), start=3)}],
        }
    yield {
        "name": "signature-keywords",
        "clauses": ["BA-2.1", "BA-2.2"],
        "num_dims": 1,
        "args": [array((4, 2))],
    }
    yield {
        "name": "num-dims-numpy-integer",
        "clauses": ["BA-2.2"],
        "num_dims": np.int64(2),
        "args": [array((2, 3, 2))],
    }
    # The leading shape is the first *mergeable* leaf's (BA-3.1), whatever comes before or
    # after it: an implementation that takes the first leaf of any rank (Sonnet 2) or the
    # last leaf it reshaped (TF-Agents' BatchSquash) splits x into (6, 4).
    for name, args in [
        ("leading-shape-not-from-a-low-rank-first-leaf", [array((6,), start=1), array((2, 3, 4))]),
        ("leading-shape-not-from-a-low-rank-last-leaf", [array((2, 3, 4)), array((6,), start=1)]),
    ]:
        yield {"name": name, "clauses": ["BA-3.1", "BA-7.2"], "function": "int_arith", "args": args}
    yield {
        "name": "keyword-named-self-and-f",
        "clauses": ["BA-6.2"],
        "args": [array((2, 3, 2))],
        # Arrays only: a str or int keyword would charge a pass-through defect to BA-6.2.
        "kwargs": {
            "self": array((2, 3)),
            "f": array((2, 3, 2), start=5),
            "args": array((2, 3), start=9),
            "num_dims": array((2, 3, 1), start=3),
        },
    }


@group
def axes() -> Iterator[Spec]:
    x, w = array((2, 3, 4)), array((4, 5), start=1)
    yield {
        "name": "in-axes-tuple-weight",
        "clauses": ["BA-4.3", "BA-4.4"],
        "function": "matmul_weight",
        "in_axes": (0, None),
        "args": [x, w],
    }
    yield {
        "name": "in-axes-list-weight",
        "clauses": ["BA-2.5", "BA-4.3"],
        "function": "matmul_weight",
        "in_axes": [0, None],
        "args": [x, w],
    }
    yield {
        "name": "in-axes-none-kwargs-merged",
        "clauses": ["BA-4.2", "BA-4.5"],
        "in_axes": None,
        "args": [array((2, 3, 1))],
        "kwargs": {"x": x},
    }
    yield {
        "name": "in-axes-zero-explicit",
        "clauses": ["BA-4.1"],
        "in_axes": 0,
        "args": [x, {"k": array((2, 3))}],
    }
    params = {"w": array((2, 3, 4)), "b": array((2, 3, 5), start=2)}
    yield {
        "name": "in-axes-dict-prefix",
        "clauses": ["BA-4.4"],
        "in_axes": ({"w": None, "b": 0},),
        "args": [params],
    }
    yield {
        "name": "in-axes-nested-prefix",
        "clauses": ["BA-4.4"],
        "in_axes": (0, [None, 0]),
        "args": [x, [array((3, 2, 4)), array((2, 3))]],
    }
    yield {
        "name": "in-axes-namedtuple-prefix",
        "clauses": ["BA-4.4"],
        "in_axes": (Pair(0, None),),
        "args": [Pair(x, array((9, 9, 9)))],
    }
    yield {
        "name": "in-axes-none-for-all-but-kwargs",
        "clauses": ["BA-4.2"],
        "in_axes": (None, None),
        "args": [x, w],
        "kwargs": {"y": array((2, 3, 1))},
    }
    # identity returns (args, kwargs): out_axes=(0, None) splits args, returns kwargs as they are.
    yield {
        "name": "out-axes-split-args-only",
        "clauses": ["BA-7.2", "BA-7.4"],
        "out_axes": (0, None),
        "args": [x],
        "kwargs": {"table": array((2, 3, 2))},  # merged (kwargs always are), returned merged
    }
    yield {"name": "out-axes-none", "clauses": ["BA-7.4"], "out_axes": None, "args": [x]}
    yield {
        "name": "out-axes-prefix-dict",
        "clauses": ["BA-7.2", "BA-7.4"],
        "function": "named_pieces",
        "out_axes": {"zeta": 0, "alpha": 0, "mid": None},
        "args": [x, array((2, 3))],
    }
    yield {
        "name": "out-axes-none-for-rank0",
        "clauses": ["BA-7.3", "BA-7.4"],
        "function": "row_counts",
        "out_axes": None,
        "args": [x],
    }


@group
def errors() -> Iterator[Spec]:
    x = array((2, 3, 4))
    yield {"name": "E1-f-not-callable", "clauses": ["BA-2.3", "BA-10.1"], "function": None, "args": [x]}
    for num_dims in [True, 2.0, "2", None]:
        yield {
            "name": f"E2-num-dims-{num_dims!r}",
            "clauses": ["BA-2.2", "BA-10.1"],
            "num_dims": num_dims,
            "args": [x],
        }
    for num_dims in [0, -1]:
        yield {
            "name": f"E3-num-dims-{num_dims}",
            "clauses": ["BA-2.2", "BA-10.1"],
            "num_dims": num_dims,
            "args": [x],
        }
    for where, axes in [("in", (1,)), ("in", (-1,)), ("in", (False,)), ("out", 1), ("out", (0, "x"))]:
        key = f"{where}_axes"
        yield {
            "name": f"E4-{key}-{re.sub(r'[^0-9a-zA-Z-]+', '', repr(axes))}",
            "clauses": ["BA-2.4", "BA-10.1"],
            key: axes,
            "args": [x],
        }
    for in_axes in [{"x": 0}, "0", 0.0]:
        yield {
            "name": f"E5-in-axes-{type(in_axes).__name__}",
            "clauses": ["BA-2.5", "BA-10.1"],
            "in_axes": in_axes,
            "args": [x],
        }
    yield {"name": "E6-in-axes-too-short", "clauses": ["BA-4.3", "BA-10.1"], "in_axes": (0,), "args": [x, x]}
    yield {
        "name": "E6-in-axes-too-long",
        "clauses": ["BA-4.3", "BA-10.1"],
        "in_axes": (0, None, 0),
        "args": [x],
    }
    yield {
        "name": "E7-dict-keys",
        "clauses": ["BA-4.4", "BA-10.1"],
        "in_axes": ({"k": 0},),
        "args": [{"j": x}],
    }
    yield {
        "name": "E7-list-for-tuple",
        "clauses": ["BA-4.4", "BA-10.1"],
        "in_axes": ([0, None],),
        "args": [(x, x)],
    }
    yield {"name": "E8-no-inputs", "clauses": ["BA-3.3", "BA-10.1"], "args": []}
    yield {
        "name": "E8-low-rank-only",
        "clauses": ["BA-3.3", "BA-10.1"],
        "num_dims": 3,
        "args": [array((2, 3)), array((4,))],
    }
    yield {
        "name": "E8-all-unselected",
        "clauses": ["BA-3.3", "BA-4.2", "BA-10.1"],
        "in_axes": None,
        "args": [x],
    }
    yield {
        "name": "E9-transposed-leading",
        "clauses": ["BA-3.1", "BA-3.2", "BA-10.1"],
        "args": [array((2, 3, 4)), array((3, 2, 4))],
    }
    yield {
        "name": "E9-kwarg-disagrees",
        "clauses": ["BA-3.2", "BA-10.1"],
        "args": [x],
        "kwargs": {"y": array((2, 4))},
    }
    yield {
        "name": "E9-nested",
        "clauses": ["BA-3.2", "BA-10.1"],
        "args": [{"a": x, "b": [array((2, 3)), array((1, 3))]}],
    }
    yield {
        "name": "E10-rank0-output",
        "clauses": ["BA-7.3", "BA-10.1", "BA-10.2"],
        "function": "row_counts",
        "args": [x],
    }
    yield {
        "name": "E10-wrong-leading-size",
        "clauses": ["BA-7.3", "BA-10.1"],
        "function": "pad_row",
        "args": [x],
    }
    yield {
        "name": "E11-out-axes-not-prefix",
        "clauses": ["BA-7.5", "BA-10.1"],
        "out_axes": {"a": 0},
        "args": [x],
    }
    yield {
        "name": "E12-split-non-array",
        "clauses": ["BA-9.2", "BA-10.1"],
        "target": "split_leading_dim",
        "args": ["abc", (2, 3)],
    }
    yield {
        "name": "E13-split-wrong-size",
        "clauses": ["BA-9.2", "BA-10.1"],
        "target": "split_leading_dim",
        "args": [array((5, 2)), (2, 3)],
    }
    yield {
        "name": "E13-split-minus-one-not-inferable",
        "clauses": ["BA-9.2", "BA-10.1"],
        "target": "split_leading_dim",
        "args": [array((6, 4)), (-1, 4)],
    }
    yield {
        "name": "E13-split-two-minus-ones",
        "clauses": ["BA-9.2", "BA-10.1"],
        "target": "split_leading_dim",
        "args": [array((6, 4)), (-1, -1)],
    }
    yield {
        "name": "E13-split-rank0",
        "clauses": ["BA-9.2", "BA-10.1"],
        "target": "split_leading_dim",
        "args": [np.int32(4), (4,)],
    }
    # issue 11, findings 3 and 13: inputs that cannot be merged, named by their path
    matrix = np.matrix(array((2, 3)))
    yield {"name": "E26-merged-matrix", "clauses": ["BA-5.1", "BA-10.1"], "args": [{"m": matrix}]}
    yield {"name": "E27-mixed-key-dict", "clauses": ["BA-10.1"], "args": [[{1: x, "a": x}]]}
    yield {
        "name": "E29-split-matrix",
        "clauses": ["BA-9.2", "BA-10.1"],
        "target": "split_leading_dim",
        "args": [np.matrix(array((4, 1))), (2, 2)],
    }
    yield {
        "name": "matrix-not-merged-passes-through",
        "clauses": ["BA-1.2"],
        "num_dims": 3,
        "out_axes": ((0, None), {}),  # identity returns the matrix too: not split either
        "args": [array((2, 2, 2)), matrix],
    }


@group
def inputs_untouched() -> Iterator[Spec]:
    """Every case checks that replaying leaves its inputs equal; these pin it on purpose."""
    tree = {"x": array((2, 3, 2)), "rest": [array((2, 3), "float32"), Pair(array((2, 3, 1)), array((2, 3)))]}
    for function in ["identity", "int_arith", "reverse_rows", "gather_rows", "concat_features"]:
        yield {"name": f"untouched-{function}", "clauses": ["BA-5.5"], "function": function, "args": [tree]}


@group
def haiku_defects() -> Iterator[Spec]:
    """Each defect of hk.BatchApply / flax.linen.BatchApply, pinned."""
    x = array((2, 3, 4))
    yield {
        "name": "defect-mismatched-leading-shapes",
        "clauses": ["BA-3.2"],
        "args": [array((2, 3, 4)), array((3, 2, 4))],
    }
    yield {
        "name": "defect-weight-matrix-merged",
        "clauses": ["BA-3.2"],
        "function": "matmul_weight",
        "args": [x, array((4, 5))],
    }
    yield {
        "name": "defect-weight-matrix-fixed",
        "clauses": ["BA-4.4"],
        "function": "matmul_weight",
        "in_axes": (0, None),
        "args": [x, array((4, 5))],
    }
    # identity returns the string too (BA-7.4): the kit tells which side raised (_diagnose).
    yield {"name": "defect-string-leaf", "clauses": ["BA-1.1", "BA-1.2", "BA-7.4"], "args": [x, "abc"]}
    yield {"name": "defect-num-dims-zero", "clauses": ["BA-2.2"], "num_dims": 0, "args": [x]}
    yield {"name": "defect-rank0-output", "clauses": ["BA-7.3"], "function": "row_counts", "args": [x]}
    yield {"name": "defect-zero-size-leading", "clauses": ["BA-5.4"], "args": [array((0, 3, 4))]}
    yield {"name": "defect-numpy-inputs", "clauses": ["BA-5.3"], "args": [array((2, 3, 4), "float32")]}


@group
def floating() -> Iterator[Spec]:
    functions = ["tanh", "softmax", "feature_sum", "batch_mean"]
    for function, dtype, leading in itertools.product(
        functions, ["float16", "bfloat16", "float32", "complex64"], [(2, 3), (4,), (1, 2, 2)]
    ):
        if dtype == "complex64" and function == "softmax":
            continue
        yield {
            "name": f"{function}-{dtype}-leading{'x'.join(map(str, leading))}",
            "clauses": ["BA-5.1", "BA-5.2", "BA-7.2"],
            "function": function,
            "num_dims": len(leading),
            "args": [floats(leading + (3,), dtype)],
        }
    for dtype in ["float16", "bfloat16", "float32"]:
        yield {
            "name": f"matmul-{dtype}",
            "clauses": ["BA-4.4", "BA-5.2"],
            "function": "matmul_weight",
            "in_axes": (0, None),
            "args": [floats((2, 3, 4), dtype), floats((4, 2), dtype, seed=1)],
        }


@group
def helpers() -> Iterator[Spec]:
    for shape, num_dims in [((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), 3), ((2, 3), 3), ((0, 2), 2)]:
        yield {
            "name": f"merge_leading_dims-{'x'.join(map(str, shape))}-n{num_dims}",
            "clauses": ["BA-9.1"],
            "target": "merge_leading_dims",
            "args": [array(shape), num_dims],
        }
    for value in ["abc", 2.5, None, Opaque("thing")]:
        yield {
            "name": f"merge_leading_dims-pass-{type(value).__name__}",
            "clauses": ["BA-9.1"],
            "target": "merge_leading_dims",
            "args": [value, 1],
        }
    for shape, to_dim in [
        ((6, 4), (2, 3)),
        ((6,), (3, 2)),
        ((0, 2), (0, 5)),
        ((4, 1), (4,)),
        ((6, 4), (-1, 3)),  # one -1, inferred from the leading size as numpy.reshape does
        ((6, 4), (2, -1)),
        ((0, 2), (-1, 5)),
    ]:
        yield {
            "name": f"split_leading_dim-{'x'.join(map(str, shape))}-to{'x'.join(map(str, to_dim))}",
            "clauses": ["BA-9.2"],
            "target": "split_leading_dim",
            "args": [array(shape), to_dim],
        }
    for value, num_dims in [
        (array((2, 3)), 2),
        (array((2,)), 2),
        (np.float32(1), 0),
        ("abc", 0),
        (1.0, 0),
        ([1, 2], 1),
    ]:
        rank = np.ndim(value) if isinstance(value, (np.ndarray, np.generic)) else "na"
        yield {
            "name": f"ndim_at_least-{type(value).__name__}-{rank}-n{num_dims}",
            "clauses": ["BA-9.3"],
            "target": "ndim_at_least",
            "args": [value, num_dims],
        }
    yield {
        "name": "arbitrary_mergeable_leaf-args-first",
        "clauses": ["BA-9.4"],
        "target": "arbitrary_mergeable_leaf",
        "args": [2, ("s", array((2,)), {"k": array((2, 3))}), {"b": array((4, 5))}],
    }
    yield {
        "name": "arbitrary_mergeable_leaf-kwargs",
        "clauses": ["BA-9.4"],
        "target": "arbitrary_mergeable_leaf",
        "args": [2, ("s",), {"z": array((2,)), "b": array((4, 5))}],
    }
    yield {
        "name": "arbitrary_mergeable_leaf-none",
        "clauses": ["BA-9.4"],
        "target": "arbitrary_mergeable_leaf",
        "args": [3, (array((2, 3)),), {}],
    }


def build() -> dict[str, list[GoldenCase]]:
    """Every group's cases with the reference's outcomes: file stem -> cases."""
    corpus = {name: [outcome(spec) for spec in make()] for name, make in GROUPS.items()}
    names = [case.name for cases in corpus.values() for case in cases]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    assert not duplicated, f"golden case names must be unique: {duplicated}"
    return corpus


@group
def chunking() -> Iterator[Spec]:
    """SPEC section 13: chunks of merged rows, their concatenation, and the chunking errors."""
    x = array((3, 4, 2))  # 12 merged rows
    for function, chunk_size in itertools.product(
        ["identity", "int_arith", "reverse_rows", "concat_features"], [1, 5, 12, 100]
    ):
        if function == "identity":  # identity returns (args, kwargs): only array leaves may be chunked
            function = "first_row_leaf"
        yield {
            "name": f"chunk-{function}-size{chunk_size}",
            "clauses": ["BA-13.2", "BA-13.3", "BA-13.4", "BA-13.5", "BA-13.8"],
            "function": function,
            "chunk_size": chunk_size,
            "args": [x],
        }
    yield {
        "name": "chunk-batch-mean-per-chunk",
        "clauses": ["BA-13.5"],
        "function": "batch_mean",
        "chunk_size": 5,
        "args": [floats((3, 4, 2))],
    }
    yield {
        "name": "chunk-zero-rows",
        "clauses": ["BA-13.2"],
        "function": "first_row_leaf",
        "chunk_size": 4,
        "args": [array((0, 4, 2))],
    }
    yield {
        "name": "chunk-with-row-order",
        "clauses": ["BA-13.3", "BA-14.3", "BA-14.9"],
        "function": "reverse_rows",
        "chunk_size": 2,
        "row_order": (1, 2),
        "args": [array((2, 4, 2))],
    }
    yield {  # 3 shards of 4 local rows, 2 per chunk from each: 2 chunks of 6 rows
        "name": "chunk-local-rows-of-every-shard",
        "clauses": ["BA-14.9", "BA-13.5"],
        "function": "reverse_rows",
        "chunk_size": 6,
        "row_order": (2, 3),
        "args": [array((4, 6, 1))],
    }
    yield {  # 2 shards of 5 local rows, 2 per chunk: chunks of 4, 4 and the last 2 rows
        "name": "chunk-local-rows-with-a-last-chunk",
        "clauses": ["BA-14.9", "BA-13.4"],
        "function": "reverse_rows",
        "chunk_size": 4,
        "row_order": (1, 2),
        "args": [array((1, 10, 1))],
    }
    yield {
        "name": "E24-chunk-size-not-a-multiple-of-the-shards",
        "clauses": ["BA-14.9", "BA-10.1"],
        "chunk_size": 3,
        "row_order": (1, 2),
        "args": [array((2, 4, 2))],
    }
    for bad, row in [(True, "E14"), (2.0, "E14"), ("3", "E14"), (0, "E15"), (-2, "E15")]:
        yield {
            "name": f"{row}-chunk-size-{bad!r}",
            "clauses": ["BA-13.1", "BA-10.1"],
            "chunk_size": bad,
            "args": [x],
        }
    yield {
        "name": "E16-chunk-non-array-output",
        "clauses": ["BA-13.6", "BA-10.1"],
        "function": "more_leaves",
        "chunk_size": 5,
        "args": [x],
    }
    yield {
        "name": "E10-chunk-rank0-output",
        "clauses": ["BA-13.6", "BA-10.1"],
        "function": "row_counts",
        "chunk_size": 5,
        "args": [x],
    }
    yield {
        "name": "E17-chunks-disagree",
        "clauses": ["BA-13.7", "BA-10.1"],
        "function": "row_onehot",
        "chunk_size": 5,
        "args": [x],
    }


@group
def row_order() -> Iterator[Spec]:
    """SPEC section 14 on one device: the shard-major order given the counts."""
    for function, (leading, counts) in itertools.product(
        ["identity", "reverse_rows", "gather_rows"],
        [((4,), (2,)), ((2, 4), (1, 2)), ((4, 6), (2, 3)), ((2, 3, 4), (1, 3, 2)), ((2, 0), (2, 1))],
    ):
        shape, shards = "x".join(map(str, leading)), "x".join(map(str, counts))
        yield {
            "name": f"row-order-{function}-leading{shape}-counts{shards}",
            "clauses": ["BA-14.1", "BA-14.2", "BA-14.3"],
            "function": function,
            "num_dims": len(leading),
            "row_order": counts,
            "args": [array(leading + (2,), "int32")],
        }
    for counts in [(1, 1), (3, 1)]:
        yield {
            "name": f"row-order-c-order-counts{'x'.join(map(str, counts))}",
            "clauses": ["BA-14.2"],
            "function": "reverse_rows",
            "row_order": counts,
            "args": [array((3, 4, 2), "int32")],
        }
    yield {
        "name": "row-order-as-a-list",
        "clauses": ["BA-14.1"],
        "function": "reverse_rows",
        "row_order": [1, 2],
        "args": [array((2, 4, 2), "int32")],
    }
    yield {
        "name": "row-order-two-leaves-one-order",
        "clauses": ["BA-14.3"],
        "function": "concat_features",
        "row_order": (1, 2),
        "args": [array((2, 4, 2), "int32"), array((2, 4, 3), "int32", start=3)],
    }
    for function in ["identity", "reverse_rows"]:
        yield {
            "name": f"row-order-shard-major-numpy-{function}",
            "clauses": ["BA-14.4"],
            "function": function,
            "row_order": "shard_major",
            "args": [array((2, 4, 2), "float32")],
        }
    for bad in ["F", (1,), (0, 2), (True, 2), (1.0, 2)]:
        yield {
            "name": f"E20-row-order-{bad!r}",
            "clauses": ["BA-14.1", "BA-10.1"],
            "row_order": bad,
            "args": [array((2, 4, 2))],
        }
    yield {
        "name": "E21-count-does-not-divide",
        "clauses": ["BA-14.3", "BA-10.1"],
        "row_order": (1, 3),
        "args": [array((2, 4, 2))],
    }


def _masked(shape: tuple[int, ...], dtype: str = "int32", every: int = 3) -> np.ma.MaskedArray:
    """``array(shape, dtype)`` with every ``every``-th element masked."""
    return np.ma.MaskedArray(
        array(shape, dtype), mask=np.arange(math.prod(shape)).reshape(shape) % every == 0
    )


def _nested(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` containers, dicts and lists by turns."""
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"k": leaf}
    return leaf


@group
def input_classes() -> Iterator[Spec]:
    """Inputs found by the adversarial review (issue 11): masked arrays, OrderedDict,
    defaultdict, deep nesting, rows without elements (BA-1.3, BA-1.5, BA-1.6, BA-5.7)."""
    defaultdict: Any = collections.defaultdict  # typed loosely: factories of several types
    x, y = array((2, 3, 2)), array((2, 3), start=3)
    trees: dict[str, Any] = {
        "ordereddict": collections.OrderedDict([("zeta", x), ("alpha", y), ("mid", array((2, 3), start=4))]),
        "defaultdict": defaultdict(list, {"zeta": x, "alpha": y}),
        "defaultdict-in-ordereddict": collections.OrderedDict(
            [("z", defaultdict(None, {"b": y, "a": x})), ("a", [x])]
        ),
    }
    for name, tree in trees.items():
        for function in ["identity", "int_arith"]:
            yield {
                "name": f"structure-{name}-{function}",
                "clauses": ["BA-1.3", "BA-1.4", "BA-6.1", "BA-7.1"],
                "function": function,
                "args": [tree],
            }
    yield {
        "name": "E9-ordereddict-first-key-sets-the-leading-shape",
        "clauses": ["BA-3.1", "BA-3.2", "BA-10.1"],  # the first leaf in insertion order (BA-1.3)
        "args": [collections.OrderedDict([("zeta", array((3, 2))), ("alpha", y)])],
    }
    yield {
        "name": "E7-ordereddict-in-axes-in-another-key-order",
        "clauses": ["BA-1.3", "BA-4.4", "BA-10.1"],
        "in_axes": (collections.OrderedDict([("alpha", 0), ("zeta", None)]),),
        "args": [collections.OrderedDict([("zeta", x), ("alpha", y)])],
    }
    yield {
        "name": "E7-defaultdict-in-axes-with-another-factory",
        "clauses": ["BA-1.3", "BA-4.4", "BA-10.1"],
        "in_axes": (defaultdict(dict, {"alpha": 0, "zeta": None}),),
        "args": [defaultdict(list, {"zeta": x, "alpha": y})],
    }
    yield {
        "name": "in-axes-defaultdict-prefix",
        "clauses": ["BA-1.3", "BA-4.4"],
        "function": "int_arith",
        "in_axes": (defaultdict(list, {"alpha": 0, "zeta": None}),),
        "out_axes": ((defaultdict(list, {"alpha": 0, "zeta": None}),), 0),
        "args": [defaultdict(list, {"zeta": array((5,)), "alpha": y})],
    }
    yield {
        "name": "deep-nesting-300",
        "clauses": ["BA-1.3", "BA-1.5"],
        "function": "int_arith",
        "args": [_nested(300, x)],
    }
    for leading in [(1024, 1024), (65536, 65536)]:
        yield {
            "name": f"rows-without-elements-{'x'.join(map(str, leading))}x0",
            # N is not 0 (BA-5.4): only the rows' lack of elements is tested (BA-1.6).
            "clauses": ["BA-1.6"],
            "args": [array(leading + (0,), "float32"), array(leading + (2, 0), "int8")],
        }
    yield {
        "name": "rows-without-elements-row-order",
        # An output without elements cannot show the row order (BA-14.2): no work per row only.
        "clauses": ["BA-1.6"],
        "row_order": (4, 2),
        "args": [array((1024, 1024, 0), "float32")],
    }
    for function in ["identity", "int_arith", "feature_sum", "reverse_rows"]:
        yield {
            "name": f"masked-array-{function}",
            "clauses": ["BA-5.7", "BA-5.2", "BA-7.2"],
            "function": function,
            "args": [_masked((2, 3, 4), "float32" if function == "feature_sum" else "int32")],
        }
    yield {
        "name": "masked-array-without-a-mask",
        "clauses": ["BA-5.7"],
        "args": [np.ma.MaskedArray(array((2, 3, 2)))],
    }
    yield {
        "name": "masked-array-with-plain-arrays",
        "clauses": ["BA-5.7", "BA-1.3"],
        "function": "int_arith",
        "args": [{"m": _masked((2, 3, 2)), "x": x}],
    }
    yield {
        "name": "masked-array-chunked",
        "clauses": ["BA-5.7", "BA-13.3", "BA-13.8"],
        "function": "feature_sum",
        "chunk_size": 4,
        "args": [_masked((2, 3, 4), "float32")],
    }
    yield {
        "name": "masked-array-row-order",
        "clauses": ["BA-5.7", "BA-14.2"],
        "function": "int_arith",
        "row_order": (2, 3),
        "args": [_masked((2, 3, 2))],
    }
    yield {
        "name": "masked-array-merge_leading_dims",
        "clauses": ["BA-5.7", "BA-9.1"],
        "target": "merge_leading_dims",
        "args": [_masked((2, 3, 2)), 2],
    }
    yield {
        "name": "masked-array-split_leading_dim",
        "clauses": ["BA-5.7", "BA-9.2"],
        "target": "split_leading_dim",
        "args": [_masked((6, 2)), (2, 3)],
    }


def _deep_list(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` lists."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


@group
def error_order() -> Iterator[Spec]:
    """SPEC BA-10.3 to BA-10.6: when several rows apply, the first in the order is raised."""
    x, y = array((2, 3, 4)), array((2, 4, 4))
    bad: dict[Any, Any] = {1: x, "a": x}  # keys that cannot be sorted: E27 (BA-1.7)
    matrix = np.matrix(array((2, 2)))
    # Construction (BA-10.3): E1 before E2, whatever checks an implementation makes later.
    yield {
        "name": "order-E1-before-E2",
        "clauses": ["BA-10.3"],
        "function": None,
        "num_dims": 2.5,
        "args": [x],
    }
    # E27 in an axes tree comes before E4 in it.
    yield {
        "name": "order-E27-before-E4-in-out_axes",
        "clauses": ["BA-1.7", "BA-10.3"],
        "out_axes": {1: 5, "a": 0},
        "args": [x],
    }
    yield {
        "name": "order-E27-in-in_axes",
        "clauses": ["BA-1.7", "BA-10.3"],
        "in_axes": ({1: 0, "a": None},),
        "args": [x],
    }
    yield {"name": "order-E5-before-E4", "clauses": ["BA-10.3"], "in_axes": "x", "out_axes": 1, "args": [x]}
    yield {"name": "order-E4-before-E15", "clauses": ["BA-10.3"], "out_axes": 1, "chunk_size": 0, "args": [x]}
    yield {
        "name": "order-E15-before-E20",
        "clauses": ["BA-10.3"],
        "chunk_size": 0,
        "row_order": "F",
        "args": [x],
    }
    # At call time, before f (BA-10.4).
    yield {"name": "order-E27-before-E6", "clauses": ["BA-10.4"], "in_axes": (0,), "args": [x, bad]}
    yield {
        "name": "order-E27-before-E7",
        "clauses": ["BA-10.4"],
        "in_axes": ({"b": 0}, 0),
        "args": [{"a": x}, bad],
    }
    yield {"name": "order-E6-before-E7", "clauses": ["BA-10.4"], "in_axes": ({"k": 0},), "args": [x, x]}
    yield {
        "name": "order-E7-before-E8",
        "clauses": ["BA-10.4"],
        "in_axes": ({"k": 0},),
        "args": [array((3,))],
    }
    yield {
        "name": "order-E26-before-E9",
        "clauses": ["BA-10.4", "BA-5.8"],
        "args": [x, {"m": np.matrix(array((3, 2)))}],
    }
    yield {"name": "order-E9-before-E21", "clauses": ["BA-10.4"], "row_order": (1, 3), "args": [x, y]}
    yield {
        "name": "order-E9-before-E24",
        "clauses": ["BA-10.4"],
        "row_order": (1, 3),
        "chunk_size": 4,
        "args": [x, y],
    }
    yield {
        "name": "order-E21-before-E24",
        "clauses": ["BA-10.4"],
        "row_order": (1, 2),
        "chunk_size": 3,
        "args": [x],
    }
    # After f, without chunk_size (BA-10.5): identity returns its arguments.
    three = array((2, 2, 2))
    yield {
        "name": "order-E11-before-E26-output",
        "clauses": ["BA-10.5"],
        "num_dims": 3,
        "out_axes": (0, 0, 0),
        "args": [three, matrix],
    }
    yield {
        "name": "order-E26-before-E10-output",
        "clauses": ["BA-10.5", "BA-7.7"],
        "num_dims": 3,
        "args": [three, matrix],
    }
    yield {
        "name": "matrix-output-not-split-passes-through",
        "clauses": ["BA-7.7", "BA-7.4"],
        "num_dims": 3,
        "out_axes": ((0, None), {}),
        "args": [three, matrix],
    }
    # After each chunk's f (BA-10.6).
    yield {
        "name": "order-E11-before-E16-chunked",
        "clauses": ["BA-10.6"],
        "num_dims": 3,
        "chunk_size": 4,
        "out_axes": (0, None, 0),
        "args": [three, matrix],
    }
    yield {
        "name": "order-E16-before-E26-chunked",
        "clauses": ["BA-10.6"],
        "num_dims": 3,
        "chunk_size": 4,
        "out_axes": ((0, None), {}),
        "args": [three, matrix],
    }
    yield {
        "name": "order-E26-before-E10-chunked",
        "clauses": ["BA-10.6", "BA-7.7"],
        "num_dims": 3,
        "chunk_size": 4,
        "args": [three, matrix],
    }
    yield {
        "name": "order-E16-when-N-fits-one-chunk",
        "clauses": ["BA-10.6", "BA-13.2", "BA-13.6"],
        "chunk_size": 100,
        "out_axes": (0, None),
        "args": [x, "label"],
    }
    yield {
        "name": "order-E10-per-chunk",
        "clauses": ["BA-10.6", "BA-13.6"],
        "function": "row_counts",
        "chunk_size": 4,
        "args": [x],
    }

    # The helpers (BA-10.8).
    for name, first, to_dim in [("E12-before-E13", "abc", 6), ("E29-before-E13", matrix, (5,))]:
        yield {
            "name": f"order-{name}",
            "clauses": ["BA-10.8"],
            "target": "split_leading_dim",
            "args": [first, to_dim],
        }


@group
def audit_decisions() -> Iterator[Spec]:
    """The decisions of SPEC draft 3 (the editor's audit of 2026-12-07) that NumPy can express."""
    x = array((2, 3, 4))
    bad: dict[Any, Any] = {1: x, "a": x}
    # Depth 50, not BA-1.5's 500: a target on jax's flatten leaks recursion budget per level on
    # E27 (audit N1), and a kit run must survive that; tests/test_audit_decisions.py runs 500.
    yield {"name": "E27-deep-in-the-inputs", "clauses": ["BA-1.7"], "args": [x, _deep_list(50, bad)]}
    yield {
        "name": "E27-in-arbitrary_mergeable_leaf",
        "clauses": ["BA-1.7", "BA-9.4"],
        "target": "arbitrary_mergeable_leaf",
        "args": [2, [x, bad], {}],
    }
    yield {
        "name": "E24-with-N-at-most-chunk_size",
        "clauses": ["BA-13.2", "BA-14.9"],
        "row_order": (1, 2),
        "chunk_size": 5,
        "args": [array((2, 2, 2))],
    }
    yield {
        "name": "one-call-with-N-at-most-chunk_size-and-counts",
        "clauses": ["BA-13.2", "BA-14.9"],
        "function": "int_arith",
        "row_order": (1, 2),
        "chunk_size": 6,
        "args": [array((2, 2, 2))],
    }
    yield {
        "name": "E26-matrix-with-num_dims-1",
        "clauses": ["BA-5.8"],
        "num_dims": 1,
        "args": [np.matrix(array((2, 3)))],
    }
    yield {
        "name": "matrix-with-in_axes-None-passes-through",
        "clauses": ["BA-5.8", "BA-1.2"],
        "in_axes": (0, None),
        "out_axes": ((0, None), {}),
        "args": [x, np.matrix(array((2, 3)))],
    }
    yield {
        "name": "E30-merge_leading_dims-matrix",
        "clauses": ["BA-9.1"],
        "target": "merge_leading_dims",
        "args": [np.matrix(array((2, 3))), 1],
    }
    yield {
        "name": "merge_leading_dims-matrix-of-lower-rank",
        "clauses": ["BA-9.1"],
        "target": "merge_leading_dims",
        "args": [np.matrix(array((2, 3))), 3],
    }
    for name, to_dim in [("bool", (True, 6)), ("int", 6), ("float", (2.0, 3)), ("string", "23")]:
        yield {
            "name": f"E13-to_dim-{name}",
            "clauses": ["BA-9.2"],
            "target": "split_leading_dim",
            "args": [array((6, 4)), to_dim],
        }
    yield {
        "name": "split_leading_dim-to_dim-list",
        "clauses": ["BA-9.2"],
        "target": "split_leading_dim",
        "args": [array((6, 4)), [2, -1]],
    }
    for axes in [0.0, False, "0"]:
        yield {
            "name": f"E5-in_axes-{axes!r}-at-the-top",
            "clauses": ["BA-2.4", "BA-2.5"],
            "in_axes": axes,
            "args": [x],
        }
    yield {"name": "E4-in_axes-False-inside-a-tuple", "clauses": ["BA-2.4"], "in_axes": (False,), "args": [x]}
