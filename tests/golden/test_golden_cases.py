"""Golden cases: pinned expected outputs and errors, checked against both packages.

A first hand-written corpus; the generated corpus replaces it (issue: golden files).
"""

from __future__ import annotations

import json
import pathlib
import types
from typing import Any

import numpy as np
import pytest

CASES_FILE = pathlib.Path(__file__).with_name("cases.json")
CASES = json.loads(CASES_FILE.read_text())

FUNCTIONS = {
    "first": lambda *args: args[0],
    # Each merged row gets its own index: pins the order in which rows are merged and split.
    "row_index": lambda x: np.arange(x.shape[0], dtype=x.dtype).reshape(x.shape[0], 1),
}


def decode(spec: dict[str, Any]) -> np.ndarray:
    return np.asarray(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(lib: types.ModuleType, case: dict[str, Any]) -> None:
    for clause in case["clauses"]:
        assert clause.startswith("BA-")
    apply = lib.BatchApply(FUNCTIONS[case["function"]], case["num_dims"])
    inputs = [decode(spec) for spec in case["inputs"]]
    if "expected_error" in case:
        error = case["expected_error"]
        with pytest.raises(Exception) as info:
            apply(*inputs)
        assert type(info.value).__name__ == error["type"], f"{case['name']} ({case['clauses']})"
        assert str(info.value).startswith(error["prefix"]), f"{case['name']} ({case['clauses']})"
    else:
        out = np.asarray(apply(*inputs))
        expected = decode(case["expected"])
        assert out.dtype == expected.dtype and out.shape == expected.shape, case["name"]
        np.testing.assert_array_equal(out, expected, err_msg=f"{case['name']} ({case['clauses']})")
