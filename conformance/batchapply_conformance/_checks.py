"""The checks the conformance kit runs, each tied to the SPEC clauses it tests.

Three families:

- golden: every case of the golden corpus, replayed on the target;
- transforms: the target under jax.jit, grad, vjp, vmap, scan, checkpoint and
  export (SPEC section 8), against the hand-written reshape;
- properties: hypothesis differential checks against the reference, with the
  strategies of :mod:`batchapply_conformance.strategies`.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import types
from collections.abc import Callable, Iterator
from typing import Any, Literal

from batchapply_conformance import functions, golden

EXTENSION_OPTIONS = ("in_axes", "out_axes", "chunk_size", "row_order")


@dataclasses.dataclass(frozen=True)
class Target:
    """An implementation under test: a factory ``make(f, num_dims, **options) -> callable``.

    Attributes:
        name: ``module:attr`` as given on the command line.
        factory: The ``attr``; ``batchapply:BatchApply``, ``flax.linen:BatchApply``
            and ``haiku:BatchApply`` all have the right shape.
        module: The module, where helpers such as ``merge_leading_dims`` are looked up.
        options: The extension options (``in_axes``, ...) that ``factory`` accepts.
    """

    name: str
    factory: Callable[..., Callable[..., Any]]
    module: types.ModuleType
    options: frozenset[str]

    @classmethod
    def load(cls, name: str) -> Target:
        """Import ``module:attr``; ValueError with the expected form when it is malformed.

        >>> "in_axes" in Target.load("batchapply_reference:BatchApply").options
        True
        """
        module_name, sep, attr = name.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(f"target must be `module:attr`, e.g. `batchapply:BatchApply`; got {name!r}.")
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
        try:
            parameters = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        options = frozenset(o for o in EXTENSION_OPTIONS if o in parameters and not takes_any)
        return cls(name=name, factory=factory, module=module, options=options)

    def api(self) -> types.SimpleNamespace:
        """The target as a module-like object with SPEC's public names (those it has)."""
        names = ("merge_leading_dims", "split_leading_dim", "ndim_at_least", "arbitrary_mergeable_leaf")
        helpers = {n: getattr(self.module, n) for n in names if hasattr(self.module, n)}
        return types.SimpleNamespace(BatchApply=self.factory, **helpers)


Status = Literal["pass", "fail", "na"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one check found. ``counterexample`` is JSON-able: inputs, expected, got."""

    status: Status
    detail: str = ""
    counterexample: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Check:
    """One check: a name, the clauses it tests, and how to run it on a target."""

    name: str
    clauses: tuple[str, ...]
    run: Callable[[Target], Outcome]


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def safe_encode(value: Any) -> Any:
    """The golden encoding of ``value``, or its ``repr`` for what the encoding cannot hold."""
    try:
        return golden.encode(value)
    except TypeError:
        return {"repr": repr(value)}


# ---- golden ---------------------------------------------------------------------------


def _golden_outcome(case: golden.GoldenCase, target: Target) -> Outcome:
    api = target.api()
    if case.target != "BatchApply" and not hasattr(api, case.target):
        return Outcome("na", f"the target's module has no `{case.target}`")
    if (
        case.target == "BatchApply"
        and case.uses_extensions()
        and not {"in_axes", "out_axes"} <= target.options
    ):
        return Outcome("na", "the target does not take in_axes/out_axes")
    if case.target == "BatchApply" and case.row_order != "C" and "row_order" not in target.options:
        return Outcome("na", "the target does not take row_order (SPEC section 14)")
    if case.target == "BatchApply" and case.chunk_size is not None and "chunk_size" not in target.options:
        return Outcome("na", "the target does not take chunk_size (SPEC section 13)")
    args, kwargs = copy.deepcopy((case.args, case.kwargs))
    replayed = dataclasses.replace(case, args=args, kwargs=kwargs)
    example = {
        "case": case.name,
        "call": case.target,
        "function": case.function,
        "num_dims": safe_encode(case.num_dims),
        "in_axes": safe_encode(case.in_axes),
        "out_axes": safe_encode(case.out_axes),
        "row_order": safe_encode(case.row_order),
        "args": safe_encode(case.args),
        "kwargs": safe_encode(case.kwargs),
    }
    try:
        got = golden.replay(replayed, api)
    except Exception as e:
        if case.expected_error is None:
            return Outcome(
                "fail", f"expected an output, got {describe_error(e)}", {**example, "got": describe_error(e)}
            )
        expected = case.expected_error
        prefix = expected["prefix"].replace("{num_dims}", str(case.num_dims))
        if type(e).__name__ == expected["type"] and str(e).startswith(prefix):
            return Outcome("pass")
        wanted = f"{expected['type']} starting {prefix!r} (SPEC row {expected['row']})"
        return Outcome(
            "fail",
            f"expected {wanted}, got {describe_error(e)}",
            {**example, "expected": wanted, "got": describe_error(e)},
        )
    if case.expected_error is not None:
        expected = case.expected_error
        wanted = f"{expected['type']} starting {expected['prefix']!r} (SPEC row {expected['row']})"
        return Outcome(
            "fail",
            f"expected {wanted}, got an output",
            {**example, "expected": wanted, "got": safe_encode(got)},
        )
    exact = case.function is None or case.target != "BatchApply" or functions.FUNCTIONS[case.function].exact
    problem = golden.mismatch(case.expected, got, exact=exact)
    if problem is None:
        problem = golden.mismatch((case.args, case.kwargs), (args, kwargs), exact=True, path="inputs")
        if problem is not None:
            problem = f"the call mutated its inputs (BA-5.5): {problem}"
    if problem is None:
        return Outcome("pass")
    return Outcome(
        "fail", problem, {**example, "expected": safe_encode(case.expected), "got": safe_encode(got)}
    )


def golden_checks() -> Iterator[Check]:
    """One check per golden case."""
    for group, case in golden.load_corpus():
        yield Check(
            name=f"golden {group}:{case.name}",
            clauses=case.clauses,
            run=lambda target, case=case: _golden_outcome(case, target),  # type: ignore[misc]
        )
