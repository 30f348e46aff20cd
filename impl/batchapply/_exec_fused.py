"""Executor: the eager fused reshape (issues 6, 12 and 26).

Outside a trace, the concrete ``jax.Array`` leaves of a call are merged (or split) by cached
jitted programs, one per direction. A signature (leaf shapes, dtypes and leading shape) goes
leaf by leaf until its group programs are compiled, and no call waits for a group program,
which a background thread compiles once the signature repeats. Leaf by leaf means: on one CPU
device, NumPy views of the leaves' buffers put back where they were, with no program and no
copy (``Fused._through_host``; a first call then compiles nothing); elsewhere one small program
per leaf signature, which is what a per-leaf reshape compiles (as ``flax.linen.BatchApply``
does). Then groups of at most ``_GROUP_SIZE`` leaves per dispatch: one dispatch per direction
up to 1,024 leaves, and compile times that grow linearly with the leaves, where one program
over every leaf grows faster. The checks that need a leaf's shape run at trace time of the
program, once per signature: a program that cannot reshape its leaves returns None, and the
leaves then go one by one through the caller's ``one`` (``_exec_reshape``), which decides: the
SPEC error, or the reshape leaf by leaf.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import math
import operator
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from batchapply import _sharding
from batchapply._leaves import host_dtype, put_views, transfers_allowed

_GROUP_SIZE = 1024  # leaves per group program (issue 26: one dispatch per direction up to 1,024 leaves)
_WARM_BYTES = 64 * 2**20  # signatures above: leaf by leaf for good (see Fused)
# Until a signature's group programs are ready, leaves on one CPU device go through host memory
# (Fused._through_host): no compile, at the cost of a dispatch per leaf. False: one-leaf programs.
_HOST_PATH = True
_aval = operator.attrgetter("aval")

# What jax raises when one program cannot run its group: ValueError for leaves committed to
# different devices, ShardingTypeError where its reshape would move rows (Explicit mesh axes),
# RuntimeError for a deleted array. The leaves then go one by one.
_REFUSED: tuple[type[Exception], ...] = (ValueError, RuntimeError, *_sharding.SHARDING_TYPE_ERRORS)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _merge_fused(
    xs: list[jax.Array], num_dims: int, leading: tuple[int, ...]
) -> list[jax.Array | None] | None:
    """Merge every leaf of rank >= ``num_dims`` in one dispatch; None marks the others.

    Returns None (at trace time, once per signature) when a leaf disagrees on the leading
    shape (BA-3.2) or would move rows between devices (E23): the leaf-by-leaf path decides.
    """
    size = math.prod(leading)
    merged: list[jax.Array | None] = []
    for j, x in enumerate(xs):
        _pace(j)
        if x.ndim < num_dims:
            merged.append(None)  # pass-through; the caller keeps the very object (BA-1.2)
        elif tuple(x.shape[:num_dims]) != leading or not _sharding.c_order_is_local(x, num_dims):
            return None
        else:
            merged.append(jax.lax.reshape(x, (size,) + tuple(x.shape[num_dims:])))
    return merged


@functools.partial(jax.jit, static_argnums=1)
def _split_fused(ys: list[jax.Array], leading: tuple[int, ...]) -> list[jax.Array] | None:
    """Split every leaf in one dispatch; None (at trace time) where BA-7.3 or E23 must decide."""
    size = math.prod(leading)
    if any(y.ndim == 0 or y.shape[0] != size for y in ys):
        return None
    if not all(_sharding.c_order_is_local(y, 1) for y in ys):
        return None
    split = []
    for j, y in enumerate(ys):
        _pace(j)
        split.append(jax.lax.reshape(y, leading + tuple(y.shape[1:])))
    return split


def _merge_host(v: np.ndarray, num_dims: int, leading: tuple[int, ...]) -> np.ndarray | None:
    """``_merge_fused`` of one NumPy view of rank >= ``num_dims``; None where that program refuses."""
    if v.shape[:num_dims] != leading:
        return None
    return v.reshape((math.prod(leading),) + v.shape[num_dims:])


def _split_host(v: np.ndarray, leading: tuple[int, ...]) -> np.ndarray | None:
    """``_split_fused`` of one NumPy view; None where that program refuses (BA-7.3)."""
    if v.ndim == 0 or v.shape[0] != math.prod(leading):
        return None
    return v.reshape(leading + v.shape[1:])


_HOST_TWINS: dict[Callable[..., Any], Callable[..., np.ndarray | None]] = {
    _merge_fused: _merge_host,
    _split_fused: _split_host,
}


def _pace(j: int) -> None:
    """At trace time, in the background thread: every 8 leaves, let the calls have the GIL.

    Tracing a group program is Python work; without this, a call on the main thread would wait
    for the interpreter's switch interval each time the background thread holds the GIL.
    """
    if j % 8 == 7 and threading.get_ident() == BACKGROUND.ident:
        _sleep(0)
        _wait_for_calls()


# How many leaf-by-leaf reshapes run now, on any thread. Each of their dispatches gives the GIL
# up, and a background thread that wants it would take it for a switch interval each time (the
# convoy effect): while they run, the background thread waits at its pace points.
_LEAF_BY_LEAF_CALLS = [0]


def _wait_for_calls() -> None:
    """In the background thread: sleep while a leaf-by-leaf reshape runs (at most 10 s in all)."""
    for _ in range(20_000):
        if not _LEAF_BY_LEAF_CALLS[0]:
            return
        _sleep(0.0005)


_sleep = time.sleep


# What the table knows of a signature: seen once; its group programs compiling in the background;
# compiled (the steady state); or leaf by leaf for good (a program refused it, or its leaves are
# too large to warm a program on).
SEEN, COMPILING, READY, LEAF_BY_LEAF = "seen", "compiling", "ready", "leaf by leaf"


class _Signatures:
    """The signatures of the fused reshapes seen so far, with their state: a bounded table,
    oldest out first.

    ``jax.clear_caches()`` clears it too (it is registered with jax's cache registry when that
    private hook exists), so that a cleared process behaves like a fresh one.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._seen: dict[Any, str] = {}
        # Counts the clears and evictions: a state read as READY holds while the epoch is unchanged
        # (only those take a signature out of READY; _exec_steady relies on it).
        self.epoch = 0

    def visit(self, key: Any) -> str | None:
        """The state of ``key``, or None on its first visit (which records it as ``SEEN``)."""
        state = self._seen.get(key)
        if state is None:
            if len(self._seen) >= self.maxsize:
                self.epoch += 1
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread's
                    del self._seen[next(iter(self._seen))]
            self._seen[key] = SEEN
        return state

    def state(self, key: Any) -> str | None:
        """The state of ``key``, without recording a visit."""
        return self._seen.get(key)

    def set(self, key: Any, state: str) -> None:
        self._seen[key] = state

    def cache_clear(self) -> None:
        self.epoch += 1
        self._seen.clear()

    def cache_info(self) -> dict[str, int]:
        return {"maxsize": self.maxsize, "currsize": len(self._seen)}

    def cache_keys(self) -> list[Any]:
        return list(self._seen)


_SIGNATURES = _Signatures(4096)
try:  # private: lets jax.clear_caches() clear the table with jax's own caches
    from jax._src.util import register_cache as _register_cache

    _register_cache(_SIGNATURES, "batchapply eager reshape signatures")
except ImportError:  # pragma: no cover - clear it by hand: _SIGNATURES.cache_clear()
    pass


class _Background:
    """One daemon thread that compiles the group programs of repeated signatures (issue 26).

    XLA compiles without the GIL, so the calls that go on leaf by leaf meanwhile keep their
    speed on a machine with a core to spare. A job runs the programs once on the leaves of the
    call that scheduled it, which compiles them and fills jit's own dispatch cache, so that the
    first grouped call is as cheap as the next. At exit, queued jobs are dropped and the one
    running is waited for (a group's compile: well under a second).
    ``BATCHAPPLY_BACKGROUND_COMPILE=0`` compiles them in the call instead (the second call of a
    signature then pays the compiles, as before issue 26).
    """

    def __init__(self) -> None:
        self.enabled = os.environ.get("BATCHAPPLY_BACKGROUND_COMPILE", "1") != "0"
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.ident: int | None = None  # the thread's, once started
        # While a job runs: the most a call on another thread waits for the GIL (seconds); see
        # _short_switch_interval. None leaves the interpreter's setting alone.
        self.switch_interval: float | None = 0.0005
        # While a job runs, pause it at every Python call while a call goes leaf by leaf (_yielding).
        self.yield_to_calls = True

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the background (at once, here, when disabled)."""
        if not self.enabled:
            job()
            return
        if self._stopping:
            return
        self.start()
        self._jobs.put(job)

    def start(self) -> None:
        """Start the thread unless it runs: on a signature's first call, so that its second call,
        which submits the first job, does not pay for the thread's start (a tenth of a millisecond
        and more, against the 0.5 ms of a call of 10 leaves)."""
        if self.enabled and not self._stopping and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._work, name="batchapply-compile", daemon=True)
            self._thread.start()  # also after a fork, where the thread is gone
            self.ident = self._thread.ident

    def wait(self) -> None:
        """Until every job submitted so far has run (for tests and benchmarks)."""
        if self._thread is not None and self._thread.is_alive():
            self._jobs.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if not self._stopping:
                    with _short_switch_interval(self.switch_interval), _yielding(self.yield_to_calls):
                        job()
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def stop(self) -> None:
        """At exit: drop the queued jobs, wait a bounded time for the one running."""
        self._stopping = True
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=30)


@contextlib.contextmanager
def _yielding(on: bool) -> Iterator[None]:
    """In the background thread, for the block: pause at every Python call while a call on
    another thread goes leaf by leaf (``_wait_for_calls``).

    Tracing a program pauses at its pace points (``_pace``), but lowering it to MLIR is jax's
    own Python work (about 45 ms for 1,024 leaves): a profile function of this thread only
    (``sys.setprofile``) gives it pause points too. Restores the thread's profile function.
    """
    if not on:
        yield
        return
    before = sys.getprofile()
    sys.setprofile(_pause_for_calls)
    try:
        yield
    finally:
        sys.setprofile(before)


def _pause_for_calls(frame: Any, event: str, arg: Any) -> None:
    if _LEAF_BY_LEAF_CALLS[0] and event == "call":
        _wait_for_calls()


@contextlib.contextmanager
def _short_switch_interval(interval: float | None) -> Iterator[None]:
    """The interpreter's switch interval at most ``interval`` for the block, then as it was.

    A thread that wants the GIL waits up to the switch interval (5 ms by default) for the
    thread that holds it. Lowering a group program is Python work that the background thread
    cannot pause (jax's lowering), so meanwhile a call on the main thread would wait up to
    5 ms each time it gives the GIL up; 0.5 ms keeps a call of 100 leaves near its own cost.
    The setting is restored unless someone else changed it meanwhile.
    """
    before = sys.getswitchinterval()
    if interval is None or before <= interval:
        yield
        return
    sys.setswitchinterval(interval)
    try:
        yield
    finally:
        if sys.getswitchinterval() == interval:
            sys.setswitchinterval(before)


def epoch() -> int:
    """The signature table's epoch (``_Signatures.epoch``)."""
    return _SIGNATURES.epoch


BACKGROUND = _Background()
atexit.register(BACKGROUND.stop)
wait = BACKGROUND.wait

One = Callable[[Any, int], Any]
"""The leaf-by-leaf reshape of one leaf and its index, used where a program refuses."""


class Fused:
    """A jitted reshape (``_merge_fused``, ``_split_fused``) with its static arguments, run over
    the concrete ``jax.Array`` leaves of a call (issues 12 and 26).

    A signature (the program, its static arguments and every leaf's aval) goes leaf by leaf
    until its group programs are compiled: on its first call, so that the call compiles at most
    what a per-leaf reshape compiles (nothing on the host path, else one small program per leaf
    signature); on its second, which hands the group programs to the background thread; and on
    every call until they are ready. From then on, one dispatch per group of at most
    ``_GROUP_SIZE`` leaves. Signatures of more than ``_WARM_BYTES`` go leaf by leaf for good:
    warming their programs would copy them once more, and per-leaf dispatch costs little next to
    large leaves (and on the host path, nothing is copied).

    ``min_ndim``: leaves of lower rank come back as None (kept as they are) with no dispatch
    on the leaf-by-leaf path, as the program would return them.
    """

    __slots__ = ("fell_back", "min_ndim", "program", "static")

    def __init__(self, program: Callable[..., Any], static: tuple[Any, ...], min_ndim: int = 0) -> None:
        self.program = program
        self.static = static
        self.min_ndim = min_ndim
        self.fell_back = False  # whether some leaf went through `one`

    def __call__(self, xs: list[Any], at: Sequence[int], one: One) -> list[Any]:
        """Every leaf of ``xs`` reshaped (None: kept); ``at`` their indices, for ``one``."""
        key = (self.program, self.static, tuple(map(_aval, xs)))
        state = _SIGNATURES.visit(key)
        if state is READY:  # one dispatch per group of up to _GROUP_SIZE leaves
            ys = self.ready(xs)
            return self._one_by_one(xs, 0, at, one) if ys is None else ys  # refused: `one` decides
        if state is None:  # the first call: the thread that will compile them, idle for now
            BACKGROUND.start()
        elif state is SEEN:  # the second call: compile the group programs off the critical path
            warm = _bytes(xs) <= _WARM_BYTES
            _SIGNATURES.set(key, COMPILING if warm else LEAF_BY_LEAF)
            if warm:
                BACKGROUND.submit(functools.partial(self._warm, key, list(xs)))
                if _SIGNATURES.visit(key) is READY:  # compiled in the call (background disabled)
                    return self(xs, at, one)
        n = self.min_ndim
        _LEAF_BY_LEAF_CALLS[0] += 1  # the background thread waits meanwhile (_wait_for_calls)
        try:
            if _HOST_PATH and (through_host := self._through_host(xs, key[2])) is not None:
                return through_host
            return [self._group([x], j, at, one)[0] if x.ndim >= n else None for j, x in enumerate(xs)]
        finally:
            _LEAF_BY_LEAF_CALLS[0] -= 1

    def ready_epoch(self, xs: list[Any]) -> int | None:
        """The table's epoch if the group programs of ``xs`` are compiled (the steady state):
        they stay so while the epoch is unchanged. None if they are not."""
        epoch = _SIGNATURES.epoch
        if _SIGNATURES.state((self.program, self.static, tuple(map(_aval, xs)))) is not READY:
            return None
        return epoch

    def ready(self, xs: list[Any]) -> list[Any] | None:
        """The group programs over ``xs`` in the steady state, or None, with no leaf by leaf
        where a program refused its group (see ``_REFUSED``): the caller decides."""
        if len(xs) <= _GROUP_SIZE:
            try:
                return self.program(xs, *self.static)  # None: refused
            except _REFUSED:
                return None
        ys: list[Any] = []
        for start in range(0, len(xs), _GROUP_SIZE):
            try:
                group = self.program(xs[start : start + _GROUP_SIZE], *self.static)
            except _REFUSED:
                return None
            if group is None:
                return None
            ys += group
        return ys

    def _through_host(self, xs: list[Any], avals: tuple[Any, ...]) -> list[Any] | None:
        """The program's reshapes as NumPy views of CPU leaves, each put back where its leaf is:
        no compile and no copy (``_leaves.put_views``). None where a leaf is not a CPU leaf that
        ``on_host`` accepts, or where the program would refuse it (then ``one`` decides)."""
        host = _HOST_TWINS.get(self.program)
        if host is None or not transfers_allowed():
            return None
        n = self.min_ndim
        at = [j for j, aval in enumerate(avals) if aval.ndim >= n]  # the others are kept (None)
        todo = [xs[j] for j in at] if len(at) < len(xs) else xs
        if not all(map(host_dtype, {avals[j] for j in at})) or any(x.is_deleted() for x in todo):
            return None
        views = [host(np.asarray(x), *self.static) for x in todo]
        if any(map(operator.is_, views, itertools.repeat(None))):
            return None
        put = put_views(views, todo)  # type: ignore[arg-type]  # no None left in views
        if put is None or len(at) == len(xs):
            return put
        ys: list[Any] = [None] * len(xs)
        for j, y in zip(at, put, strict=True):
            ys[j] = y
        return ys

    def _warm(self, key: Any, xs: list[Any]) -> None:
        """Compile (and run once) the group programs of ``xs``; then the signature is ``READY``.

        A program that refuses the leaves (returns None, or raises ``_REFUSED``) leaves the
        signature leaf by leaf, where ``one`` decides; a deleted leaf lets a later call retry.
        """
        state = READY
        try:
            for start in range(0, len(xs), _GROUP_SIZE):
                _wait_for_calls()
                if self.program(xs[start : start + _GROUP_SIZE], *self.static) is None:
                    state = LEAF_BY_LEAF
                    break
        except RuntimeError:  # a leaf deleted since the call: the next call schedules it again
            state = SEEN
        except Exception:  # refused (see _REFUSED), or anything else: leaf by leaf stays correct
            state = LEAF_BY_LEAF
        _SIGNATURES.set(key, state)

    def _group(self, group: list[Any], start: int, at: Sequence[int], one: One) -> list[Any]:
        """The program over ``group`` (``xs[start:]``); leaf by leaf with ``one`` where it refuses."""
        try:
            ys = self.program(group, *self.static)
        except _REFUSED:  # see _REFUSED; `one` raises E23 with the leaf's path, or marks E9/E28
            ys = None
        return self._one_by_one(group, start, at, one) if ys is None else ys

    def _one_by_one(self, group: list[Any], start: int, at: Sequence[int], one: One) -> list[Any]:
        """``group`` (``xs[start:]``) leaf by leaf with ``one``: where the program refuses."""
        self.fell_back = True
        return [one(x, at[start + j]) for j, x in enumerate(group)]


def _bytes(xs: list[Any]) -> int:
    """The bytes of the leaves ``xs``, read once per signature."""
    try:
        return sum(x.nbytes for x in xs)
    except Exception:  # an array type without nbytes: too large to warm, to be safe
        return _WARM_BYTES + 1
