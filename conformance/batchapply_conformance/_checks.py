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
        options: The extension options (``in_axes``, ...) that ``factory`` accepts (probed:
            :func:`probe_options`).
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
        return cls(name=name, factory=factory, module=module, options=probe_options(factory))

    def preflight(self) -> None:
        """Call the factory on a tiny case, ``make(identity, 2)(np.zeros((2, 3, 4)))``.

        Raises:
            TargetError: One line saying what the target did instead, when it is not a
                factory of callables that map a ``(2, 3, 4)`` array to something.

        >>> Target.load("batchapply_reference:BatchApply").preflight()
        """
        import numpy as np

        what = f"`{self.name}` is not a BatchApply factory make(f, num_dims) -> callable"
        try:
            apply = self.factory(_identity, 2)
        except Exception as e:
            raise TargetError(f"{what}: make(identity, 2) raised {_one_line(e)}") from None
        if not callable(apply):
            raise TargetError(f"{what}: make(identity, 2) returned {type(apply).__name__}, not a callable")
        try:
            apply(np.zeros((2, 3, 4), np.float32))
        except Exception as e:
            raise TargetError(
                f"{what}: make(identity, 2)(np.zeros((2, 3, 4))) raised {_one_line(e)}"
            ) from None

    def api(self) -> types.SimpleNamespace:
        """The target as a module-like object with SPEC's public names (those it has)."""
        names = ("merge_leading_dims", "split_leading_dim", "ndim_at_least", "arbitrary_mergeable_leaf")
        helpers = {n: getattr(self.module, n) for n in names if hasattr(self.module, n)}
        return types.SimpleNamespace(BatchApply=self.factory, **helpers)


PROBES: dict[str, Any] = {"in_axes": 0, "out_axes": 0, "chunk_size": 2, "row_order": "shard_major"}
"""A valid value of each extension option, passed one at a time to probe the factory."""


def probe_options(factory: Callable[..., Any]) -> frozenset[str]:
    """The extension options ``factory`` accepts: those with which ``factory(identity, 2, option=...)``
    constructs. An option is N/A only when the factory rejects it at construction; the signature is
    not read, so a factory taking ``**kwargs`` is given every option, and then its checks run (one
    that accepts an option and ignores it FAILs that option's clauses).

    >>> sorted(probe_options(lambda f, num_dims=2, **options: f))
    ['chunk_size', 'in_axes', 'out_axes', 'row_order']
    >>> sorted(probe_options(lambda f, num_dims=2: f))
    []
    """
    accepted = []
    for option in EXTENSION_OPTIONS:
        try:
            factory(_identity, 2, **{option: PROBES[option]})
        except Exception:
            continue
        accepted.append(option)
    return frozenset(accepted)


class TargetError(ValueError):
    """The target cannot be checked at all (it is not a BatchApply factory)."""


def _identity(x: Any) -> Any:
    return x


def _one_line(error: BaseException) -> str:
    text = " ".join(describe_error(error).split())
    return text if len(text) <= 200 else text[:197] + "..."


Status = Literal["pass", "fail", "na", "not_run"]
"""``na``: the check does not apply to this target (it lacks the option or helper);
``not_run``: it applies but could not run here (hypothesis missing, too few devices)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one check found. ``counterexample`` is JSON-able: inputs, expected, got.

    ``charged``: for a failure, the clauses it is charged to; None for every clause the
    check cites. A check may return several outcomes, one per failed property.
    """

    status: Status
    detail: str = ""
    counterexample: dict[str, Any] | None = None
    charged: tuple[str, ...] | None = None
    # A property check's failing call itself, for the diagnosis of _diagnose.py (its counterexample
    # may hold objects that the JSON encoding keeps as a repr only); dropped once diagnosed.
    call: Any = dataclasses.field(default=None, compare=False, repr=False)


Outcomes = Outcome | list[Outcome]

FAMILIES = ("golden", "transforms", "sharding", "properties")
"""The families of checks, as ``--skip`` names them."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One check: a name, its family, the clauses it tests, and how to run it on a target."""

    name: str
    clauses: tuple[str, ...]
    run: Callable[[Target], Outcomes]
    family: str = "golden"


PROPERTY_CLAUSES: dict[str, tuple[str, ...]] = {
    "structure": ("BA-7.1",),
    "array_type": ("BA-5.3", "BA-7.2"),
    "dtype": ("BA-5.2", "BA-7.2"),
    "values": ("BA-5.1", "BA-7.2"),
    "leaf": ("BA-7.4",),
    "mutation": ("BA-5.5",),
}
"""The clause that states each property a comparison checks (kinds of :func:`golden.mismatches`,
and ``mutation`` for inputs changed by the call)."""

OPTION_SECTIONS = (
    ("in_axes", "BA-4."),
    ("out_axes", "BA-7."),
    ("chunk_size", "BA-13."),
    ("row_order", "BA-14."),
)


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


PREFIX_CLAUSE = "BA-10.1"
"""The clause that promises each error row's message prefix."""


def reworded(error: BaseException, type_name: str, prefix: str) -> tuple[str, ...] | None:
    """``(BA-10.1,)`` where ``error`` is the row's error worded otherwise: its type, and the row's
    words (the prefix after its leading ``Name:``) in its message, but not the prefix itself. The
    row's condition was then checked and its error raised at the right moment; only the prefix,
    BA-10.1's promise, is wrong. None (every clause the check cites) for anything else: another
    type, or an error of the same type that does not say the row's words (a bare reshape
    ``ValueError`` where E9 was due)."""
    words = prefix.split(": ", 1)[-1].split("{", 1)[0].strip().lower()
    same_words = bool(words) and words in str(error).lower()
    return (PREFIX_CLAUSE,) if type(error).__name__ == type_name and same_words else None


ESCAPE_CLAUSE = "BA-10.2"
"""The clause that no other exception escapes where a row applies."""


def without_escapes(clauses: tuple[str, ...]) -> tuple[str, ...] | None:
    """``clauses`` less BA-10.2, for a call that raised nothing where a row applies: no other
    exception escaped (None where nothing is left: every clause the check cites)."""
    return tuple(c for c in clauses if c != ESCAPE_CLAUSE) or None


def on_jax(check: Callable[[Target], Outcomes], devices: int = 1) -> Callable[[Target], Outcomes]:
    """``check`` run where jax is installed and sees ``devices`` devices, its exception a FAIL.

    Without jax the check does not apply (N/A); with too few devices it did not run (NOT RUN,
    fail closed: the CLI simulates 8 CPU devices, a pytest process may not).
    """

    def run(target: Target) -> Outcomes:
        try:
            import jax
        except ImportError:
            return Outcome("na", "jax is not installed")
        if jax.device_count() < devices:
            return Outcome(
                "not_run",
                f"needs {devices} or more devices, jax sees {jax.device_count()}: on a CPU, set "
                "XLA_FLAGS=--xla_force_host_platform_device_count=8 before jax starts (the CLI does)",
            )
        try:
            return check(target)
        except Exception as e:
            return Outcome("fail", f"raised {describe_error(e)}", {"got": describe_error(e)})

    return run


def safe_encode(value: Any) -> Any:
    """The golden encoding of ``value``, or its ``repr`` for what the encoding cannot hold."""
    try:
        return golden.encode(value)
    except TypeError:
        return {"repr": repr(value)}


# ---- golden ---------------------------------------------------------------------------


def _golden_outcome(case: golden.GoldenCase, target: Target) -> Outcomes:
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
            reworded(e, expected["type"], prefix),
        )
    if case.expected_error is not None:
        expected = case.expected_error
        wanted = f"{expected['type']} starting {expected['prefix']!r} (SPEC row {expected['row']})"
        return Outcome(
            "fail",
            f"expected {wanted}, got an output",
            {**example, "expected": wanted, "got": safe_encode(got)},
            without_escapes(case.clauses),
        )
    exact = case.function is None or case.target != "BatchApply" or functions.FUNCTIONS[case.function].exact
    found = golden.mismatches(case.expected, got, exact=exact)
    found += [
        ("mutation", f"the call mutated its inputs: {problem}")
        for _, problem in golden.mismatches(
            (case.args, case.kwargs), (args, kwargs), exact=True, path="inputs"
        )
    ]
    if not found:
        return Outcome("pass")
    counterexample = {**example, "expected": safe_encode(case.expected), "got": safe_encode(got)}
    failures: dict[tuple[str, ...] | None, Outcome] = {}
    for kind, problem in found:
        charged = _charged(case, kind)
        if charged not in failures:
            failures[charged] = Outcome("fail", problem, counterexample, charged)
    return list(failures.values())


def _charged(case: golden.GoldenCase, kind: str) -> tuple[str, ...] | None:
    """The clauses a failed property of ``case`` is charged to (None: every clause it cites).

    A helper's case is about its helper clause (BA-9.x). On a call with an option
    (in_axes, out_axes, chunk_size, row_order), the layout of the output is stated by
    the option's section: a structure or values fault goes to the clauses of that
    section the case cites.
    """
    if case.target != "BatchApply":
        return None
    if kind in ("values", "leaf"):  # a structure fault is BA-7.1's whatever the options
        used = {
            "in_axes": not (type(case.in_axes) is int and case.in_axes == 0),
            "out_axes": not (type(case.out_axes) is int and case.out_axes == 0),
            "chunk_size": case.chunk_size is not None,
            "row_order": case.row_order != "C",
        }
        sections = [prefix for option, prefix in OPTION_SECTIONS if used[option]]
        cited = tuple(c for c in case.clauses if c.startswith(tuple(sections))) if sections else ()
        if cited:
            return cited
    if (
        kind == "leaf"
    ):  # a non-array leaf changed: converted (BA-1.1), replaced (BA-1.2) or not returned (BA-7.4)
        return tuple(c for c in case.clauses if c in PASS_THROUGH) or PROPERTY_CLAUSES[kind]
    return PROPERTY_CLAUSES[kind]


PASS_THROUGH = ("BA-1.1", "BA-1.2", "BA-7.4")


def golden_checks() -> Iterator[Check]:
    """One check per golden case."""
    for group, case in golden.load_corpus():
        yield Check(
            name=f"golden {group}:{case.name}",
            clauses=case.clauses,
            run=lambda target, case=case: _golden_outcome(case, target),  # type: ignore[misc]
            family="golden",
        )
