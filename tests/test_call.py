"""Example-based tests of the call algorithm (SPEC sections 1 to 7), run on both packages."""

from __future__ import annotations

import collections
import inspect
import re
import types
from typing import Any

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

Pair = collections.namedtuple("Pair", ["first", "second"])


def recording(result: Any = None) -> tuple[list[tuple[tuple[Any, ...], dict[str, Any]]], Any]:
    """A function that records each call's arguments and returns ``result`` (or its first argument)."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def f(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return args[0] if result is None else result

    return calls, f


def c_order_rows(x: np.ndarray, num_dims: int) -> list[np.ndarray]:
    """The rows of ``x`` over its leading dims, enumerated with np.unravel_index."""
    leading = x.shape[:num_dims]
    return [x[np.unravel_index(i, leading)] for i in range(int(np.prod(leading)))]


# ---- Section 1: terms ---------------------------------------------------------------


@pytest.mark.spec("BA-1.1")
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.zeros((2, 3)), True),
        (np.float32(1.0), True),
        (jnp.zeros(()), True),
        (1.0, False),
        (3, False),
        ("abc", False),
        ([[1, 2], [3, 4]], False),
        (None, False),
        (object(), False),
    ],
    ids=["ndarray", "np-scalar", "jax-array", "float", "int", "str", "nested-list", "None", "object"],
)
def test_array_leaf_classification(lib: types.ModuleType, value: Any, expected: bool) -> None:
    assert lib.ndim_at_least(value, 0) is expected


@pytest.mark.spec("BA-1.1", "BA-1.2")
def test_strings_and_python_scalars_are_not_converted(lib: types.ModuleType) -> None:
    # Haiku/flax.linen call jnp.asarray on every leaf and crash on the string.
    calls, f = recording()
    label, scale, marker = "abc", 2.5, object()
    lib.BatchApply(f)(np.ones((2, 3, 4)), label, scale, marker)
    ((args, _),) = calls
    assert args[1] is label and args[2] is scale and args[3] is marker


@pytest.mark.spec("BA-1.2", "BA-1.4")
def test_low_rank_and_unselected_leaves_reach_f_as_the_same_object(lib: types.ModuleType) -> None:
    calls, f = recording()
    x, bias, weight = np.ones((2, 3, 4)), np.ones(4), np.ones((4, 5))
    lib.BatchApply(f, in_axes=(0, 0, None))(x, bias, weight)
    ((args, _),) = calls
    assert args[0].shape == (6, 4)
    assert args[1] is bias
    assert args[2] is weight


@pytest.mark.spec("BA-1.3", "BA-3.1")
def test_leading_shape_comes_from_the_first_leaf_args_before_sorted_kwargs(lib: types.ModuleType) -> None:
    f = lib.BatchApply(lambda **kw: kw)
    with pytest.raises(ValueError) as info:
        f(b=np.zeros((3, 2, 1)), a=np.zeros((2, 3, 1)))
    message = str(info.value)
    assert "kwargs['a'] has (2, 3), kwargs['b'] has (3, 2)" in message
    with pytest.raises(ValueError) as info:
        lib.BatchApply(lambda *a, **k: a[0])(np.zeros((4, 4, 1)), a=np.zeros((2, 3, 1)))
    assert "args[0] has (4, 4), kwargs['a'] has (2, 3)" in str(info.value)


@pytest.mark.spec("BA-1.3")
def test_error_paths_are_keystr_paths(lib: types.ModuleType) -> None:
    tree = {"pair": Pair(np.zeros((2, 3, 1)), [np.zeros((3, 2, 1))])}
    with pytest.raises(ValueError) as info:
        lib.BatchApply(lambda t: t)(tree)
    message = str(info.value)
    assert "args[0]['pair'].first has (2, 3)" in message
    assert "args[0]['pair'].second[0] has (3, 2)" in message


# ---- Section 2: construction ----------------------------------------------------------


@pytest.mark.spec("BA-2.1")
def test_constructor_signature(lib: types.ModuleType) -> None:
    signature = inspect.signature(lib.BatchApply)
    assert [(p.name, p.kind, p.default) for p in signature.parameters.values()] == [
        ("f", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("num_dims", inspect.Parameter.POSITIONAL_OR_KEYWORD, 2),
        ("in_axes", inspect.Parameter.KEYWORD_ONLY, 0),
        ("out_axes", inspect.Parameter.KEYWORD_ONLY, 0),
        ("chunk_size", inspect.Parameter.KEYWORD_ONLY, None),  # section 13
        ("row_order", inspect.Parameter.KEYWORD_ONLY, "C"),  # section 14
    ]


@pytest.mark.spec("BA-2.1")
def test_constructor_annotations(lib: types.ModuleType) -> None:
    """The API reference shows these types for both packages, not ``Any`` (issue 27)."""
    annotations = {name: p.annotation for name, p in inspect.signature(lib.BatchApply).parameters.items()}
    assert annotations == {
        "f": "Callable[..., Any]",
        "num_dims": "int",
        "in_axes": "Literal[0] | tuple[PyTree, ...] | list[PyTree] | None",
        "out_axes": "Literal[0] | PyTree | None",
        "chunk_size": "int | None",
        "row_order": "Literal['C', 'shard_major'] | tuple[int, ...] | list[int]",
    }


@pytest.mark.spec("BA-2.2")
@pytest.mark.parametrize("num_dims", [1, 3, np.int64(2), np.uint8(1)], ids=repr)
def test_num_dims_accepts_integers(lib: types.ModuleType, num_dims: Any) -> None:
    n = int(num_dims)
    x = np.arange(24).reshape(2, 3, 2, 2)
    out = lib.BatchApply(lambda y: y * 2, num_dims)(x)
    np.testing.assert_array_equal(out, x * 2)
    assert out.shape == x.shape and n >= 1


@pytest.mark.spec("BA-2.2")
@pytest.mark.parametrize(
    ("num_dims", "error"),
    [
        (True, TypeError),
        (False, TypeError),
        (2.0, TypeError),
        ("2", TypeError),
        (None, TypeError),
        (0, ValueError),
        (-1, ValueError),
    ],
    ids=repr,
)
def test_num_dims_is_checked_at_construction(lib: types.ModuleType, num_dims: Any, error: type) -> None:
    with pytest.raises(error, match="num_dims"):
        lib.BatchApply(lambda x: x, num_dims)


@pytest.mark.spec("BA-2.3")
def test_f_must_be_callable(lib: types.ModuleType) -> None:
    with pytest.raises(TypeError, match="`f` must be callable"):
        lib.BatchApply("not a function")


@pytest.mark.spec("BA-2.4")
@pytest.mark.parametrize("bad", [1, -1, 0.0, False, "0", (0, 1), {"w": 2}], ids=repr)
@pytest.mark.parametrize("option", ["in_axes", "out_axes"])
def test_axis_values_other_than_zero_or_none_are_rejected(
    lib: types.ModuleType, option: str, bad: Any
) -> None:
    if option == "in_axes":
        bad = (bad,)  # a bare non-int would be caught by BA-2.5 first
    with pytest.raises(ValueError, match="axis values must be 0 or None"):
        lib.BatchApply(lambda x: x, **{option: bad})


@pytest.mark.spec("BA-2.5")
def test_in_axes_top_level_type(lib: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="`in_axes` must be 0, None, or a tuple"):
        lib.BatchApply(lambda x: x, in_axes={"x": 0})
    x, w = np.ones((2, 3, 4)), np.ones((4, 5))
    out = lib.BatchApply(lambda a, b: a @ b, in_axes=[0, None])(x, w)
    np.testing.assert_array_equal(out, x @ w)


@pytest.mark.spec("BA-2.5", "BA-2.4")
@pytest.mark.parametrize(
    ("in_axes", "prefix"),
    [
        (Pair(0, None), "`in_axes` must be 0, None, or a tuple"),  # a tuple subclass: another type
        (True, "`in_axes` must be 0, None, or a tuple"),
        (np.int64(0), "`in_axes` must be 0, None, or a tuple"),
        (1, "axis values must be 0 or None"),  # an int: the right type, a wrong axis value
    ],
    ids=["namedtuple", "bool", "np-int64", "int-1"],
)
def test_in_axes_type_is_checked_exactly(lib: types.ModuleType, in_axes: Any, prefix: str) -> None:
    # Regression example from the differential fuzzer: the SPEC now says which row applies.
    with pytest.raises(ValueError, match=re.escape("BatchApply: " + prefix)):
        lib.BatchApply(lambda a, b: a, in_axes=in_axes)


# ---- Section 3: leading shape ---------------------------------------------------------


@pytest.mark.spec("BA-3.2")
def test_disagreeing_leading_shapes_raise_instead_of_regrouping(lib: types.ModuleType) -> None:
    # (2, 3) and (3, 2) both merge to 6 rows: Haiku and flax.linen return a silently
    # wrong grouping here.
    calls, f = recording()
    with pytest.raises(ValueError) as info:
        lib.BatchApply(f)(np.zeros((2, 3, 4)), np.zeros((3, 2, 4)))
    message = str(info.value)
    assert message.startswith("BatchApply: inputs disagree on their leading shape")
    assert "args[0] has (2, 3)" in message and "args[1] has (3, 2)" in message
    assert "in_axes=None" in message
    assert calls == []


@pytest.mark.spec("BA-3.2", "BA-4.4")
def test_weight_matrix_argument_needs_in_axes_none(lib: types.ModuleType) -> None:
    # Haiku merges W1 too and fails deep inside f with a dot_general error.
    def mlp(x: Any, w1: Any, w2: Any) -> Any:
        return np.tanh(x @ w1) @ w2

    rng = np.random.default_rng(0)
    x, w1, w2 = rng.normal(size=(5, 7, 4)), rng.normal(size=(4, 8)), rng.normal(size=(8, 3))
    with pytest.raises(ValueError, match="in_axes=None"):
        lib.BatchApply(mlp)(x, w1, w2)
    out = lib.BatchApply(mlp, in_axes=(0, None, None))(x, w1, w2)
    np.testing.assert_allclose(out, mlp(x.reshape(35, 4), w1, w2).reshape(5, 7, 3))


@pytest.mark.spec("BA-3.3")
@pytest.mark.parametrize("num_dims", [1, 2, 3])
def test_no_mergeable_leaf_uses_haikus_wording(lib: types.ModuleType, num_dims: int) -> None:
    calls, f = recording(result=0)
    with pytest.raises(ValueError, match=f"requires at least one input with ndim >= {num_dims}"):
        lib.BatchApply(f, num_dims)(np.zeros((1,) * (num_dims - 1)), "text", x=1.0)
    assert calls == []


# ---- Section 4: in_axes ---------------------------------------------------------------


@pytest.mark.spec("BA-4.1")
def test_in_axes_zero_merges_every_positional_leaf(lib: types.ModuleType) -> None:
    calls, f = recording()
    lib.BatchApply(f, in_axes=0)(np.zeros((2, 3, 4)), {"a": np.zeros((2, 3))})
    ((args, _),) = calls
    assert args[0].shape == (6, 4) and args[1]["a"].shape == (6,)


@pytest.mark.spec("BA-4.2", "BA-4.5")
def test_in_axes_none_passes_positional_leaves_and_still_merges_kwargs(lib: types.ModuleType) -> None:
    calls, f = recording(result=np.zeros(6))
    table = np.zeros((2, 3, 4))
    lib.BatchApply(f, in_axes=None)(table, x=np.zeros((2, 3, 4)))
    ((args, kwargs),) = calls
    assert args[0] is table
    assert kwargs["x"].shape == (6, 4)


@pytest.mark.spec("BA-4.3")
def test_in_axes_tuple_length_must_match(lib: types.ModuleType) -> None:
    calls, f = recording()
    with pytest.raises(ValueError, match=r"`in_axes` has 2 entries .* 3 positional"):
        lib.BatchApply(f, in_axes=(0, None))(np.zeros((2, 3)), np.zeros(2), np.zeros(2))
    assert calls == []


@pytest.mark.spec("BA-4.4")
def test_in_axes_entry_is_a_pytree_prefix(lib: types.ModuleType) -> None:
    calls, f = recording(result=np.zeros(6))
    params = {"w": np.zeros((2, 3, 4)), "b": np.zeros((2, 3, 5))}
    lib.BatchApply(f, in_axes=({"w": None, "b": 0},))(params)
    ((args, _),) = calls
    assert args[0]["w"] is params["w"]
    assert args[0]["b"].shape == (6, 5)


@pytest.mark.spec("BA-4.4")
@pytest.mark.parametrize(
    "entry",
    [{"w": None}, [None, 0], (None, 0, 0)],
    ids=["missing-key", "list-for-tuple", "too-long"],
)
def test_in_axes_entry_that_is_not_a_prefix_names_the_argument(lib: types.ModuleType, entry: Any) -> None:
    x = {"w": np.zeros((2, 3)), "b": np.zeros((2, 3))} if isinstance(entry, dict) else (np.zeros((2, 3)),) * 2
    with pytest.raises(ValueError, match="`in_axes` is not a pytree prefix") as info:
        lib.BatchApply(lambda a, b: a, in_axes=(0, entry))(np.zeros((2, 3)), x)
    assert "args[1]" in str(info.value)


# ---- Section 5: merge -----------------------------------------------------------------


@pytest.mark.spec("BA-5.1")
@pytest.mark.parametrize("num_dims", [1, 2, 3])
def test_merge_is_c_order(lib: types.ModuleType, num_dims: int) -> None:
    calls, f = recording()
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    lib.BatchApply(f, num_dims)(x)
    ((args, _),) = calls
    merged = args[0]
    assert merged.shape == (int(np.prod(x.shape[:num_dims])),) + x.shape[num_dims:]
    for i, row in enumerate(c_order_rows(x, num_dims)):
        np.testing.assert_array_equal(merged[i], row)


DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.uint8,
    np.uint32,
    np.float16,
    ml_dtypes.bfloat16,
    np.float32,
    np.complex64,
]


@pytest.mark.spec("BA-5.2", "BA-7.2")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dtype_is_preserved(lib: types.ModuleType, dtype: Any) -> None:
    calls, f = recording()
    x = (np.arange(24) % 3).astype(dtype).reshape(2, 3, 4)
    out = lib.BatchApply(f)(x)
    ((args, _),) = calls
    assert args[0].dtype == np.dtype(dtype)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, x)


@pytest.mark.spec("BA-5.2")
def test_string_arrays_merge_too(lib: types.ModuleType) -> None:
    words = np.array([["a", "bb"], ["ccc", "d"]])
    out = lib.BatchApply(lambda w: np.char.upper(w))(words)
    np.testing.assert_array_equal(out, np.char.upper(words))


@pytest.mark.spec("BA-5.3", "BA-7.2")
def test_numpy_inputs_stay_numpy(lib: types.ModuleType) -> None:
    calls, f = recording()
    out = lib.BatchApply(f)(np.zeros((2, 3, 4)))
    ((args, _),) = calls
    assert type(args[0]) is np.ndarray
    assert type(out) is np.ndarray


@pytest.mark.spec("BA-5.3", "BA-7.2")
def test_jax_inputs_stay_jax(lib: types.ModuleType) -> None:
    import jax

    calls, f = recording()
    out = lib.BatchApply(f)(jnp.arange(24.0).reshape(2, 3, 4))
    ((args, _),) = calls
    assert isinstance(args[0], jax.Array) and isinstance(out, jax.Array)
    np.testing.assert_array_equal(out, np.arange(24.0).reshape(2, 3, 4))


@pytest.mark.spec("BA-5.4")
@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 0, 4), (0, 0)])
def test_zero_size_leading_dims(lib: types.ModuleType, shape: tuple[int, ...]) -> None:
    calls, f = recording()
    x = np.zeros(shape, dtype=np.float32)
    out = lib.BatchApply(lambda y: f(y)[..., None] * 2)(x)
    ((args, _),) = calls
    assert args[0].shape == (0,) + shape[2:]
    assert out.shape == shape + (1,)


@pytest.mark.spec("BA-5.5")
def test_inputs_are_not_mutated(lib: types.ModuleType) -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    tree: dict[str, Any] = {"x": x, "extra": [np.ones((2, 3)), "tag"]}
    before_x, before_leaf = x.copy(), tree["extra"][0].copy()
    before_keys, before_list = list(tree), list(tree["extra"])
    lib.BatchApply(lambda t: {"y": t["x"] + 1})(tree)
    np.testing.assert_array_equal(x, before_x)
    np.testing.assert_array_equal(tree["extra"][0], before_leaf)
    assert list(tree) == before_keys and tree["extra"] == before_list
    assert tree["x"] is x and x.shape == (2, 3, 4)


# ---- Section 6: calling f -------------------------------------------------------------


@pytest.mark.spec("BA-6.1")
def test_f_is_called_once_with_the_call_structure(lib: types.ModuleType) -> None:
    calls, f = recording(result=np.zeros(6))
    lib.BatchApply(f)(
        np.zeros((2, 3)), Pair(np.zeros((2, 3, 1)), [1, 2]), None, scale=2.0, mask=np.ones((2, 3))
    )
    assert len(calls) == 1
    ((args, kwargs),) = calls
    assert len(args) == 3 and args[2] is None
    assert type(args[1]) is Pair and type(args[1].second) is list and args[1].second == [1, 2]
    assert sorted(kwargs) == ["mask", "scale"] and kwargs["scale"] == 2.0 and kwargs["mask"].shape == (6,)


@pytest.mark.spec("BA-6.2")
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_any_keyword_name_reaches_f(lib: types.ModuleType, chunk_size: int | None) -> None:
    """Issue 11, finding 12: `self`, `f` and the option names used to clash with __call__'s."""
    names = ("self", "f", "args", "kwargs", "num_dims", "in_axes", "chunk_size")
    calls, f = recording()
    lib.BatchApply(f, chunk_size=chunk_size)(np.zeros((2, 3)), **{name: i for i, name in enumerate(names)})
    assert len(calls) == (1 if chunk_size is None else 3) and all(
        kwargs == {name: i for i, name in enumerate(names)} for _, kwargs in calls
    )


@pytest.mark.spec("BA-6.2")
def test_keywords_named_self_reach_the_flax_wrappers() -> None:
    import jax.numpy as jnp
    from flax import linen as nn

    import batchapply.linen
    import batchapply.nnx

    def f(x: Any, self: Any, module: Any) -> Any:
        return x * self + module

    x = jnp.ones((2, 3, 4))
    assert batchapply.nnx.BatchApply(f)(x, self=2.0, module=1.0).shape == (2, 3, 4)

    class Caller(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            return batchapply.linen.BatchApply(f, chunk_size=2)(x, self=2.0, module=1.0)

    out: Any = Caller().apply({}, x)
    assert out.shape == (2, 3, 4)
    assert batchapply.nnx.BatchApply(f, chunk_size=2)(x, self=2.0, module=1.0).shape == (2, 3, 4)


@pytest.mark.spec("BA-6.1")
def test_exceptions_from_f_propagate_unchanged(lib: types.ModuleType) -> None:
    class Boom(Exception):
        pass

    def f(x: Any) -> Any:
        raise Boom("from f")

    with pytest.raises(Boom, match="from f"):
        lib.BatchApply(f)(np.zeros((2, 3)))


# ---- Section 7: split -----------------------------------------------------------------


@pytest.mark.spec("BA-7.1")
def test_output_structure_is_kept(lib: types.ModuleType) -> None:
    def f(x: Any) -> Any:
        return {"pair": Pair(x, [x * 2, None]), "name": "out"}

    out = lib.BatchApply(f)(np.ones((2, 3, 4)))
    assert set(out) == {"name", "pair"} and type(out["pair"]) is Pair
    assert out["pair"].first.shape == (2, 3, 4) and out["pair"].second[1] is None


@pytest.mark.spec("BA-7.2")
def test_split_is_c_order(lib: types.ModuleType) -> None:
    rows = np.arange(6 * 5).reshape(6, 5)
    out = lib.BatchApply(lambda x: rows)(np.zeros((2, 3, 1)))
    assert out.shape == (2, 3, 5)
    for i in range(6):
        np.testing.assert_array_equal(out[np.unravel_index(i, (2, 3))], rows[i])


@pytest.mark.spec("BA-7.3")
def test_rank_zero_output_gets_a_clear_error(lib: types.ModuleType) -> None:
    def f(x: Any) -> Any:
        return {"y": x, "loss": (x**2).mean()}

    with pytest.raises(ValueError) as info:
        lib.BatchApply(f)(np.ones((2, 3, 4)))
    message = str(info.value)
    assert message.startswith("BatchApply: cannot split output")
    assert "output['loss'] has shape ()" in message and "out_axes=None" in message
    out = lib.BatchApply(f, out_axes={"y": 0, "loss": None})(np.ones((2, 3, 4)))
    assert out["y"].shape == (2, 3, 4) and float(out["loss"]) == 1.0


@pytest.mark.spec("BA-7.3")
def test_wrong_leading_size_output_names_expected_size(lib: types.ModuleType) -> None:
    with pytest.raises(ValueError, match=r"output\[1\] has shape \(5, 2\); expected .* leading size of 6"):
        lib.BatchApply(lambda x: (x, np.zeros((5, 2))))(np.ones((2, 3, 4)))


@pytest.mark.spec("BA-7.4")
def test_non_array_and_unselected_outputs_are_returned_as_is(lib: types.ModuleType) -> None:
    tag, stats = object(), np.zeros((6, 2))
    out = lib.BatchApply(lambda x: (x, tag, 3.0, stats), out_axes=(0, 0, 0, None))(np.ones((2, 3, 4)))
    assert out[1] is tag and out[2] == 3.0 and out[3] is stats


@pytest.mark.spec("BA-7.5")
def test_out_axes_must_be_a_prefix_of_the_output(lib: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="`out_axes` is not a pytree prefix"):
        lib.BatchApply(lambda x: (x, x), out_axes={"a": 0})(np.ones((2, 3, 4)))
