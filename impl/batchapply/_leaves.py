"""What the planner reads from a leaf: its kind (SPEC BA-1.1), its placement, its memory.

Every private JAX import of the core is here, each with its fallback.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

try:  # private; only used to keep the traced program unchanged inside a trace
    from jax._src.core import trace_state_clean as _trace_state_clean
except ImportError:  # pragma: no cover - a jax without it: leaf types decide alone

    def _trace_state_clean() -> bool:
        return True


try:  # private; the eager chunks' host path (on_host) needs to see the transfer guards in force
    from jax._src import config as _jax_config

    _HOST_STATES: tuple[Any, ...] = (
        _jax_config.transfer_guard_host_to_device,
        _jax_config.transfer_guard_device_to_host,
        _jax_config.transfer_guard_device_to_device,
    )
except (ImportError, AttributeError):  # pragma: no cover - a jax without them: no host path
    _HOST_STATES = ()

try:  # private; the host path's put of a NumPy view, at the cost of a dispatch (put_views)
    from jax._src.core import ShapedArray as _ShapedArray
    from jax._src.lib import xla_client as _xla_client

    _batched_device_put: Any = _xla_client.batched_device_put
except (ImportError, AttributeError):  # pragma: no cover - jax.device_put instead
    _batched_device_put = None

ARRAY_TYPES = (np.ndarray, np.generic, jax.Array)

# Leaf kinds (SPEC BA-1.1), cached per type: type(x) and a dict lookup per leaf.
NOT_ARRAY, NUMPY, CONCRETE, TRACER, MATRIX = 0, 1, 2, 3, 4
_KINDS: dict[type, int] = {}


trace_state_clean = _trace_state_clean  # no wrapper: it runs on every eager call


def kind(x: Any) -> int:
    """The kind of one leaf. Tracer types are not cached: ``isinstance(t, jax.Array)``
    depends on the tracer's aval, not only on its type."""
    t = type(x)
    found = _KINDS.get(t)
    if found is not None:
        return found
    if issubclass(t, jax.core.Tracer):
        return TRACER if isinstance(x, jax.Array) else NOT_ARRAY
    if issubclass(t, np.matrix):
        found = MATRIX  # always 2-D: it cannot hold merged or split rows (E26)
    elif issubclass(t, (np.ndarray, np.generic)):
        found = NUMPY
    elif isinstance(x, jax.Array):
        found = CONCRETE
    else:
        found = NOT_ARRAY
    _KINDS[t] = found
    return found


def kinds(leaves: list[Any]) -> list[int]:
    """``kind`` of every leaf; the common case (all types known) runs at C speed."""
    found: list[Any] = list(map(_KINDS.get, map(type, leaves)))
    if None in found:
        found = [kind(x) if k is None else k for x, k in zip(leaves, found, strict=True)]
    return found


def eager(leaves: list[Any]) -> bool:
    """Whether this call runs outside any JAX trace: no tracer leaf, no transformation tracing."""
    return TRACER not in kinds(leaves) and _trace_state_clean()


@functools.cache
def several_devices() -> bool:
    return jax.device_count() > 1


def one_placement(xs: Sequence[jax.Array]) -> bool:
    """Whether one jitted program over ``xs`` keeps every leaf on its devices (BA-5.3, BA-5.6).

    jit places uncommitted arrays with the committed ones: with several devices, a mix of
    committed and uncommitted leaves goes leaf by leaf (committed leaves on different devices
    make jit raise, and the callers then go leaf by leaf too).
    """
    if not several_devices():
        return True
    committed = {x.committed for x in xs}
    return len(committed) == 1


def on_host(x: Any) -> bool:
    """Whether ``x`` is a ``jax.Array`` in CPU memory that NumPy can view and ``device_put`` can
    give back exactly (eager chunking, BA-13.4; a benchmark in BENCHMARKS.md, "Eager chunking").

    On a CPU device, ``np.asarray`` of an array is a view of its buffer and ``jax.device_put`` of
    a NumPy view aliases it: the chunks' rows and their concatenation then cost a slice and one
    copy, and no compile (a jitted slice or concatenation is a compile of about 50 ms per shape,
    a quarter of a small model's first call). Only where nothing can differ: one CPU device, a
    canonical dtype that is not weak, extended or sub-byte, and no transfer guard in force. An
    uncommitted array comes back uncommitted, on the default device, as from a jitted slice.
    """
    if kind(x) != CONCRETE or x.is_deleted():
        return False
    return host_dtype(x) and cpu_device(x.sharding) is not None and transfers_allowed()


@functools.lru_cache(maxsize=256)
def _host_dtype(dtype: Any, weak_type: bool, x64: bool) -> bool:  # x64: canonical dtypes change
    if weak_type or jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return False  # typed PRNG keys; weak types (device_put of NumPy rows makes them strong)
    return bool(jax.dtypes.canonicalize_dtype(dtype) == dtype and jax.dtypes.itemsize_bits(dtype) >= 8)


def host_dtype(x: Any) -> bool:
    """Whether a NumPy view of ``x`` (a ``jax.Array`` or its aval) comes back from ``device_put``
    with its dtype: canonical, not weak, extended or sub-byte (``on_host``)."""
    return _host_dtype(x.dtype, getattr(x, "weak_type", True), jax.config.read("jax_enable_x64"))


@functools.lru_cache(maxsize=256)
def cpu_device(sharding: Any) -> Any:
    """The CPU device where ``sharding`` places a whole array, or None (``on_host``)."""
    devices = sharding.device_set
    if len(devices) != 1:
        return None
    (device,) = devices
    return device if device.platform == "cpu" else None


def put_views(views: list[np.ndarray], likes: Sequence[jax.Array]) -> list[jax.Array] | None:
    """NumPy views of CPU ``jax.Array`` leaves (``on_host``'s dtypes), each as a ``jax.Array``
    on the device of its ``like``, with its sharding and ``committed``: aliases, no copy. None
    where a ``like`` is not on one CPU device, or is uncommitted but not on the device where jax
    would place its result (``jax.default_device``; BA-5.6: it follows JAX's placement).

    jax's own batched put, the one ``jax.device_put`` ends in, without its Python checks
    (about 5 against 22 microseconds a leaf); ``jax.device_put`` where that is gone.
    """
    if several_devices():
        shardings = [x.sharding for x in likes]
        devices = list(map(cpu_device, shardings))
        if None in devices:
            return None
    else:  # one device: every leaf on it has the same sharding (on another backend, another)
        if not likes:
            return []
        sharding = likes[0].sharding
        device = cpu_device(sharding)
        if device is None or not all(x.sharding is sharding or x.sharding == sharding for x in likes):
            return None
        shardings, devices = [sharding] * len(likes), [device] * len(likes)
    committed = [x.committed for x in likes]
    placed = placement_device()
    if any(d != placed and not c for d, c in zip(devices, committed, strict=True)):
        return None
    put = _batched_device_put
    if put is not None:
        try:
            return [
                put(_aval(v.shape, v.dtype), s, [v], [d], c)
                for v, s, d, c in zip(views, shardings, devices, committed, strict=True)
            ]
        except TypeError:  # pragma: no cover - another signature: jax.device_put below
            pass
    return jax.device_put(views, [s if c else None for s, c in zip(shardings, committed, strict=True)])


def placement_device() -> Any:
    """The device where jax places the result of a computation on uncommitted arrays: that of
    ``jax.default_device`` (a device, or a platform's first device), else the first device."""
    chosen = _jax_config.default_device.value
    if chosen is None:
        return _first_device()
    return jax.devices(chosen)[0] if isinstance(chosen, str) else chosen


@functools.cache
def _first_device() -> Any:
    return jax.local_devices()[0]


@functools.lru_cache(maxsize=1024)
def _aval(shape: tuple[int, ...], dtype: Any) -> Any:
    return _ShapedArray(shape, dtype)


def transfers_allowed() -> bool:
    """Whether no transfer guard is in force (the host path moves nothing, but device_put checks)."""
    return bool(_HOST_STATES) and all(state.value in (None, "allow") for state in _HOST_STATES)


# NumPy numbers that jnp.issubdtype calls numbers but no jax.Array can hold: the extended
# precisions, where they are wider than 64 bits (timedelta64, a signed integer to NumPy, by kind).
_WIDE_DTYPES = frozenset({np.dtype(np.longdouble), np.dtype(np.clongdouble)}) - {
    np.dtype(np.float64),
    np.dtype(np.complex128),
}


def jax_holds(y: Any) -> bool:
    """Whether a merged NumPy leaf becomes a tracer with the same values, dtype and meaning.

    Not for subclasses (a masked array would lose its mask), nor for dtypes that
    ``jnp.asarray`` changes (64-bit ones without ``jax_enable_x64``) or cannot hold
    (str, bytes, object, structured, datetime64, float0): BA-13.4.
    """
    if type(y) is not np.ndarray:
        return False
    dtype = y.dtype
    if (
        not (dtype == np.bool_ or jnp.issubdtype(dtype, jnp.number))
        or dtype.kind == "m"
        or dtype in _WIDE_DTYPES
    ):
        return False
    return bool(jax.dtypes.canonicalize_dtype(dtype) == dtype)


def committed_devices(x: Any) -> list[int] | None:
    """The device ids of a committed concrete ``jax.Array``; None for anything else (BA-13.7)."""
    if kind(x) != CONCRETE or not x.committed:
        return None
    return sorted(device.id for device in x.sharding.device_set)


def first_deleted(leaves: list[Any], indices: Sequence[int]) -> int | None:
    """The first ``i`` in ``indices`` whose leaf is a deleted ``jax.Array`` (E28), or None."""
    return next((i for i in indices if kind(leaves[i]) == CONCRETE and leaves[i].is_deleted()), None)
