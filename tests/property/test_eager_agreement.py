"""Differential, on the eager fast path: every input leaf a concrete ``jax.Array`` (issue 18).

``cases()`` draws NumPy inputs and mostly full-rank leaves; converted to ``jax.Array`` they
reach the fused reshapes of ``batchapply._core`` but rarely every branch of them. The
generator here draws calls built for those branches, each often: all leaves ``jax.Array``
(sometimes with a NumPy or non-array leaf among them), leaves of lower rank than
``num_dims`` (passed through, BA-1.2), a tuple ``in_axes`` (the fused merge of only the
selected leaves), a tuple ``out_axes``, outputs of the wrong leading size (E10 from the
fused split), inputs that disagree on the leading shape (E9 from the fused merge), and a
keyword argument that is a custom pytree node whose aux data jax compares with ``==``: a str,
or an object whose ``==`` has no truth value (the same object on every call, or a new one on
the call checked after the same one before).
``f`` returns its inputs, so the merged values are compared as well.

A signature's calls take four paths (issue 26): its first call and the calls until its
group programs are compiled go leaf by leaf (on one CPU device, through NumPy views of the
leaves' buffers: the host path, drawn on or off), the next one through the group programs,
planned, and the later ones through the group programs with the plan kept from that call
(``_exec_steady``: where no leaf is a NumPy array). Each case is checked at a drawn call
index: 1, 2, 3 (after the background thread has compiled the group programs) or 4 (steady).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from comparisons import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import batchapply
import batchapply_reference
from batchapply import _core, _exec_fused, _exec_steady
from batchapply_conformance.nodes import Ambiguous, KeyedNode


@dataclasses.dataclass
class EagerCase:
    num_dims: int
    leading: tuple[int, ...]
    args: tuple[Any, ...]  # NumPy arrays, or "text" / 3 for a non-array leaf
    kinds: tuple[str, ...]  # per arg: "full", "low", "numpy", "other"
    in_axes: Any  # 0 or a tuple of 0 / None
    bad_output: int  # 0: none; else the leading size of an extra output (not the merged size)
    bad_input: bool  # the last argument is merged and disagrees on the leading shape (E9)
    call_index: int  # 1: a signature's first call; 2: its second; 3: once its groups are compiled; 4: steady
    host_path: bool  # whether calls 1 and 2 may take the host path (off: the one-leaf programs)
    aux: str  # the keyword node's node data: "none" (no node), "str", "same" or "new" (an Ambiguous)

    def kwargs(self, checked: bool = False) -> dict[str, Any]:
        """The keyword arguments of one call; for "new", a new ``Ambiguous`` on the checked call."""
        aux = {"str": "aux", "same": _SAME, "new": Ambiguous() if checked else _SAME}.get(self.aux)
        return {} if aux is None else {"meta": KeyedNode("text", "more", aux)}

    def selected(self, i: int) -> bool:
        return self.in_axes == 0 or self.in_axes[i] == 0

    def merged(self, i: int) -> bool:
        """Whether ``args[i]`` is merged: selected and an array of rank >= num_dims."""
        return self.selected(i) and self.kinds[i] in ("full", "numpy")


KINDS = st.sampled_from(["full", "full", "low", "low", "numpy", "other"])


@st.composite
def eager_cases(draw: st.DrawFn) -> EagerCase:
    num_dims = draw(st.integers(1, 3))
    leading = tuple(draw(st.lists(st.integers(1, 3), min_size=num_dims, max_size=num_dims)))
    kinds = draw(st.lists(KINDS, min_size=1, max_size=4))
    kinds[draw(st.integers(0, len(kinds) - 1))] = "full"  # one mergeable leaf at least
    in_axes: Any = 0
    if draw(st.booleans()):
        in_axes = tuple(draw(st.sampled_from([0, None])) for _ in kinds)
        first_full = kinds.index("full")
        in_axes = in_axes[:first_full] + (0,) + in_axes[first_full + 1 :]  # it stays selected
    args: list[Any] = []
    for i, kind in enumerate(kinds):
        if kind == "other":
            args.append(draw(st.sampled_from(["text", 3])))
            continue
        if kind == "low":
            shape = tuple(draw(st.lists(st.integers(1, 3), max_size=num_dims - 1)))
        else:
            shape = leading + tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
        start = 1000 * i
        args.append(np.arange(start, start + int(np.prod(shape)), dtype=np.float32).reshape(shape))
    size = int(np.prod(leading))
    bad_output, bad_input = 0, False
    mode = draw(st.integers(0, 7))  # 0 to 4 (the simplest draws, made most often): a good call
    if mode >= 6:  # a quarter of the draws: an extra output of the wrong size
        bad_output = draw(st.sampled_from([s for s in (1, size + 1, size + 2) if s != size]))
    elif mode == 5:  # an eighth: an extra input whose leading shape disagrees
        bad_input = True
        args.append(np.zeros((leading[0] + 1,) + leading[1:] + (2,), np.float32))
        kinds.append("full")
        if in_axes != 0:
            in_axes = (*in_axes, 0)
    call_index = draw(st.sampled_from([4, 1, 2, 3]))  # 4 first: the common case, drawn most
    host_path = draw(st.booleans())
    aux = draw(st.sampled_from(["none", "str", "same", "new"]))
    return EagerCase(
        num_dims,
        leading,
        tuple(args),
        tuple(kinds),
        in_axes,
        bad_output,
        bad_input,
        call_index,
        host_path,
        aux,
    )


def at_call_index(case: EagerCase, apply: Any, args: tuple[Any, ...]) -> None:
    """Calls ``apply(*args)`` as often as it takes for the next call to be ``case.call_index``."""
    _exec_fused.wait()
    _exec_fused._SIGNATURES.cache_clear()  # the next call is the signature's first
    # "new" aux data at call index 4: one more steady call first, with the same aux data, so that
    # the checked call meets a signature found before (its table's last one).
    extra = case.call_index == 4 and case.aux == "new"
    for call in range(1, case.call_index + extra):
        with contextlib.suppress(ValueError):  # bad_input, bad_output: the call checked below raises too
            apply(*args, **case.kwargs())
        if call == 2:
            _exec_fused.wait()


def jax_args(case: EagerCase) -> tuple[Any, ...]:
    """The inputs of the implementation: every array a ``jax.Array`` but the "numpy" ones."""
    return tuple(
        jnp.asarray(a) if kind in ("full", "low") else a
        for a, kind in zip(case.args, case.kinds, strict=True)
    )


_SAME = Ambiguous()


def make_f(case: EagerCase, seen: list[tuple[Any, ...]]) -> Any:
    def f(*args: Any, **kwargs: Any) -> Any:
        if case.aux != "none":  # the node reaches f as it was passed (BA-1.2, BA-1.3)
            meta = kwargs["meta"]
            assert type(meta) is KeyedNode and (meta.a, meta.b) == ("text", "more")
            assert meta.tag == "aux" if case.aux == "str" else type(meta.tag) is Ambiguous
        seen.append(args)
        arrays = tuple(a for i, a in enumerate(args) if case.merged(i))
        if case.bad_output:
            return arrays + (jnp.zeros((case.bad_output,)),)
        return arrays, tuple(a for i, a in enumerate(args) if not case.merged(i))

    return f


@pytest.mark.spec("BA-1.2", "BA-4.3", "BA-5.1", "BA-5.3", "BA-7.2", "BA-7.3", "BA-7.4")
@settings(max_examples=examples(1.0))
@given(case=eager_cases())
def test_eager_jax_inputs_agree_with_reference(case: EagerCase) -> None:
    host_path = _exec_fused._HOST_PATH
    _exec_fused._HOST_PATH = case.host_path
    try:
        check_eager_case(case)
    finally:
        _exec_fused._HOST_PATH = host_path


def check_eager_case(case: EagerCase) -> None:
    seen: list[tuple[Any, ...]] = []
    f = make_f(case, seen)
    out_axes: Any = 0 if case.bad_output else (0, None)
    options = {"num_dims": case.num_dims, "in_axes": case.in_axes, "out_axes": out_axes}
    args = jax_args(case)
    apply = batchapply.BatchApply(f, **options)
    at_call_index(case, apply, args)
    seen.clear()
    if case.bad_input:
        with pytest.raises(ValueError, match="^" + _core.LEADING_SHAPE_PREFIX) as info:
            apply(*args, **case.kwargs(checked=True))
        assert f"args[{len(args) - 1}] has ({case.leading[0] + 1}," in str(info.value)
        with pytest.raises(ValueError, match="^" + _core.LEADING_SHAPE_PREFIX):
            batchapply_reference.BatchApply(f, **options)(*case.args, **case.kwargs())
        assert not seen  # f is not called
        return
    if case.bad_output:
        size = int(np.prod(case.leading))
        with pytest.raises(ValueError, match="^" + _core.OUTPUT_PREFIX) as info:
            apply(*args, **case.kwargs(checked=True))
        assert f"has shape ({case.bad_output},); expected rank >= 1 and a leading size of {size}" in str(
            info.value
        )
        with pytest.raises(ValueError, match="^" + _core.OUTPUT_PREFIX):
            batchapply_reference.BatchApply(f, **options)(*case.args, **case.kwargs())
        return
    kwargs = case.kwargs(checked=True)
    if case.call_index == 4 and "numpy" not in case.kinds and case.aux != "new":  # the steady path
        leaves, treedef = jax.tree.flatten((args, kwargs))
        assert apply._steady is not None
        assert apply._steady._merges.find(_exec_steady._key(leaves, treedef)) is not None
    out = apply(*args, **kwargs)
    expected = batchapply_reference.BatchApply(f, **options)(*case.args, **case.kwargs())
    received = seen[0]  # what f got from batchapply
    for i, (got, arg) in enumerate(zip(received, args, strict=True)):
        if case.merged(i):
            assert np.shape(got) == (int(np.prod(case.leading)),) + np.shape(arg)[case.num_dims :]
            np.testing.assert_array_equal(np.asarray(got), np.reshape(np.asarray(arg), np.shape(got)))
            assert isinstance(got, jax.Array) == isinstance(arg, jax.Array)  # BA-5.3
            if isinstance(arg, jax.Array):  # its dtype, weak type and placement (BA-5.6)
                assert (got.dtype, got.weak_type, got.committed) == (arg.dtype, arg.weak_type, arg.committed)
                assert got.devices() == arg.devices()
        else:
            assert got is arg  # BA-1.2 and BA-4.2: the very object
    out_leaves, out_def = jax.tree_util.tree_flatten(out)
    want_leaves, want_def = jax.tree_util.tree_flatten(expected)
    assert str(out_def) == str(want_def)
    for got, want in zip(out_leaves, want_leaves, strict=True):
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
