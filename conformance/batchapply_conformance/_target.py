"""Load a target (``module:attr`` or ``path/to/file.py:attr``), find its helpers, preflight it.

Runs in the worker process: importing the target runs its code, which may raise,
exit, hang or crash; the runner bounds all of that and turns it into exit status 2.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import pathlib
import sys
import types
from typing import Any

from batchapply_conformance._checks import Target, _identity, _one_line

HELPERS = {
    "merge_leading_dims": "(x, num_dims)",
    "split_leading_dim": "(x, to_dim)",
    "ndim_at_least": "(x, num_dims)",
    "arbitrary_mergeable_leaf": "(num_dims, args, kwargs)",
}
"""SPEC section 9's helpers and their signatures."""


class LoadError(Exception):
    """The target cannot be checked; ``kind`` says why (usage, import, factory, construct)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _import(module_name: str) -> types.ModuleType:
    """The module, imported from the path when ``module_name`` names a ``.py`` file."""
    if not module_name.endswith(".py"):
        return importlib.import_module(module_name)
    path = pathlib.Path(module_name).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {str(path)!r}")
    name = path.parent.name if path.stem == "__init__" else path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # so that the file can import its neighbours
    spec.loader.exec_module(module)
    return module


def load(name: str, helpers: str | None = None) -> tuple[Target, dict[str, Any]]:
    """:func:`import_factory`, then :func:`build`."""
    module, factory = import_factory(name)
    return build(name, module, factory, helpers)


def import_factory(name: str) -> tuple[types.ModuleType, Any]:
    """Import the target's module (run its code) and get the factory.

    Raises:
        LoadError: The name is malformed, importing raised or exited, or no such attribute.
    """
    module_name, sep, attr = name.rpartition(":")
    if not sep or not module_name or not attr:
        raise LoadError(
            "usage",
            "target must be `module:attr` or `path/to/file.py:attr`, e.g. `batchapply:BatchApply`; "
            f"got {name!r}",
        )
    try:
        module = _import(module_name)
    except BaseException as e:  # SystemExit too: the target must not end the run
        why = f"SystemExit({e.code!r})" if isinstance(e, SystemExit) else _one_line(e)
        raise LoadError("import", f"cannot import the target's module {module_name!r}: {why}") from None
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise LoadError(
            "import", f"cannot load target {name!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None
    return module, factory


def build(
    name: str, module: types.ModuleType, factory: Any, helpers: str | None = None
) -> tuple[Target, dict[str, Any]]:
    """The Target (which may call the factory to see which options it takes) and its helpers;
    notes for the report.

    Helpers are looked up in ``helpers`` (a module name) when given, else in the module
    named on the command line and then in the module that defines the factory (so
    ``haiku:BatchApply`` finds those of ``haiku._src.basic``). A helper of another
    signature than SPEC's is kept (its checks will say how it differs) and noted.
    """
    module_name, _, attr = name.rpartition(":")
    stem = module.__name__
    try:
        target = Target.load(f"{stem}:{attr}") if module_name.endswith(".py") else Target.load(name)
    except BaseException as e:
        raise LoadError("construct", f"`{name}` raised at construction: {_one_line(e)}") from None
    places = [helpers] if helpers else [module.__name__, getattr(factory, "__module__", None)]
    found: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for place in dict.fromkeys(p for p in places if p):
        try:
            where = importlib.import_module(place) if place != module.__name__ else module
        except BaseException as e:
            if helpers:
                raise LoadError(
                    "usage", f"argument --helpers: cannot import {place!r}: {_one_line(e)}"
                ) from None
            continue
        for helper in HELPERS:
            if helper not in found and callable(getattr(where, helper, None)):
                found[helper], origin[helper] = getattr(where, helper), place
    notes = [
        f"`{origin[h]}.{h}` does not take SPEC's {HELPERS[h]}; its BA-9 checks judge it as SPEC's "
        "helper (pass --helpers MODULE to name the module with SPEC's helpers)"
        for h, fn in found.items()
        if not _takes(fn, HELPERS[h].count(",") + 1)
    ]
    holder = types.ModuleType(module.__name__)
    holder.__dict__.update(found)
    target = dataclasses.replace(target, name=name, module=holder)
    info = {"options": sorted(target.options), "helpers": {h: origin[h] for h in found}, "notes": notes}
    return target, info


def _takes(fn: Any, count: int) -> bool:
    try:
        inspect.signature(fn).bind(*[None] * count)
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): give it the benefit of the doubt
        return True
    return True


def preflight(target: Target) -> None:
    """``make(identity, 2)(np.zeros((2, 3, 4)))``, which every BatchApply handles.

    Raises:
        LoadError: ``factory`` when the target does not have a factory's shape,
            ``construct`` when it does but raised on that tiny case.
    """
    import numpy as np

    try:
        inspect.signature(target.factory).bind(_identity, 2)
    except TypeError as e:
        raise LoadError(
            "factory", f"`{target.name}` is not a BatchApply factory make(f, num_dims) -> callable: {e}"
        ) from None
    except ValueError:
        pass
    try:
        apply = target.factory(_identity, 2)
    except BaseException as e:
        raise LoadError(
            "construct",
            f"`{target.name}` raised at construction: make(identity, 2) raised {_one_line(e)} "
            "(nothing can be checked; is the target built for the installed versions?)",
        ) from None
    if not callable(apply):
        raise LoadError(
            "factory",
            f"`{target.name}` is not a BatchApply factory make(f, num_dims) -> callable: "
            f"make(identity, 2) returned {type(apply).__name__}, not a callable",
        )
    try:
        apply(np.zeros((2, 3, 4), np.float32))
    except BaseException as e:
        raise LoadError(
            "construct",
            f"`{target.name}` cannot run the simplest call: make(identity, 2)(np.zeros((2, 3, 4))) "
            f"raised {_one_line(e)}",
        ) from None
