"""Attribution by side: did the merge or the split make an output wrong?

An output array of the wrong type, dtype or values breaks a merge clause (BA-5.x: what
``f`` is given) or a split clause (BA-7.2: what the caller gets back). The outputs alone
cannot tell the two apart, so a failure charged to both sides is probed from each:

- the merge: the same call with an ``f`` that records what it is given, in the reference
  and in the target. A difference there is the merge's.
- the split: the reference splits the very outputs that the target's ``f`` returned (an
  ``f`` that replays them, call by call). Where that differs from the target's output, the
  split is at fault.

Each side keeps the clauses of the charge that it shows. A charge that neither side shows,
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
}
"""The merge clause that each kind of difference in what ``f`` was given breaks."""

SPLIT = {
    "array_type": ("BA-7.2",),
    "dtype": ("BA-7.2",),
    "jax dtype": ("BA-5.6", "BA-7.2"),
    "jax": ("BA-5.6",),
    "mask": ("BA-5.7",),
    "values": ("BA-7.2",),
}
"""The split clause that each kind of difference in a split of the same outputs breaks."""


def two_sided(charged: tuple[str, ...] | None) -> bool:
    """Whether ``charged`` names a merge clause and the split clause at once."""
    return charged is not None and "BA-7.2" in charged and any(c.startswith("BA-5.") for c in charged)


def sides(
    reference: Run, target: Run, make_f: Callable[[], Callable[..., Any]]
) -> tuple[set[str], set[str]] | None:
    """``(kinds that differ in what f was given, kinds that differ in the split)``, or None
    where the probe cannot tell (a call raised, or ``f`` ran another number of times)."""
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
    return merge, split


def recharge(
    charged: tuple[str, ...], found: tuple[set[str], set[str]] | None
) -> tuple[tuple[str, ...], str]:
    """The clauses of ``charged`` that the probe shows, and a note on which side; ``charged``
    and no note where it shows none of them."""
    if found is None:
        return charged, ""
    merge, split = found
    shown = {c for kind in merge for c in MERGE.get(kind, ())}
    split_shown = {c for kind in split for c in SPLIT.get(kind, ())}
    kept = tuple(c for c in charged if c in shown or c in split_shown)
    if not kept:
        return charged, ""
    if shown & set(kept) and split_shown & set(kept):
        note = "f was given wrong arrays, and the split of f's own outputs is wrong too"
    elif shown & set(kept):
        note = "f was given wrong arrays; the split of what f returned is right"
    else:
        note = "f was given the right arrays; the split of what it returned is wrong"
    return kept, note


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
