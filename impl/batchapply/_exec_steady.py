"""Executor: the eager steady state of one ``BatchApply`` (issue 26).

Once a signature's group programs are ready (``_exec_fused``), a call whose tree, leaf types
and avals are those of an earlier call needs none of its planning again: the plan, which
leaves are merged and which leaves of ``f``'s output are split all follow from that
signature, and the programs check the rest (placement, a deleted array) as they run.
``Steady`` keeps them per ``BatchApply`` for the calls that ``_exec_fused`` runs whole: every
leaf a concrete ``jax.Array`` or not an array at all, the C order, no ``chunk_size``, outside
any trace. Anything else returns None and takes the planned path, which raises every error;
so does a call whose program refuses its leaves, which also drops the signature's entry (the
planned call notes it again).

The signature found last is compared first, with no hashing: jax interns avals, so that
comparison is one identity test per leaf.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import jax

from batchapply import _exec_fused
from batchapply._exec_fused import Fused
from batchapply._leaves import CONCRETE, NOT_ARRAY, one_placement, several_devices, trace_state_clean
from batchapply._plan import InputPlan

_AVAL, _NONE = itertools.repeat("aval"), itertools.repeat(None)


class _Entry(NamedTuple):
    """What a signature needs in the steady state, in one direction."""

    plan: InputPlan | None  # the call's plan (merges); None for splits
    at: tuple[int, ...] | None  # the leaves the programs take; None: every leaf
    kept: tuple[int, ...]  # of those, the ones the program keeps as they are (lower rank, BA-1.2)
    fused: Fused
    epoch: int  # _exec_fused's table epoch when the programs were ready


class _Table:
    """Entries per signature, bounded, oldest out first; the last one found is tried first."""

    __slots__ = ("_entries", "_last")
    maxsize = 16

    def __init__(self) -> None:
        self._entries: dict[Any, _Entry] = {}
        self._last: tuple[Any, _Entry] | None = None  # one attribute: read whole by any thread

    def find(self, key: Any) -> _Entry | None:
        last = self._last
        try:
            if last is not None and key == last[0]:
                return last[1]
            entry = self._entries.get(key)
        except (TypeError, ValueError):  # pytree aux data that cannot be hashed or compared
            return None
        if entry is not None:
            self._last = (key, entry)
        return entry

    def put(self, key: Any, entry: _Entry) -> None:
        with contextlib.suppress(TypeError, ValueError):  # as in find
            if key not in self._entries and len(self._entries) >= self.maxsize:
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread's
                    del self._entries[next(iter(self._entries))]
            self._entries[key] = entry

    def drop(self, key: Any) -> None:
        self._last = None
        with contextlib.suppress(KeyError, TypeError, ValueError):
            del self._entries[key]


class Steady:
    """The steady-state signatures of one ``BatchApply``, for its merges and its splits.

    Only a ``BatchApply`` in the C order without ``chunk_size`` has one (``_core``), so its plans
    have no shard counts and no lazy merge. ``tests/test_eager_steady.py`` shows it at work."""

    __slots__ = ("_merges", "_splits")

    def __init__(self) -> None:
        self._merges = _Table()
        self._splits = _Table()

    def __reduce__(self) -> tuple[Any, ...]:
        return Steady, ()  # a copy starts empty, as PlanCache's

    def merge(self, leaves: list[Any], treedef: Any) -> tuple[InputPlan, list[Any]] | None:
        """The plan and the merged leaves of a steady call, or None: plan it."""
        key = _key(leaves, treedef)
        entry = None if key is None else self._merges.find(key)
        if entry is None:
            return None
        merged = _run(entry, leaves, self._merges, key)
        if merged is None:
            return None
        assert entry.plan is not None
        return entry.plan, merged

    def split(self, out_leaves: list[Any], out_def: Any, plan: InputPlan) -> list[Any] | None:
        """The split leaves of ``f``'s output in a steady call, or None: plan it."""
        key = _key(out_leaves, out_def, plan.leading)
        entry = None if key is None else self._splits.find(key)
        if entry is None:
            return None
        return _run(entry, out_leaves, self._splits, key)

    def note_merge(self, plan: InputPlan, leaves: list[Any], treedef: Any) -> None:
        """After a planned merge: keep its plan once its group programs are ready."""
        at = _at(plan.selected, plan.leaf_kinds)
        if at is not False:
            fused = Fused(_exec_fused._merge_fused, (plan.num_dims, plan.leading), plan.num_dims)
            _note(self._merges, _key(leaves, treedef), plan, at, fused, leaves)

    def note_split(
        self,
        out_leaves: list[Any],
        out_def: Any,
        selected: list[int] | None,
        found: list[int],
        plan: InputPlan,
    ) -> None:
        """After a planned split: keep which leaves it splits once its group programs are ready."""
        at = _at(selected, found)
        if at is not False:
            fused = Fused(_exec_fused._split_fused, (plan.leading,))
            _note(self._splits, _key(out_leaves, out_def, plan.leading), None, at, fused, out_leaves)


def _at(selected: Sequence[int] | None, found: Sequence[int]) -> tuple[int, ...] | Literal[False] | None:
    """The leaves the programs take, from the selected ones and every leaf's kind: None for
    every leaf; False where the steady state does not apply (a NumPy leaf, a tracer, or no
    ``jax.Array`` to reshape): the concrete ``jax.Array`` leaves go through the programs, and
    the other leaves, which are not arrays, are passed through whatever their value."""
    if any(k != CONCRETE and k != NOT_ARRAY for k in found):
        return False
    order = range(len(found)) if selected is None else selected
    at = tuple(i for i in order if found[i] == CONCRETE)
    if not at:
        return False
    return None if len(at) == len(found) else at


def _key(leaves: list[Any], treedef: Any, *more: Any) -> tuple[Any, ...] | None:
    """The signature: tree, leaf types and avals (interned by jax: compared by identity)."""
    try:  # None for a leaf without an aval: a NumPy leaf never has an entry (see _at)
        return (treedef, tuple(map(type, leaves)), tuple(map(getattr, leaves, _AVAL, _NONE)), *more)
    except Exception:  # a leaf whose aval raises: the planned path
        return None


def _note(
    table: _Table,
    key: Any,
    plan: InputPlan | None,
    at: tuple[int, ...] | None,
    fused: Fused,
    leaves: list[Any],
) -> None:
    if key is None:  # an entry noted inside a trace is as good outside it: _run checks the trace
        return
    xs = leaves if at is None else [leaves[i] for i in at]
    epoch = fused.ready_epoch(xs)
    if epoch is not None:
        kept = tuple(j for j, x in enumerate(xs) if x.ndim < fused.min_ndim)
        table.put(key, _Entry(plan, at, kept, fused, epoch))


def _run(entry: _Entry, leaves: list[Any], table: _Table, key: Any) -> list[Any] | None:
    """``leaves`` with the entry's leaves reshaped by its ready programs; None where the
    planned path must decide: inside a trace, on several devices a mix of placements that one
    program would move, no longer ready, or (the entry is dropped) a program that refuses."""
    if not trace_state_clean() or (several_devices() and not one_placement(_arrays(leaves))):
        return None
    if entry.epoch != _exec_fused.epoch():  # jax.clear_caches(), or a signature evicted: the
        return None  # planned call notes the signature again once its programs are ready
    at = entry.at
    ys = entry.fused.ready(leaves if at is None else [leaves[i] for i in at])
    if ys is None:  # a deleted leaf, say
        table.drop(key)
        return None
    if at is None:
        for j in entry.kept:
            ys[j] = leaves[j]
        return ys
    out = list(leaves)
    for j, i in enumerate(at):
        if j not in entry.kept:
            out[i] = ys[j]
    return out


def _arrays(leaves: list[Any]) -> list[Any]:
    """The ``jax.Array`` leaves of a call whose entry exists (its other leaves are not arrays)."""
    return [x for x in leaves if isinstance(x, jax.Array)]
