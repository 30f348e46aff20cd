"""The worker process that runs the checks, so that the kit survives its target.

A crash, an abort, a hang or a runaway allocation in the target is a verdict on the
one check that caused it (CRASH or TIMEOUT), never the end of the run: the runner
kills the worker, charges the check's clauses, starts a fresh worker and goes on,
as pytest-xdist restarts a crashed worker and pytest-timeout bounds a hang.

One long-lived worker runs every check (importing jax costs 1 to 2 s, so a worker
per check would double a run); it is replaced only after it died or was killed.
The runner talks to it over a socket pair with pickled messages:

- ``("init", sys_path, blocked, target, helpers, profile, examples, seed)`` imports the target
  and builds the checks; the answer is ``("ready",)`` or ``("error", kind, line)``;
- ``("preflight",)`` makes the Target (which may call the factory to probe its options),
  finds its helpers and calls it on a tiny case: ``("ok", info)`` or ``("error", ...)``;
- ``("run", index, name)`` runs one check: ``("outcome", outcomes)`` (NOT RUN when the worker's
  check ``index`` is not ``name``).

Memory is bounded by watching the worker's resident set (``/proc/PID/status``), not
with ``RLIMIT_AS``: XLA reserves large virtual ranges that it never touches, so an
address-space limit breaks jax itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

DEFAULT_TIMEOUT = 10.0
"""Seconds a check may run (``--timeout``); the hypothesis property checks, which run many
examples, get :data:`SLOW_FAMILIES` times as long."""

SLOW_FAMILIES = {"properties": 6.0, "transforms": 3.0, "sharding": 3.0}

DEFAULT_MEMORY_MIB = 4096
"""Resident memory the worker may use (``--memory-limit``), in MiB."""

IMPORT_TIMEOUT = 120.0
"""Seconds to start the worker and import the target (jax's first import can be slow)."""

POLL = 0.02
_ENTRY = "import sys; from batchapply_conformance._worker import serve; serve(int(sys.argv[1]))"


class WorkerLost(Exception):
    """The worker died or was killed while answering: ``kind`` is CRASH or TIMEOUT."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclasses.dataclass
class Limits:
    """The bounds of one check: seconds (before the family's factor) and resident MiB."""

    timeout: float = DEFAULT_TIMEOUT
    memory_mib: int = DEFAULT_MEMORY_MIB

    def seconds(self, family: str) -> float:
        return self.timeout * SLOW_FAMILIES.get(family, 1.0)


class Worker:
    """A worker process and the socket to it; :meth:`ask` sends a message and waits, bounded."""

    def __init__(self, limits: Limits, env: dict[str, str] | None = None) -> None:
        self.limits = limits
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.stderr: Any = None

    def start(self) -> None:
        parent, child = socket.socketpair()
        if self.stderr is not None:
            self.stderr.close()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        env = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            env=env,
            start_new_session=True,  # its own process group: killing it kills what it started
        )
        child.close()
        self.conn = Connection(parent.detach())

    def ask(self, message: tuple[Any, ...], seconds: float) -> tuple[Any, ...]:
        """Send ``message``; the answer, or WorkerLost when the worker dies, overruns or overgrows."""
        if self.process is None:
            self.start()
        assert self.process is not None and self.conn is not None
        try:
            self.conn.send(message)
        except OSError:
            raise self._lost("CRASH", self._death()) from None
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.conn.poll(POLL):
                    return self.conn.recv()  # type: ignore[no-any-return,unused-ignore]
            except (EOFError, OSError):
                raise self._lost("CRASH", self._death()) from None
            if self.process.poll() is not None:
                raise self._lost("CRASH", self._death())
            rss = _resident_mib(self.process.pid)
            if rss is not None and rss > self.limits.memory_mib:
                raise self._lost(
                    "CRASH",
                    f"out of memory: the worker grew to {rss} MiB, over the limit of "
                    f"{self.limits.memory_mib} MiB (--memory-limit)",
                )
            if time.monotonic() > deadline:
                raise self._lost("TIMEOUT", f"still running after {seconds:g} s (--timeout)")

    def _death(self) -> str:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            how = f"killed by signal {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
        else:
            how = f"the worker exited with status {code}"
        last = self.last_stderr_line()
        return how + (f"; last line on stderr: {last}" if last else "")

    def last_stderr_line(self) -> str:
        if self.stderr is None:
            return ""
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - 4000))
        lines = [line.strip() for line in self.stderr.read().decode(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        text = lines[-1] if lines else ""
        return text if len(text) <= 300 else text[:297] + "..."

    def _lost(self, kind: str, detail: str) -> WorkerLost:
        self.stop()
        return WorkerLost(kind, detail)

    def stop(self) -> None:
        """Kill the worker (its whole process group) and forget it; the next :meth:`ask` starts one."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.conn is not None:
            self.conn.close()
        self.process = self.conn = None

    def close(self) -> None:
        self.stop()
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None


def _resident_mib(pid: int) -> int | None:
    """The resident set of ``pid`` in MiB (Linux ``/proc``), None where it cannot be read."""
    try:
        text = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return None


# ---- the worker's side ----------------------------------------------------------------


def serve(fd: int) -> None:
    """Answer the runner's messages until it closes the socket."""
    conn = Connection(fd)
    _exit_with_parent()
    os.dup2(2, 1)  # what the target prints goes to stderr, never into the protocol or the report
    sys.stdout = sys.stderr
    state: dict[str, Any] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        answer = _answer(message, state)
        try:
            conn.send(answer)
        except (RecursionError, TypeError, AttributeError, pickle.PicklingError):
            conn.send(_plain(answer))  # (pickling failed before anything was written)


def _exit_with_parent() -> None:
    """End this process when the runner is gone (killed while a check hangs here, say)."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="batchapply-conformance-parent-watch", daemon=True).start()


def _plain(answer: tuple[Any, ...]) -> tuple[Any, ...]:
    """``answer`` without the counterexamples that cannot be pickled (nested too deep, say)."""
    if answer[0] != "outcome":
        return ("error", "construct", str(answer))
    outcomes = answer[1] if isinstance(answer[1], list) else [answer[1]]
    note = {"repr": "the counterexample could not be sent from the worker (nested too deep?)"}
    return (
        "outcome",
        [
            dataclasses.replace(o, counterexample=note if o.counterexample is not None else None)
            for o in outcomes
        ],
    )


def _answer(message: tuple[Any, ...], state: dict[str, Any]) -> tuple[Any, ...]:
    from batchapply_conformance import _target
    from batchapply_conformance._checks import Outcome, describe_error
    from batchapply_conformance._diagnose import run_check

    kind = message[0]
    if kind == "init":
        _, sys_path, blocked, name, helpers, profile, examples, seed = message
        sys.path[:0] = [p for p in sys_path if p not in sys.path]
        sys.modules.update(dict.fromkeys(blocked))
        try:
            state["loaded"] = (name, *_target.import_factory(name), helpers)
        except _target.LoadError as e:
            return ("error", e.kind, str(e))
        from batchapply_conformance._run import all_checks

        state["checks"] = all_checks(profile, examples, seed)
        return ("ready",)
    if kind == "preflight":
        try:
            state["target"], info = _target.build(*state["loaded"])
            _target.preflight(state["target"])
        except _target.LoadError as e:
            return ("error", e.kind, str(e))
        return ("ok", info)
    if kind == "run":
        _, index, name = message
        check = state["checks"][index] if index < len(state["checks"]) else None
        if check is None or check.name != name:
            # The runner's and the worker's check lists differ (the kit's files or the golden
            # corpus changed between the two imports): no check is judged by another's outcome.
            found = "none" if check is None else repr(check.name)
            return (
                "outcome",
                Outcome(
                    "not_run",
                    f"the worker's check {index} is {found}, not {name!r}: "
                    "the kit's files changed during the run; run it again",
                ),
            )
        try:
            return ("outcome", run_check(check, state["target"]))
        except BaseException as e:  # a SystemExit or KeyboardInterrupt raised by the target is a verdict
            return ("outcome", Outcome("fail", f"raised {describe_error(e)}", {"got": describe_error(e)}))
    raise ValueError(f"unknown message {kind!r}")
