"""Eager dispatches and compiles, counted, not timed (issues 6, 12 and 26).

Once a signature's group programs are compiled, an eager call costs one dispatch per group of
at most 1,024 leaves and direction (issue 6: O(1) for up to 1,024 leaves). Until then it goes
leaf by leaf, each leaf through a one-leaf program cached per leaf signature: its first call
compiles no more than a per-leaf reshape would (issue 12: no compile cliff), and its second
hands the group programs to a background thread, so that no call waits for them (issue 26).
``_exec_fused.wait()`` waits for that thread. Leaves on one CPU device take no program at all
until then: NumPy views of their buffers, put back where they were (the host path, issue 26);
the tests of the one-leaf programs turn it off (``_HOST_PATH``), as it is off on accelerators.

Every eager primitive dispatch goes through ``jax.extend.core.Primitive.bind`` in Python,
while a call of a cached jitted function does not (tracing a new program does); the two
fused reshapes of ``batchapply._exec_fused`` are counted by wrapping them, and their compiles by
the size of their jit caches. A per-leaf implementation (flax.linen.BatchApply) shows up in
the same counter, so the counter is known to see what it is meant to see.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jax_core

import batchapply
from batchapply import _exec_fused

LEAF_COUNTS = [1, 10, 300, 1024]
GROUP = _exec_fused._GROUP_SIZE


def tree_of(n_leaves: int, make: Callable[..., Any] = jnp.full, distinct: bool = False) -> dict[str, Any]:
    """``n_leaves`` leaves of shape ``(4, 8, 16)``; ``distinct``: of shapes ``(4, 8, 1 + i)``."""
    return {f"k{i:04d}": make((4, 8, 1 + i if distinct else 16), i, np.float32) for i in range(n_leaves)}


def identity(tree: Any) -> Any:
    return tree


@pytest.fixture
def dispatches(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts eager primitive binds ("primitive") and calls of the two fused reshapes
    ("merge", "split"); ``dispatches.sizes`` lists how many leaves each of those calls got."""
    counts: Counter[str] = Counter()
    sizes: dict[str, list[int]] = {"merge": [], "split": []}
    background: list[int] = []  # the sizes of the fused reshapes that the background thread ran
    bind = jax_core.Primitive.bind

    def counting_bind(self: Any, *args: Any, **params: Any) -> Any:
        counts["primitive"] += 1
        return bind(self, *args, **params)

    def counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                counts[name] += 1
                sizes[name].append(len(args[0]))
            else:
                background.append(len(args[0]))
            return fn(*args)

        return wrapper

    monkeypatch.setattr(jax_core.Primitive, "bind", counting_bind)
    monkeypatch.setattr(_exec_fused, "_HOST_PATH", False)  # the one-leaf programs, as on accelerators
    monkeypatch.setattr(_exec_fused, "_merge_fused", counted("merge", _exec_fused._merge_fused))
    monkeypatch.setattr(_exec_fused, "_split_fused", counted("split", _exec_fused._split_fused))
    _exec_fused.wait()
    _exec_fused._SIGNATURES.cache_clear()
    counts.sizes = sizes  # type: ignore[attr-defined]
    counts.background = background  # type: ignore[attr-defined]
    yield counts
    _exec_fused.wait()


def clear(dispatches: Counter[str]) -> None:
    dispatches.clear()
    for sizes in dispatches.sizes.values():  # type: ignore[attr-defined]
        sizes.clear()


@pytest.mark.parametrize("n_leaves", LEAF_COUNTS)
def test_repeated_eager_call_costs_one_dispatch_per_group(dispatches: Counter[str], n_leaves: int) -> None:
    tree = tree_of(n_leaves)
    apply = batchapply.BatchApply(identity)
    jax.block_until_ready(apply(tree))  # the signature's first call: leaf by leaf
    jax.block_until_ready(apply(tree))  # it repeats: the background thread compiles the groups
    _exec_fused.wait()
    clear(dispatches)
    out = apply(tree)
    groups = math.ceil(n_leaves / GROUP)
    assert dispatches == Counter({"merge": groups, "split": groups})  # no primitive dispatch either
    assert all(v.shape == (4, 8, 16) for v in out.values())
    np.testing.assert_array_equal(out[f"k{n_leaves - 1:04d}"], tree[f"k{n_leaves - 1:04d}"])


def test_the_counter_sees_per_leaf_dispatches(dispatches: Counter[str]) -> None:
    tree = tree_of(10)
    apply = nn.BatchApply(lambda t: t)
    jax.block_until_ready(apply(tree))
    dispatches.clear()
    apply(tree)
    assert dispatches["primitive"] >= 20  # one reshape per leaf and direction


def test_numpy_leaves_cost_no_dispatch(dispatches: Counter[str]) -> None:
    # Twice: a repeated signature must not dispatch an empty group program either (kills
    # `n_concrete > 0` -> `n_concrete >= 0` in impl/batchapply/_exec_reshape.py).
    tree = tree_of(100, np.full)
    apply = batchapply.BatchApply(lambda t: t)
    out = apply(tree)
    out = apply(tree)
    assert sum(dispatches.values()) == 0
    assert all(type(v) is np.ndarray and v.shape == (4, 8, 16) for v in out.values())


def test_mixed_leaves_cost_two_dispatches(dispatches: Counter[str]) -> None:
    tree: dict[str, Any] = {**tree_of(50), "np": np.ones((4, 8, 3)), "tag": "text", "bias": jnp.ones(3)}
    apply = batchapply.BatchApply(lambda t: {"y": t["k0049"], "np": t["np"]})
    for _ in range(2):  # first call, then the one that hands the group programs to the background
        jax.block_until_ready(apply(tree))
    _exec_fused.wait()
    clear(dispatches)
    out = apply(tree)
    assert dispatches == Counter({"merge": 1, "split": 1})
    assert type(out["np"]) is np.ndarray and out["y"].shape == (4, 8, 16)


def test_tracers_use_plain_reshapes(dispatches: Counter[str]) -> None:
    tree = tree_of(10)
    jax.make_jaxpr(batchapply.BatchApply(lambda t: t))(tree)
    assert dispatches["merge"] == dispatches["split"] == 0


@pytest.mark.spec("BA-1.2")
def test_eager_low_rank_jax_leaves_are_passed_through_as_the_same_object() -> None:
    calls = []
    bias, weight = jnp.ones(16), jnp.ones((16, 5))
    x = jnp.ones((4, 8, 16))

    def f(x: jax.Array, bias: jax.Array, weight: jax.Array) -> jax.Array:
        calls.append((bias, weight))
        return x + bias

    out = batchapply.BatchApply(f, in_axes=(0, 0, None))(x, bias, weight)
    assert calls == [(bias, weight)] and calls[0][0] is bias and calls[0][1] is weight
    assert out.shape == (4, 8, 16)


@pytest.mark.spec("BA-3.2")
def test_eager_leading_shape_error_names_every_leaf() -> None:
    tree = {"a": jnp.zeros((2, 3, 1)), "b": jnp.zeros((3, 2, 1)), "c": np.zeros((3, 3))}
    with pytest.raises(ValueError, match="inputs disagree") as info:
        batchapply.BatchApply(lambda t: t)(tree)
    assert "args[0]['a'] has (2, 3), args[0]['b'] has (3, 2), args[0]['c'] has (3, 3)" in str(info.value)


@pytest.mark.spec("BA-7.3")
def test_eager_output_error_names_every_leaf() -> None:
    def f(x: jax.Array) -> dict[str, jax.Array]:
        return {"loss": x.sum(), "y": x, "z": x[:5]}

    with pytest.raises(ValueError, match="cannot split output") as info:
        batchapply.BatchApply(f)(jnp.ones((2, 3, 4)))
    assert "output['loss'] has shape (), output['z'] has shape (5, 4)" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no internal signal shown


@pytest.mark.spec("BA-3.2")
def test_eager_leading_shape_error_hides_the_internal_signal() -> None:
    with pytest.raises(ValueError, match="inputs disagree") as info:
        batchapply.BatchApply(lambda a, b: a)(jnp.zeros((2, 3, 1)), jnp.zeros((3, 2, 1)))
    assert info.value.__suppress_context__


def test_leaves_on_different_devices_fall_back_to_one_reshape_per_leaf() -> None:
    # One fused jit cannot take arrays committed to different devices; the per-leaf path can.
    script = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax, jax.numpy as jnp, numpy as np
        from batchapply import BatchApply
        d0, d1 = jax.devices("cpu")[:2]
        tree = {"a": jax.device_put(jnp.ones((2, 3, 4)), d0), "b": jax.device_put(jnp.ones((2, 3, 5)), d1)}
        for _ in range(3):  # leaf by leaf, then the group programs (which refuse and fall back)
            out = BatchApply(lambda t: t)(tree)
            assert out["a"].shape == (2, 3, 4) and out["b"].shape == (2, 3, 5)
            assert out["a"].devices() == {d0} and out["b"].devices() == {d1}
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# ---- issue 12: no compile cliff -------------------------------------------------------------


@pytest.mark.parametrize("n_leaves", [1, 10, 300])
def test_first_call_goes_leaf_by_leaf(dispatches: Counter[str], n_leaves: int) -> None:
    tree = tree_of(n_leaves)
    out = batchapply.BatchApply(identity)(tree)
    sizes = dispatches.sizes  # type: ignore[attr-defined]
    assert sizes == {"merge": [1] * n_leaves, "split": [1] * n_leaves}
    assert dispatches["primitive"] > 0  # the one-leaf programs are traced: this first call compiles
    np.testing.assert_array_equal(out[f"k{n_leaves - 1:04d}"], tree[f"k{n_leaves - 1:04d}"])


@pytest.mark.parametrize("n_leaves", [5, 8, 21])
def test_group_programs_hold_at_most_group_size_leaves(
    dispatches: Counter[str], monkeypatch: pytest.MonkeyPatch, n_leaves: int
) -> None:
    monkeypatch.setattr(_exec_fused, "_GROUP_SIZE", 4)  # as 1,024, with fewer leaves to compile
    tree = tree_of(n_leaves)
    apply = batchapply.BatchApply(identity)
    apply(tree)
    apply(tree)
    _exec_fused.wait()
    clear(dispatches)
    out = apply(tree)  # the group programs are ready
    sizes = dispatches.sizes  # type: ignore[attr-defined]
    for direction in ("merge", "split"):
        assert max(sizes[direction]) <= 4 and sum(sizes[direction]) == n_leaves
    assert len(sizes["merge"]) == math.ceil(n_leaves / 4)
    np.testing.assert_array_equal(out[f"k{n_leaves - 1:04d}"], tree[f"k{n_leaves - 1:04d}"])


@pytest.mark.parametrize("n_leaves", [1, 10, 300])
def test_the_second_call_goes_leaf_by_leaf_and_compiles_in_the_background(
    dispatches: Counter[str], monkeypatch: pytest.MonkeyPatch, n_leaves: int
) -> None:
    """No call waits for a group program (issue 26): the background thread compiles them."""
    started = threading.Event()
    release = threading.Event()
    submit = _exec_fused.BACKGROUND.submit

    def held(job: Callable[[], None]) -> None:  # the job waits until the calls below are done
        def job_after_release() -> None:
            started.set()
            release.wait(60)
            job()

        submit(job_after_release)

    monkeypatch.setattr(_exec_fused.BACKGROUND, "submit", held)
    tree = tree_of(n_leaves)
    apply = batchapply.BatchApply(identity)
    for _ in range(4):  # the first call, the second (schedules the groups), two more meanwhile
        out = apply(tree)
    assert started.wait(60)
    sizes = dispatches.sizes  # type: ignore[attr-defined]
    assert sizes == {"merge": [1] * 4 * n_leaves, "split": [1] * 4 * n_leaves}
    assert dispatches.background == []  # type: ignore[attr-defined]
    release.set()
    _exec_fused.wait()
    assert dispatches.background == [n_leaves, n_leaves]  # type: ignore[attr-defined]  # merge, split
    clear(dispatches)
    out = apply(tree)
    assert dispatches.sizes == {"merge": [n_leaves], "split": [n_leaves]}  # type: ignore[attr-defined]
    np.testing.assert_array_equal(out[f"k{n_leaves - 1:04d}"], tree[f"k{n_leaves - 1:04d}"])


def test_with_background_compiles_off_the_second_call_compiles_the_groups(
    dispatches: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_exec_fused.BACKGROUND, "enabled", False)  # BATCHAPPLY_BACKGROUND_COMPILE=0
    tree = tree_of(10)
    apply = batchapply.BatchApply(identity)
    apply(tree)
    clear(dispatches)
    apply(tree)
    # the group program in the call (run once to compile it, then for the result), no thread
    assert dispatches.sizes == {"merge": [10, 10], "split": [10, 10]}  # type: ignore[attr-defined]
    assert dispatches.background == []  # type: ignore[attr-defined]


def test_large_signatures_stay_leaf_by_leaf(
    dispatches: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_exec_fused, "_WARM_BYTES", 3 * 4 * 8 * 16 * 4)  # three leaves' bytes
    apply = batchapply.BatchApply(identity)
    for n_leaves, grouped in ((3, True), (4, False)):
        tree = tree_of(n_leaves)
        apply(tree)
        apply(tree)
        _exec_fused.wait()
        clear(dispatches)
        apply(tree)
        want = [n_leaves] if grouped else [1] * n_leaves
        assert dispatches.sizes == {"merge": want, "split": want}  # type: ignore[attr-defined]


def test_a_leaf_deleted_before_the_background_job_is_scheduled_again(
    dispatches: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    submit = _exec_fused.BACKGROUND.submit

    def held(job: Callable[[], None]) -> None:
        def job_after_release() -> None:
            release.wait(60)
            job()

        submit(job_after_release)

    monkeypatch.setattr(_exec_fused.BACKGROUND, "submit", held)
    apply = batchapply.BatchApply(identity)
    tree = tree_of(3)
    apply(tree)
    apply(tree)  # schedules the job, which holds the leaves of this call
    tree["k0000"].delete()
    release.set()
    _exec_fused.wait()  # the merge job met the deleted leaf: its signature is seen again, not ready
    with pytest.raises(ValueError, match="deleted"):  # E28, from the call, never from the thread
        apply(tree)
    _exec_fused.wait()  # the job that call scheduled met the deleted leaf too
    fresh = tree_of(3)
    apply(fresh)  # schedules it again
    _exec_fused.wait()
    clear(dispatches)
    out = apply(fresh)
    assert dispatches.sizes == {"merge": [3], "split": [3]}  # type: ignore[attr-defined]
    np.testing.assert_array_equal(out["k0002"], fresh["k0002"])


def test_the_first_call_starts_the_thread_and_the_second_gives_it_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _exec_fused.wait()
    jax.clear_caches()
    background = _exec_fused._Background()  # as in a fresh process: no thread yet
    monkeypatch.setattr(_exec_fused, "BACKGROUND", background)
    jobs: list[Any] = []
    monkeypatch.setattr(background._jobs, "put", jobs.append)
    apply = batchapply.BatchApply(identity)
    tree = tree_of(3)
    try:
        apply(tree)
        thread = background._thread
        assert thread is not None and thread.is_alive() and jobs == []  # started, idle
        apply(tree)
        assert background._thread is thread and len(jobs) == 2  # the merge's and the split's
    finally:
        monkeypatch.undo()  # the real queue's put again, for the thread's end below
        background.stop()
    assert not thread.is_alive()


def test_the_background_thread_does_not_hold_up_exit() -> None:
    script = textwrap.dedent(
        """
        import jax.numpy as jnp
        from batchapply import BatchApply
        tree = {f"k{i}": jnp.full((4, 8, 16), i) for i in range(300)}
        apply = BatchApply(lambda t: t)
        apply(tree)
        apply(tree)  # leaves a compile job running or queued
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_stopping_wakes_the_idle_thread_so_that_it_ends() -> None:
    # At exit an idle thread waits on its queue: stop() must wake it, not leave join() to time out.
    background = _exec_fused._Background()
    background.enabled, ran = True, []
    background.submit(lambda: ran.append(1))
    background.wait()
    thread = background._thread
    assert ran == [1] and thread is not None and thread.is_alive()
    waker = threading.Thread(target=background.stop, daemon=True)
    waker.start()
    thread.join(timeout=20)  # stop() joins for up to 30 s: an unwoken thread would still be alive
    assert not thread.is_alive()


def test_a_new_leading_shape_goes_leaf_by_leaf(dispatches: Counter[str]) -> None:
    apply = batchapply.BatchApply(identity)
    for t in (3, 3, 4):  # T = 4 is new: its first call
        tree = {f"k{i}": jnp.zeros((t, 2, 5)) for i in range(20)}
        clear(dispatches)
        apply(tree)
    assert dispatches.sizes == {"merge": [1] * 20, "split": [1] * 20}  # type: ignore[attr-defined]


def test_low_rank_leaves_cost_nothing_on_a_first_call(dispatches: Counter[str]) -> None:
    tree = {"x": jnp.zeros((2, 3, 4)), "bias": jnp.ones(4), "scale": jnp.ones(())}
    out = batchapply.BatchApply(lambda t: t["x"] + t["bias"])(tree)
    assert dispatches.sizes == {"merge": [1], "split": [1]}  # type: ignore[attr-defined]
    assert out.shape == (2, 3, 4)


def compiles() -> int:
    """How many executables the two fused reshapes hold (their jit caches)."""
    return _exec_fused._merge_fused._cache_size() + _exec_fused._split_fused._cache_size()  # type: ignore[attr-defined]


def test_first_call_compiles_one_program_per_leaf_signature_and_direction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_exec_fused, "_HOST_PATH", False)  # the one-leaf programs, as on accelerators
    _exec_fused.wait()
    jax.clear_caches()  # clears the signature table too: a fresh process
    tree = tree_of(300)  # every leaf (4, 8, 16) float32: one signature
    apply = batchapply.BatchApply(identity)
    apply(tree)
    assert compiles() == 2  # as jax's per-primitive cache: one merge, one split
    apply(tree)  # the signature repeats: one program of 300 leaves per direction, in the background
    _exec_fused.wait()
    assert compiles() == 2 + 2
    apply(tree)
    assert compiles() == 4


def test_repeated_signature_compiles_one_program_per_distinct_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_exec_fused, "_HOST_PATH", False)
    monkeypatch.setattr(_exec_fused, "_GROUP_SIZE", 4)  # as 1,024, with fewer compiles to wait for
    _exec_fused.wait()
    jax.clear_caches()
    tree = tree_of(10, distinct=True)  # 10 leaf signatures
    apply = batchapply.BatchApply(identity)
    apply(tree)
    assert compiles() == 2 * 10  # leaf by leaf: what a per-leaf reshape compiles too
    apply(tree)
    _exec_fused.wait()
    assert compiles() == 2 * 10 + 2 * 3  # groups of 4, 4 and 2 leaves: no program of all 10


# ---- issue 26: the host path (leaves on one CPU device) -------------------------------------


def recording(seen: list[Any], result: Callable[..., Any] = lambda *args: args[0]) -> Callable[..., Any]:
    """An ``f`` that appends its arguments to ``seen`` and returns ``result(*args)``."""

    def f(*args: Any) -> Any:
        seen.append(args)
        return result(*args)

    return f


def primitive_binds(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the primitive binds of the main thread (jax operations, run or traced)."""
    counts: Counter[str] = Counter()
    bind = jax_core.Primitive.bind

    def counting_bind(self: Any, *args: Any, **params: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            counts[self.name] += 1
        return bind(self, *args, **params)

    monkeypatch.setattr(jax_core.Primitive, "bind", counting_bind)
    return counts


@pytest.mark.parametrize("distinct", [False, True])
def test_cpu_calls_compile_nothing_until_the_group_programs_are_ready(
    monkeypatch: pytest.MonkeyPatch, distinct: bool
) -> None:
    _exec_fused.wait()
    jax.clear_caches()  # a fresh process
    tree = tree_of(12, distinct=distinct)
    binds = primitive_binds(monkeypatch)
    apply = batchapply.BatchApply(identity)
    first = apply(tree)
    second = apply(tree)  # schedules the group programs: traced in the background only
    assert compiles() == 0 and binds == Counter()  # flax compiles a reshape per leaf signature here
    for out in (first, second):
        for key, x in tree.items():
            y = out[key]
            assert y is not x and type(y) is type(x) and y.shape == x.shape and y.dtype == x.dtype
            np.testing.assert_array_equal(y, x)
    _exec_fused.wait()
    assert compiles() == 2  # then one group program per direction
    np.testing.assert_array_equal(apply(tree)["k0011"], tree["k0011"])


def test_without_jaxs_private_put_the_host_path_uses_jax_device_put(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_leaves.put_views`` falls back to the public ``jax.device_put`` (another jax): still no
    compile, and the same arrays."""
    from batchapply import _leaves

    monkeypatch.setattr(_leaves, "_batched_device_put", None)
    _exec_fused.wait()
    jax.clear_caches()
    tree = tree_of(3)
    committed = {"c": jax.device_put(jnp.ones((4, 8, 2)), jax.devices()[0])}
    out, out_committed = batchapply.BatchApply(identity)(tree), batchapply.BatchApply(identity)(committed)
    assert compiles() == 0
    np.testing.assert_array_equal(out["k0002"], tree["k0002"])
    assert not out["k0002"].committed and out_committed["c"].committed


def test_the_host_path_merges_what_f_gets() -> None:
    seen: list[Any] = []
    x = jnp.arange(2 * 3 * 4, dtype=jnp.bfloat16).reshape(2, 3, 4)
    low = jnp.arange(3, dtype=jnp.int8)
    out = batchapply.BatchApply(recording(seen, lambda a, b: a * 2))(x, low)
    merged, kept = seen[0]
    assert merged.shape == (6, 4) and merged.dtype == jnp.bfloat16 and not merged.weak_type
    np.testing.assert_array_equal(merged, np.asarray(x).reshape(6, 4))
    assert kept is low  # BA-1.2: lower rank, the very object
    assert out.shape == (2, 3, 4) and out.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "make",
    [
        lambda: jnp.full((2, 3, 4), 1.5),  # weak type: a NumPy view would come back strong
        lambda: jax.random.key_data(jax.random.split(jax.random.key(0), 6)).reshape(2, 3, 2),
        lambda: jnp.ones((2, 3, 4), jnp.int4),  # sub-byte: no NumPy view of the buffer
    ],
    ids=["weak", "key-data", "int4"],
)
def test_leaves_the_host_path_cannot_hold_keep_their_type(make: Callable[[], jax.Array]) -> None:
    x = make()
    for _ in range(3):
        seen: list[Any] = []
        out = batchapply.BatchApply(recording(seen))(x)
        (merged,) = seen[0]
        assert merged.dtype == x.dtype and merged.weak_type == x.weak_type
        assert out.dtype == x.dtype and out.weak_type == x.weak_type and out.shape == x.shape
        np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(x, np.float32))


def test_the_host_path_keeps_committed_leaves_committed() -> None:
    x = jax.device_put(jnp.ones((2, 3, 4)), jax.devices()[0])
    u = jnp.ones((2, 3, 5))
    seen: list[Any] = []
    out = batchapply.BatchApply(recording(seen, lambda a, b: (a, b)))(x, u)
    assert (seen[0][0].committed, seen[0][1].committed) == (True, False)
    assert (out[0].committed, out[1].committed) == (True, False)


def test_no_host_path_under_a_transfer_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    _exec_fused.wait()
    jax.clear_caches()
    tree = tree_of(3)
    with jax.transfer_guard("disallow"):
        out = batchapply.BatchApply(identity)(tree)
    assert compiles() == 2  # the one-leaf programs: nothing crossed the guard
    np.testing.assert_array_equal(out["k0002"], tree["k0002"])


def test_a_deleted_leaf_is_still_e28_on_the_host_path() -> None:
    x = jnp.ones((2, 3, 4))
    x.delete()
    with pytest.raises(ValueError, match="^" + batchapply._core.DELETED_PREFIX) as info:
        batchapply.BatchApply(identity)({"x": x, "y": jnp.ones((2, 3, 1))})
    assert "args[0]['x']" in str(info.value)


def test_the_host_path_keeps_every_leaf_on_its_device() -> None:
    script = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
        import jax, jax.numpy as jnp, numpy as np
        from batchapply import BatchApply, _exec_fused
        d = jax.devices()
        a, b = jnp.ones((2, 3, 4)), jnp.ones((2, 3, 5))
        tree = {"a": jax.device_put(a, d[3]), "b": jax.device_put(b, d[3]), "u": jnp.ones((2, 3, 6))}
        apply = BatchApply(lambda t: {k: v * 2 for k, v in t.items()} | {"m": t})
        for call in range(3):  # the host path twice, then (a) the group programs
            out = apply(tree)
            _exec_fused.wait()
            for k in "ab":
                assert out[k].devices() == {d[3]} and out[k].committed, (call, k)
                assert out["m"][k].devices() == {d[3]} and out["m"][k].committed, (call, k)
            assert out["u"].devices() == {d[0]} and not out["u"].committed
            np.testing.assert_array_equal(out["a"], 2 * np.ones((2, 3, 4)))
        identity = BatchApply(lambda t: t)
        for call in range(3):  # an uncommitted leaf follows jax.default_device, as under jit (BA-5.6)
            with jax.default_device(d[5]):
                out = identity({"u": tree["u"]})  # only uncommitted leaves: the fused path
            _exec_fused.wait()
            assert out["u"].devices() == {d[5]}, (call, out["u"].devices())
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_jax_clear_caches_clears_the_signature_table(dispatches: Counter[str]) -> None:
    tree = tree_of(3)
    apply = batchapply.BatchApply(identity)
    apply(tree)
    apply(tree)
    _exec_fused.wait()
    jax.clear_caches()
    clear(dispatches)
    apply(tree)
    assert dispatches.sizes == {"merge": [1] * 3, "split": [1] * 3}  # type: ignore[attr-defined]


@pytest.mark.spec("BA-3.2")
@pytest.mark.parametrize("n_leaves", [2, 300])
def test_leading_shape_error_is_the_same_leaf_by_leaf_and_grouped(n_leaves: int) -> None:
    tree = tree_of(n_leaves)
    tree[f"k{n_leaves - 1:04d}"] = jnp.zeros((8, 4, 16))
    apply = batchapply.BatchApply(identity)
    messages = []
    for _ in range(3):  # leaf by leaf, twice, then grouped (the signature repeats)
        with pytest.raises(ValueError, match="inputs disagree") as info:
            apply(tree)
        messages.append(str(info.value))
        _exec_fused.wait()
    assert messages[0] == messages[1] == messages[2]
    assert f"args[0]['k{n_leaves - 1:04d}'] has (8, 4)" in messages[0]


@pytest.mark.spec("BA-7.3")
@pytest.mark.parametrize("n_leaves", [2, 300])
def test_output_error_is_the_same_leaf_by_leaf_and_grouped(n_leaves: int) -> None:
    def f(t: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return {**t, "short": t["k0000"][:5]}

    apply = batchapply.BatchApply(f)
    tree = tree_of(n_leaves)
    messages = []
    for _ in range(3):
        with pytest.raises(ValueError, match="cannot split output") as info:
            apply(tree)
        messages.append(str(info.value))
        _exec_fused.wait()
    assert messages[0] == messages[1] == messages[2]
    assert "output['short'] has shape (5, 16)" in messages[0]


@pytest.mark.parametrize("n_leaves", [3, 10])
def test_grouped_and_leaf_by_leaf_results_agree(monkeypatch: pytest.MonkeyPatch, n_leaves: int) -> None:
    monkeypatch.setattr(_exec_fused, "_GROUP_SIZE", 4)  # 10 leaves and 2 more: 3 groups
    tree = {**tree_of(n_leaves, distinct=True), "int": jnp.arange(64, dtype=jnp.int32).reshape(4, 8, 2)}
    tree["bf16"] = jnp.ones((4, 8, 3), jnp.bfloat16)
    apply = batchapply.BatchApply(lambda t: jax.tree.map(lambda x: x[::-1], t))
    first, second = apply(tree), apply(tree)
    _exec_fused.wait()
    third = apply(tree)
    for out in (first, second, third):
        for key, x in tree.items():
            want = np.asarray(x).reshape((32,) + x.shape[2:])[::-1].reshape(x.shape)
            assert out[key].dtype == x.dtype
            np.testing.assert_array_equal(np.asarray(out[key]), want)


def test_the_background_thread_yields_the_gil_while_it_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 8 leaves of a group program it traces, the thread lets a waiting call run; a call
    that compiles in the main thread (background compiles off) never sleeps."""
    yields: list[str] = []
    sleep = _exec_fused._sleep

    def counting_sleep(seconds: float) -> None:
        if seconds == 0:  # a yield (longer sleeps wait for calls running leaf by leaf)
            yields.append(threading.current_thread().name)
        sleep(seconds)

    monkeypatch.setattr(_exec_fused, "_sleep", counting_sleep)
    _exec_fused.wait()
    _exec_fused._SIGNATURES.cache_clear()
    apply = batchapply.BatchApply(identity)
    tree = tree_of(17, distinct=True)  # a program no earlier test compiled
    apply(tree)
    apply(tree)
    _exec_fused.wait()
    assert yields == ["batchapply-compile"] * 4  # 17 leaves: 2 yields per direction
    monkeypatch.setattr(_exec_fused.BACKGROUND, "enabled", False)
    yields.clear()
    tree = tree_of(18, distinct=True)
    apply(tree)
    apply(tree)
    assert yields == []


def test_the_background_thread_waits_while_calls_run_leaf_by_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each dispatch of a leaf-by-leaf call gives the GIL up; the thread waits until none runs."""
    waited: list[int] = []
    sleep = _exec_fused._sleep

    def counting_sleep(seconds: float) -> None:
        if seconds:
            waited.append(_exec_fused._LEAF_BY_LEAF_CALLS[0])
            _exec_fused._LEAF_BY_LEAF_CALLS[0] = 0  # the call "ends"
        sleep(seconds)

    monkeypatch.setattr(_exec_fused, "_sleep", counting_sleep)
    _exec_fused._LEAF_BY_LEAF_CALLS[0] = 1  # a call is running leaf by leaf
    _exec_fused.BACKGROUND.submit(lambda: _exec_fused._wait_for_calls())
    _exec_fused.wait()
    assert waited == [1] and _exec_fused._LEAF_BY_LEAF_CALLS == [0]


def test_a_background_job_pauses_at_python_calls_while_calls_run_leaf_by_leaf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lowering a program is jax's Python work, with no pace points of ours: the thread's own
    profile function pauses it at every Python call until no call runs leaf by leaf, and is
    gone after the job (the thread's former one back)."""
    import sys

    waited: list[int] = []

    def wait_for_calls() -> None:
        waited.append(_exec_fused._LEAF_BY_LEAF_CALLS[0])
        _exec_fused._LEAF_BY_LEAF_CALLS[0] = 0  # the call "ends"

    def lowering() -> None:  # stands for jax's lowering: plain Python calls
        def rule() -> int:
            return 1

        for _ in range(3):
            rule()

    monkeypatch.setattr(_exec_fused, "_wait_for_calls", wait_for_calls)
    _exec_fused._LEAF_BY_LEAF_CALLS[0] = 1  # a call is running leaf by leaf
    _exec_fused.BACKGROUND.submit(lowering)
    _exec_fused.wait()
    assert waited == [1]  # it paused once, then ran on: no call was left running
    profiles: list[Any] = []
    _exec_fused.BACKGROUND.submit(lambda: profiles.append(sys.getprofile()))
    _exec_fused.wait()
    monkeypatch.setattr(_exec_fused.BACKGROUND, "yield_to_calls", False)
    _exec_fused.BACKGROUND.submit(lambda: profiles.append(sys.getprofile()))
    _exec_fused.wait()
    assert profiles == [_exec_fused._pause_for_calls, None]  # the thread had none before
    _exec_fused._LEAF_BY_LEAF_CALLS[0] = 1
    _exec_fused.BACKGROUND.submit(lowering)  # off: no pause
    _exec_fused.wait()
    _exec_fused._LEAF_BY_LEAF_CALLS[0] = 0
    assert waited == [1]


def test_a_background_job_runs_with_a_short_switch_interval() -> None:
    """While a job runs, a call on another thread waits at most 0.5 ms for the GIL; then the
    interpreter's setting is back, unless someone else changed it meanwhile."""
    import sys

    before = sys.getswitchinterval()
    seen: list[float] = []
    _exec_fused.BACKGROUND.submit(lambda: seen.append(sys.getswitchinterval()))
    _exec_fused.wait()
    assert seen == [0.0005] and sys.getswitchinterval() == before

    def changes_it() -> None:
        sys.setswitchinterval(0.002)

    try:
        _exec_fused.BACKGROUND.submit(changes_it)
        _exec_fused.wait()
        assert sys.getswitchinterval() == 0.002  # someone else's setting is kept
        sys.setswitchinterval(0.0001)  # already shorter: left as it is, never raised to 0.5 ms
        low = sys.getswitchinterval()
        _exec_fused.BACKGROUND.submit(lambda: seen.append(sys.getswitchinterval()))
        _exec_fused.wait()
        assert seen[-1] == low == sys.getswitchinterval()
    finally:
        sys.setswitchinterval(before)
