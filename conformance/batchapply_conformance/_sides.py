"""Attribution by side: did the merge or the split make an output wrong?

An output array of the wrong type, dtype or values breaks a merge clause (BA-5.x: what
``f`` is given) or a split clause (BA-7.2: what the caller gets back); so does a non-array
leaf that is not the same (BA-1.2 or BA-7.4), or another structure (BA-1.3 or BA-7.1). The
outputs alone cannot tell the two apart, so such a failure is probed from each side:

- the merge: the same call with an ``f`` that records what it is given, in the reference
  and in the target. A difference there is the merge's.
- the split: the reference splits the very outputs that the target's ``f`` returned (an
  ``f`` that replays them, call by call). Where that differs from the target's output, the
  split is at fault (BA-7.2; BA-13.8 where ``f`` ran once per chunk and the chunks' outputs
  were joined).

The charge becomes the clauses of the sides at fault. A charge that neither side shows,
or a call whose ``f`` ran another number of times in the target (a chunking fault, judged
by section 13's own checks), stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Run = Callable[[Callable[..., Any]], Any]
"""Calls one implementation's BatchApply of the case with the given ``f``; its output."""

MERGE = {
    "array_type": ("BA-5.3",),
    "dtype": ("BA-5.2",),
    "jax dtype": ("BA-5.2", "BA-5.6"),
    "jax": ("BA-5.6",),
    "mask": ("BA-5.7",),
    "values": ("BA-5.1",),
    "rank0": ("BA-5.1",),
    "leaf": ("BA-1.2",),
    "structure": ("BA-1.3",),
}
"""The merge clause that each kind of difference in what ``f`` was given breaks (a non-array
leaf that ``f`` did not get itself: BA-1.2; other containers: BA-1.3)."""

SPLIT = {
    "array_type": ("BA-7.2",),
    "dtype": ("BA-7.2",),
    "jax dtype": ("BA-5.6", "BA-7.2"),
    "jax": ("BA-5.6",),
    "mask": ("BA-5.7",),
    "values": ("BA-7.2",),
    "rank0": ("BA-7.3",),
    "leaf": ("BA-7.4",),
    "structure": ("BA-7.1",),
}
"""The split clause that each kind of difference in a split of the same outputs breaks (a
non-array output leaf not returned as it is: BA-7.4)."""

PROBED = frozenset({"BA-1.1", *(c for clauses in (*MERGE.values(), *SPLIT.values()) for c in clauses)})
"""The clauses between which the probe can choose."""


def probed(charged: tuple[str, ...] | None) -> bool:
    """Whether every clause of ``charged`` is one the probe can tell apart from the others (a
    merge clause, a split clause): the probe then names the side at fault."""
    return charged is not None and set(charged) <= PROBED


Found = tuple[set[str], set[str], int]
"""What the probe found: the kinds that differ in what ``f`` was given, those that differ in the
split, and how many times ``f`` ran (more than once: the call was cut into chunks)."""


def sides(reference: Run, target: Run, make_f: Callable[[], Callable[..., Any]]) -> Found | None:
    """What differs on each side (:data:`Found`), or None where the probe cannot tell (a call
    raised, or ``f`` ran another number of times than in the reference)."""
    try:
        wanted, _ = _recorded(reference, make_f())
        given, got = _recorded(target, make_f())
        if len(wanted) != len(given):
            return None
        merge = kinds([inputs for inputs, _ in wanted], [inputs for inputs, _ in given])
        returned = iter([output for _, output in given])
        split = kinds(reference(lambda *args, **kwargs: next(returned)), got)
    except Exception:
        return None
    return merge, split, len(given)


CHUNKS_JOINED: tuple[str, ...] = ("BA-13.8",)
"""The clause of the split where ``f`` ran once per chunk: the chunks' outputs are joined."""


def recharge(charged: tuple[str, ...], found: Found | None) -> tuple[tuple[str, ...], str]:
    """The clauses the probe shows at fault, and a note on which side; ``charged`` and no note
    where it shows neither side."""
    if found is None:
        return charged, ""
    merge, split, calls = found
    merged = tuple(dict.fromkeys(c for kind in sorted(merge) for c in MERGE.get(kind, ())))
    split_at_fault = any(kind in SPLIT for kind in split)
    if split_at_fault and calls > 1:
        joined = CHUNKS_JOINED
    else:
        joined = tuple(dict.fromkeys(c for kind in sorted(split) for c in SPLIT.get(kind, ())))
    if merged and joined:
        return merged + joined, "f was given wrong arrays, and the split of f's own outputs is wrong too"
    if merged:
        return merged, "f was given wrong arrays; the split of what f returned is right"
    if joined:
        return joined, "f was given the right arrays; the split of what it returned is wrong"
    return charged, ""


def _recorded(run: Run, fn: Callable[..., Any]) -> tuple[list[tuple[Any, Any]], Any]:
    """``run`` with an ``f`` that records each call's inputs and output; (the calls, the result)."""
    calls: list[tuple[Any, Any]] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        output = fn(*args, **kwargs)
        calls.append(((args, kwargs), output))
        return output

    return calls, run(recording)


def kinds(expected: Any, got: Any) -> set[str]:
    """The kinds of difference between two trees, exactly, ``jax.Array`` and NumPy leaves alike
    (:func:`batchapply_conformance._differential.differences`; a chunk's tags are values)."""
    from batchapply_conformance._differential import differences

    return {"values" if kind.startswith("tag") else kind for kind, _, _ in differences(expected, got)}
