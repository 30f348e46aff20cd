"""Differential: on every forbidden call both packages raise the SPEC row's type and prefix.

Nothing else may escape (BA-10.2): the exception type must be exactly the row's,
and its message must start with the row's prefix. Call-time rows raise before ``f``
is called.
"""

from __future__ import annotations

import re
import types
from typing import Any

import pytest
from comparisons import examples, to_jax
from hypothesis import given, settings
from hypothesis import strategies as st

import batchapply
import batchapply_reference
from batchapply_conformance.strategies import ERROR_ROWS, SPLIT, Case, error_cases, function_of, run

CALL_ROWS_BEFORE_F = ("E6", "E7", "E8", "E9")
"""Rows raised at call time before f is called (SPEC section 10)."""

FREE_TEXT_ROWS = ("E7", "E11")
"""Rows whose messages describe the structures in each package's own words.

For every other row the two packages' messages are identical, paths and all.
"""

ARGUMENT = re.compile(r"at (args\[\d+\])")


def raised(case: Case, lib: types.ModuleType, jax_inputs: bool = False) -> tuple[BaseException, int]:
    """The exception the case raises with ``lib``, and how many times ``f`` ran."""
    calls = []
    f = None if case.function == SPLIT else function_of(case)
    recording: Any = None
    if callable(f):

        def recording(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return f(*args, **kwargs)

    args, kwargs = to_jax((case.args, case.kwargs)) if jax_inputs else (case.args, case.kwargs)
    with pytest.raises(Exception) as info:
        run(case, lib, args, kwargs, f=recording)
    return info.value, len(calls)


@pytest.mark.spec("BA-10.1", "BA-10.2", "BA-1.3", "BA-2.2", "BA-2.3", "BA-2.4", "BA-2.5", "BA-3.2", "BA-3.3")
@pytest.mark.spec("BA-4.3", "BA-4.4", "BA-7.3", "BA-7.5", "BA-9.2")
@pytest.mark.parametrize("row", ERROR_ROWS)
@settings(max_examples=examples(0.15))  # a compile per example and package
@given(data=st.data())
def test_both_packages_raise_the_row_type_and_prefix(row: str, data: st.DataObject) -> None:
    case = data.draw(error_cases([row]), label="case")
    kind, prefix = case.expected_prefix()
    messages = []
    for lib, jax_inputs in [(batchapply_reference, False), (batchapply, False), (batchapply, True)]:
        error, f_calls = raised(case, lib, jax_inputs)
        where = f"{lib.__name__} ({'jax' if jax_inputs else 'numpy'} inputs)"
        assert type(error) is kind, f"{where} raised {type(error).__name__}: {error}"
        assert str(error).startswith(prefix), f"{where}: {error}"
        if row in CALL_ROWS_BEFORE_F:
            assert f_calls == 0, f"{where} called f before raising {row}"
        messages.append(str(error))
    if row in FREE_TEXT_ROWS:
        # Both name the argument (BA-4.4); the reference may add a deeper path.
        named = [ARGUMENT.findall(message) for message in messages]
        assert named[1] == named[2] == named[0][:1], messages
    else:
        assert messages[1] == messages[2] == messages[0]  # the same paths (BA-1.3), shapes, hints
