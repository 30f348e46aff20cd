"""Golden cases: a readable, lossless JSON encoding of BatchApply calls and their outcomes.

A golden case pins one call: the options, the inputs, the name of a function
from ``batchapply_conformance.functions``, and either the expected output or the
expected error (type and SPEC message prefix). The corpus is written by
``python -m tests.golden.regenerate`` from the reference and ships inside the
wheel, so that any implementation can be replayed against it.

Encoding, one JSON object per value:

- containers: ``{"dict": {...}}``, ``{"list": [...]}``, ``{"tuple": [...]}``,
  ``{"namedtuple": "Name", "fields": {...}}``, ``{"none": null}``,
  ``{"ordereddict": {...}}`` (in its order), ``{"defaultdict": {...}, "default_factory": "list"}``
  (a factory of :data:`FACTORIES`);
- arrays: ``{"array": dtype, "shape": [...], "data": [...]}`` with the data
  flat in C order: ints and bools as JSON numbers, floats as JSON numbers when
  integral and otherwise as ``float.hex`` strings (lossless for float16,
  bfloat16, float32 and float64), complex as ``[real, imag]`` pairs; NumPy
  string arrays with their dtype as ``numpy.dtype.str`` spells it (``"<U3"``)
  and JSON strings;
- masked arrays: an array's fields with ``"masked_array"`` for ``"array"`` and
  ``"mask": [...]`` (flat, or ``null`` for no mask);
- a dict with keys that are not all ``str``: ``{"items": [[key, value], ...]}``, keys and
  values encoded; a ``numpy.matrix``: ``{"matrix": dtype, "shape": [...], "data": [...]}``;
- NumPy scalars: ``{"scalar": dtype, "data": [value]}``;
- Python scalars: ``{"int": 1}``, ``{"float": "0x1.8p+1"}``, ``{"bool": true}``,
  ``{"complex": [re, im]}``, ``{"str": "abc"}``;
- any other object: ``{"object": "name"}``, decoded to an :class:`Opaque`.

>>> import numpy as np
>>> encoded = encode({"x": np.array([0.5, 2.0], dtype=np.float16)})
>>> encoded
{'dict': {'x': {'array': 'float16', 'shape': [2], 'data': ['0x1.0000000000000p-1', 2]}}}
>>> decode(encoded)["x"]
array([0.5, 2. ], dtype=float16)
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.resources
import json
import math
import pathlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from batchapply_reference import _tree

GOLDEN_DIR_IN_WHEEL = "_golden"
REGENERATE_COMMAND = "python -m tests.golden.regenerate"


@dataclasses.dataclass(frozen=True)
class Opaque:
    """A stand-in for an arbitrary non-array object; equal when the names are."""

    name: str


_NAMEDTUPLES: dict[str, type] = {}


def namedtuple_type(name: str, fields: list[str]) -> type:
    """The namedtuple class used for ``name`` (one class per name, made on first use)."""
    if name not in _NAMEDTUPLES:
        _NAMEDTUPLES[name] = collections.namedtuple(name, fields)
    return _NAMEDTUPLES[name]


FACTORIES: dict[str, Any] = {"none": None, "list": list, "dict": dict, "int": int}
"""The ``default_factory`` values a golden ``defaultdict`` may have, by name."""


def _dtype(name: str) -> np.dtype[Any]:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _encode_number(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (complex, np.complexfloating)):
        return [_encode_number(value.real), _encode_number(value.imag)]
    value = float(value)  # exact for every float dtype up to float64
    if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value.hex()


def _decode_number(value: Any) -> Any:
    if isinstance(value, list):
        return complex(_decode_number(value[0]), _decode_number(value[1]))
    if isinstance(value, str):
        return float.fromhex(value)
    return value


def encode(tree: Any) -> Any:
    """The JSON-able encoding of a pytree of inputs or outputs (see the module docstring)."""
    if tree is None:
        return {"none": None}
    if type(tree) is dict and not all(type(key) is str for key in tree):
        return {"items": [[encode(key), encode(value)] for key, value in tree.items()]}
    if type(tree) in (dict, collections.OrderedDict):
        name = "dict" if type(tree) is dict else "ordereddict"
        return {name: {str(key): encode(value) for key, value in tree.items()}}
    if type(tree) is collections.defaultdict:
        factory = next(name for name, value in FACTORIES.items() if value is tree.default_factory)
        return {
            "defaultdict": {str(key): encode(value) for key, value in tree.items()},
            "default_factory": factory,
        }
    if isinstance(tree, np.matrix):
        matrix = encode(np.asarray(tree))
        return {"matrix": matrix["array"], "shape": matrix["shape"], "data": matrix["data"]}
    if _tree.is_namedtuple(tree):
        return {
            "namedtuple": type(tree).__name__,
            "fields": {f: encode(getattr(tree, f)) for f in tree._fields},
        }
    if type(tree) in (list, tuple):
        return {type(tree).__name__: [encode(child) for child in tree]}
    if isinstance(tree, np.generic):
        return {"scalar": tree.dtype.name, "data": [_encode_number(tree)]}
    if isinstance(tree, np.ma.MaskedArray):
        mask = np.ma.getmask(tree)
        fields = encode(np.ma.getdata(tree))
        return {
            "masked_array": fields["array"],
            "shape": fields["shape"],
            "data": fields["data"],
            "mask": None if mask is np.ma.nomask else [bool(v) for v in np.ravel(mask)],
        }
    if isinstance(tree, np.ndarray) or hasattr(tree, "__array_namespace__"):
        array = np.asarray(tree)
        if array.dtype.kind == "U":  # NumPy strings: the dtype as NumPy spells it ('<U3'), str data
            return {
                "array": array.dtype.str,
                "shape": list(array.shape),
                "data": [str(v) for v in array.ravel()],
            }
        if array.dtype.kind in "OSV" and array.dtype.name != "bfloat16":
            raise TypeError(
                f"golden.encode: arrays of dtype {array.dtype} are not supported; use numeric dtypes."
            )
        return {
            "array": array.dtype.name,
            "shape": list(array.shape),
            "data": [_encode_number(v) for v in array.ravel()],
        }
    for kind in (bool, int, float, complex):  # bool before int: True is an int too
        if type(tree) is kind:
            return {kind.__name__: _encode_number(tree)}
    if type(tree) is str:
        return {"str": tree}
    if isinstance(tree, Opaque):
        return {"object": tree.name}
    raise TypeError(
        f"golden.encode: cannot encode {type(tree).__name__}; use Opaque(name) for arbitrary objects."
    )


def matrix(array: Any) -> Any:
    """``np.matrix(array)`` without NumPy's PendingDeprecationWarning.

    The kit builds matrices on purpose (the rejection cases of SPEC E26 and E29); the warning
    would fail every check in a pytest suite run with ``filterwarnings = ["error"]``.

    >>> type(matrix(np.eye(2))).__name__
    'matrix'
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(array)


def decode(encoded: Any) -> Any:
    """The inverse of :func:`encode`: fresh NumPy arrays, Python containers and scalars."""
    kind = next(iter(encoded))
    value = encoded[kind]
    if kind == "none":
        return None
    if kind == "dict":
        return {key: decode(child) for key, child in value.items()}
    if kind == "items":
        return {decode(key): decode(child) for key, child in value}
    if kind == "matrix":
        return matrix(decode({"array": value, "shape": encoded["shape"], "data": encoded["data"]}))
    if kind == "ordereddict":
        return collections.OrderedDict((key, decode(child)) for key, child in value.items())
    if kind == "defaultdict":
        by_key = {key: decode(child) for key, child in value.items()}
        return collections.defaultdict(FACTORIES[encoded["default_factory"]], by_key)
    if kind == "masked_array":
        data = decode({"array": value, "shape": encoded["shape"], "data": encoded["data"]})
        mask = encoded["mask"]
        return np.ma.MaskedArray(data, mask=np.ma.nomask if mask is None else np.reshape(mask, data.shape))
    if kind == "namedtuple":
        fields = encoded["fields"]
        return namedtuple_type(value, list(fields))(*(decode(child) for child in fields.values()))
    if kind in ("list", "tuple"):
        children = [decode(child) for child in value]
        return children if kind == "list" else tuple(children)
    if kind == "array" and value[1:2] == "U":
        return np.array(encoded["data"], dtype=value).reshape(encoded["shape"])
    if kind in ("array", "scalar"):
        flat = np.array([_decode_number(v) for v in encoded["data"]], dtype=_dtype(value))
        return flat.reshape(encoded["shape"]) if kind == "array" else flat[0]
    if kind in ("int", "float", "bool", "complex"):
        return {"int": int, "float": float, "bool": bool, "complex": complex}[kind](_decode_number(value))
    if kind == "str":
        return value
    if kind == "object":
        return Opaque(value)
    raise ValueError(f"golden.decode: unknown kind {kind!r} in {encoded!r}")


@dataclasses.dataclass(frozen=True)
class GoldenCase:
    """One pinned call. ``expected`` and ``expected_error`` are exclusive."""

    name: str
    clauses: tuple[str, ...]
    function: str | None  # None: a non-callable stands in for f (error row E1)
    num_dims: Any  # usually an int; other values pin the num_dims errors (E2, E3)
    in_axes: Any
    out_axes: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    expected: Any = None
    expected_error: dict[str, str] | None = None
    target: str = "BatchApply"  # or a helper name: the args are then passed to that helper
    row_order: Any = "C"  # SPEC section 14; written to the file only when it is not "C"
    chunk_size: Any = None  # SPEC section 13; written to the file only when it is not None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "clauses": list(self.clauses),
            "target": self.target,
            "function": self.function,
            "num_dims": encode(self.num_dims),
            "in_axes": encode(self.in_axes),
            "out_axes": encode(self.out_axes),
            **({} if self.row_order == "C" else {"row_order": encode(self.row_order)}),
            **({} if self.chunk_size is None else {"chunk_size": encode(self.chunk_size)}),
            "args": encode(tuple(self.args)),
            "kwargs": encode(dict(self.kwargs)),
        }
        if self.expected_error is not None:
            record["expected_error"] = self.expected_error
        else:
            record["expected"] = encode(self.expected)
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> GoldenCase:
        return cls(
            name=record["name"],
            clauses=tuple(record["clauses"]),
            function=record["function"],
            num_dims=decode(record["num_dims"]),
            in_axes=decode(record["in_axes"]),
            out_axes=decode(record["out_axes"]),
            args=decode(record["args"]),
            kwargs=decode(record["kwargs"]),
            expected=decode(record["expected"]) if "expected" in record else None,
            expected_error=record.get("expected_error"),
            target=record["target"],
            row_order=decode(record["row_order"]) if "row_order" in record else "C",
            chunk_size=decode(record["chunk_size"]) if "chunk_size" in record else None,
        )

    def uses_extensions(self) -> bool:
        """Whether replaying needs ``in_axes``/``out_axes`` (not every BatchApply takes them)."""
        return not all(type(axes) is int and axes == 0 for axes in (self.in_axes, self.out_axes))


def dumps(cases: list[GoldenCase]) -> str:
    """A JSON-lines file: one case a line, so a review diff shows exactly which cases changed."""
    return "".join(json.dumps(case.to_json(), sort_keys=False) + "\n" for case in cases)


def loads(text: str) -> list[GoldenCase]:
    return [GoldenCase.from_json(json.loads(line)) for line in text.splitlines() if line.strip()]


def corpus_files() -> list[pathlib.Path]:
    """The shipped corpus (wheel package data), or a checkout's ``tests/golden`` in development.

    Raises FileNotFoundError with the command that writes the corpus when there is none.
    """
    shipped = importlib.resources.files("batchapply_conformance").joinpath(GOLDEN_DIR_IN_WHEEL)
    candidates = [
        pathlib.Path(str(shipped)),
        pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "cases",
    ]
    for folder in candidates:
        files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        if files:
            return files
    raise FileNotFoundError(
        f"no golden corpus (*.jsonl) in {' or '.join(map(str, candidates))}; "
        f"write it from a checkout with `{REGENERATE_COMMAND}`."
    )


def load_corpus() -> Iterator[tuple[str, GoldenCase]]:
    """Every (file stem, case) of the corpus, in file order."""
    for path in corpus_files():
        try:
            cases = loads(path.read_text())
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"golden file {path} is unreadable ({e}); rewrite it with `{REGENERATE_COMMAND}`."
            ) from e
        for case in cases:
            yield path.stem, case


NOT_CALLABLE = "not a function"


def replay(case: GoldenCase, api: Any, fn: Callable[..., Any] | None = None) -> Any:
    """Run ``case`` against ``api`` (a module with the public names of SPEC.md); the result.

    For ``target == "BatchApply"`` that is
    ``api.BatchApply(fn, num_dims[, in_axes=, out_axes=, chunk_size=, row_order=])(*args, **kwargs)``, ``fn``
    looked up in ``batchapply_conformance.functions`` unless given; for a helper target,
    ``getattr(api, target)(*args, **kwargs)``. Exceptions propagate.
    """
    if case.target != "BatchApply":
        return getattr(api, case.target)(*case.args, **case.kwargs)
    from batchapply_conformance import functions

    called: Any = fn
    if called is None:
        called = NOT_CALLABLE if case.function is None else functions.FUNCTIONS[case.function].fn
    options = {"in_axes": case.in_axes, "out_axes": case.out_axes} if case.uses_extensions() else {}
    if case.row_order != "C":
        options["row_order"] = case.row_order
    if case.chunk_size is not None:
        options["chunk_size"] = case.chunk_size
    return api.BatchApply(called, case.num_dims, **options)(*case.args, **case.kwargs)


# Floating results may differ in the last bits between array libraries (a jax tanh
# is not NumPy's); relative tolerances a few ulps wide for each floating dtype.
FLOAT_RTOL = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 1e-5, "float64": 1e-12, "complex64": 1e-5}


MISMATCH_KINDS = ("structure", "array_type", "dtype", "values", "leaf")
"""What :func:`mismatches` tells apart: container structure (BA-7.1), array type (BA-5.3,
BA-7.2), dtype (BA-5.2, BA-7.2), shape and values (BA-5.1, BA-7.2), and a non-array leaf
that is not the expected object (BA-7.4)."""


def mismatch(expected: Any, got: Any, *, exact: bool, path: str = "output") -> str | None:
    """Where and how ``got`` differs from ``expected`` (the first difference), or None when it matches.

    Containers must match in type and keys, arrays in type, dtype, shape and values
    (bit-identical when ``exact``, else within FLOAT_RTOL), other leaves by ``==``.

    >>> mismatch({"a": 1}, {"a": 1}, exact=True) is None
    True
    """
    found = mismatches(expected, got, exact=exact, path=path)
    return found[0][1] if found else None


def mismatches(expected: Any, got: Any, *, exact: bool, path: str = "output") -> list[tuple[str, str]]:
    """Every difference as ``(kind, message)``, ``kind`` from :data:`MISMATCH_KINDS`.

    Each property is compared on its own: an array of the wrong type still has its
    dtype and values compared, and a container of the wrong type its children.

    Examples:
        >>> import numpy as np
        >>> found = mismatches([np.zeros(2, np.int8)], (np.ones(2, np.int16),), exact=True)
        >>> print(*(kind for kind, _ in found))
        structure dtype values
    """
    found: list[tuple[str, str]] = []
    _collect(expected, got, exact, path, found)
    return found


def _collect(expected: Any, got: Any, exact: bool, path: str, found: list[tuple[str, str]]) -> None:
    containers = (dict, collections.OrderedDict, collections.defaultdict, list, tuple)
    if _tree.is_namedtuple(expected) or type(expected) in containers or expected is None:
        if type(got).__name__ != type(expected).__name__ or (expected is None) != (got is None):
            found.append(
                ("structure", f"{path}: expected a {type(expected).__name__}, got {type(got).__name__}")
            )
        if expected is None or got is None:
            return
        if isinstance(expected, dict):
            if not isinstance(got, dict):
                return
            if sorted(map(str, expected)) != sorted(map(str, got)):
                found.append(("structure", f"{path}: expected keys {sorted(expected)}, got {sorted(got)}"))
            elif type(expected) is collections.OrderedDict and list(map(str, expected)) != list(
                map(str, got)
            ):
                found.append(
                    ("structure", f"{path}: expected the key order {list(expected)}, got {list(got)}")
                )
            if getattr(expected, "default_factory", None) is not getattr(got, "default_factory", None):
                factories = tuple(getattr(tree, "default_factory", None) for tree in (expected, got))
                found.append(("structure", f"{path}: expected, then got, the default_factory {factories}"))
            pairs = [(f"{path}[{key!r}]", expected[key], got[key]) for key in expected if key in got]
        else:
            if not isinstance(got, (list, tuple)):
                return
            if len(expected) != len(got):
                found.append(("structure", f"{path}: expected {len(expected)} entries, got {len(got)}"))
                return
            pairs = [(f"{path}[{i}]", e, g) for i, (e, g) in enumerate(zip(expected, got, strict=True))]
        for child_path, e, g in pairs:
            _collect(e, g, exact, child_path, found)
        return
    if isinstance(expected, (np.ndarray, np.generic)):
        _collect_array(expected, got, exact, path, found)
        return
    if got is expected or _both_nan(got, expected):
        return
    if type(got) is not type(expected) or got != expected:
        found.append(("leaf", f"{path}: expected {expected!r}, got {got!r}"))


def _collect_array(
    expected: np.ndarray | np.generic, got: Any, exact: bool, path: str, found: list[tuple[str, str]]
) -> None:
    if not (isinstance(got, (np.ndarray, np.generic)) or hasattr(got, "__array_namespace__")):
        found.append(("array_type", f"{path}: expected an array, got {type(got).__name__}"))
    elif isinstance(expected, np.ndarray) and not isinstance(got, np.ndarray):
        kind = type(got).__name__
        found.append(
            ("array_type", f"{path}: expected a numpy.ndarray (NumPy inputs stay NumPy), got {kind}")
        )
        if not exact:
            return  # a floating f computes in its array library's own way: dtype and rounding may differ
    if isinstance(expected, np.ma.MaskedArray):  # BA-5.7: the type and mask stay
        if not isinstance(got, np.ma.MaskedArray):
            found.append(
                ("array_type", f"{path}: expected a numpy.ma.MaskedArray (BA-5.7), got {type(got).__name__}")
            )
            return
        mask = np.ma.getmaskarray(expected)
        if mask.shape != np.shape(got) or not np.array_equal(mask, np.ma.getmaskarray(got)):
            got_mask = np.ma.getmaskarray(got).tolist()
            found.append(("values", f"{path}: masks differ: expected {mask.tolist()}, got {got_mask}"))
            return
        # masked values are not compared: take them from ``expected``
        got_data = np.ma.getdata(got)
        got = np.where(mask, np.ma.getdata(expected).astype(got_data.dtype), got_data)
        expected = np.ma.getdata(expected)
    try:
        got = np.asarray(got)
    except Exception:
        return
    if got.dtype != expected.dtype:
        found.append(("dtype", f"{path}: expected dtype {expected.dtype}, got {got.dtype}"))
    if got.shape != expected.shape:
        found.append(("values", f"{path}: expected shape {list(expected.shape)}, got {list(got.shape)}"))
        return
    rtol = FLOAT_RTOL.get(expected.dtype.name)
    try:
        if got.dtype == expected.dtype and (exact or rtol is None):
            same = np.array_equal(expected, got, equal_nan=expected.dtype.kind in "fc")
        else:  # compared in a wide type, so that a dtype fault is not also a values fault
            wide = np.complex128 if "c" in (expected.dtype.kind, got.dtype.kind) else np.float64
            tol = 0.0 if exact or rtol is None else rtol
            same = np.allclose(got.astype(wide), expected.astype(wide), rtol=tol, atol=tol, equal_nan=True)
    except (TypeError, ValueError):
        same = False
    if not same:
        found.append(("values", f"{path}: values differ: expected {expected.tolist()}, got {got.tolist()}"))


def _both_nan(a: Any, b: Any) -> bool:
    """NaN is not equal to itself, but a NaN leaf passed through is the expected value."""
    return type(a) is type(b) and type(a) in (float, complex) and a != a and b != b
