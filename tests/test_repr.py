"""``repr`` of BatchApply (both packages) and the Flax wrappers: ``f`` and every option that was set."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

import batchapply
import batchapply_reference

PACKAGES = [batchapply, batchapply_reference]

# One non-default value per option. A new option of BatchApply needs an entry here.
SET = {
    "num_dims": 3,
    "in_axes": (0, None),
    "out_axes": {"loss": None},
    "chunk_size": 4,
    "row_order": (2, 1),
}


def dense(x: Any, w: Any) -> Any:
    return x @ w


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_repr_shows_f_and_the_options_set(package: Any) -> None:
    assert repr(package.BatchApply(dense)) == "BatchApply(<function dense>)"
    assert (
        repr(package.BatchApply(dense, 3, in_axes=(0, None)))
        == "BatchApply(<function dense>, num_dims=3, in_axes=(0, None))"
    )
    square = lambda x: x * x  # noqa: E731
    assert repr(package.BatchApply(square, out_axes=None)) == (
        f"BatchApply(<function {square.__qualname__}>, out_axes=None)"  # Python's own name for it
    )
    partial = functools.partial(dense, w=1)
    assert repr(package.BatchApply(partial)) == "BatchApply(functools.partial(<function dense>, w=1))"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_repr_shows_every_option_that_differs_from_its_default(package: Any) -> None:
    options = list(inspect.signature(package.BatchApply).parameters)[1:]
    assert sorted(options) == sorted(SET), "a new BatchApply option: give it a value in SET"
    for name in options:
        shown = repr(package.BatchApply(dense, **{name: SET[name]}))
        assert shown == f"BatchApply(<function dense>, {name}={SET[name]!r})"
    # Normalized values are shown as stored: a list in_axes is a tuple (as jax.vmap does).
    assert repr(package.BatchApply(dense, in_axes=[0, None])).endswith("in_axes=(0, None))")
    # Equal to the default but of another type is not the default.
    assert repr(package.BatchApply(dense, row_order=[1, 1])).endswith("row_order=(1, 1))")


def test_both_packages_print_alike() -> None:
    kwargs: dict[str, Any] = {"in_axes": (0, {"w": None}), "chunk_size": 2}
    assert repr(batchapply.BatchApply(dense, 2, **kwargs)) == repr(
        batchapply_reference.BatchApply(dense, 2, **kwargs)
    )


def test_flax_wrappers_print_the_module_and_options() -> None:
    """The Flax wrappers keep flax's own repr (nested modules print the same way), which shows both."""
    nn = pytest.importorskip("flax.linen")
    from flax import nnx

    import batchapply.linen
    import batchapply.nnx

    linen = repr(batchapply.linen.BatchApply(nn.Dense(3), 3, in_axes=(0, None)))
    assert linen.startswith("BatchApply(") and "module = Dense(" in linen, linen
    assert "num_dims = 3" in linen and "in_axes = (0, None)" in linen, linen
    wrapper = batchapply.nnx.BatchApply(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), out_axes=None)
    shown = repr(wrapper)
    assert shown.startswith("BatchApply(") and "module=Linear(" in shown, shown
    assert "out_axes=None" in shown, shown
