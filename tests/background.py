"""Long child processes of the test run, started as soon as collection ends.

A few tests wait minutes for a child Python: the kit on every one-fault target (8 devices),
the selected modules again on 8 devices, the exact FAIL sets of the one-fault targets. The
test process itself uses one core; the CI machine has two. So each such test module
registers its child here at import, ``tests/conftest.py`` starts the children whose tests
were selected when collection finishes (niced, so that the tests in this process keep their
core), and each test then waits for its child's result. A test run on its own, or with the
hook absent, starts its child when it first asks for it: the same verdict, later.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from typing import IO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Job:
    """A child Python: ``argv`` run from the repository root with ``env``, for the tests whose
    node IDs start with one of ``prefixes``."""

    name: str
    prefixes: tuple[str, ...]
    argv: Sequence[str]
    env: dict[str, str] | None = None
    timeout: float = 900
    process: subprocess.Popen[bytes] | None = None
    files: tuple[IO[bytes], IO[bytes]] | None = None
    done: subprocess.CompletedProcess[str] | None = None

    def start(self) -> None:
        if self.process is not None:
            return
        # Closed by wait(), once read: they outlive this call, so no `with`.
        self.files = (tempfile.TemporaryFile(), tempfile.TemporaryFile())  # noqa: SIM115
        # Niced, so that the tests of this process keep their core: by the `nice` program, since
        # a preexec_fn would make subprocess fork this (multithreaded, jax) process.
        nice = shutil.which("nice")
        self.process = subprocess.Popen(
            [nice, "-n", "10", *self.argv] if nice else list(self.argv),
            cwd=ROOT,
            env=self.env,
            stdout=self.files[0],
            stderr=self.files[1],
        )

    def wait(self) -> subprocess.CompletedProcess[str]:
        self.start()
        assert self.process is not None and self.files is not None
        try:
            code = self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self.done is None:
            out, err = (self._read(f) for f in self.files)
            for file in self.files:
                file.close()
            self.done = subprocess.CompletedProcess(list(self.argv), code, out, err)
        return self.done

    @staticmethod
    def _read(file: IO[bytes]) -> str:
        file.seek(0)
        return file.read().decode(errors="replace")


JOBS: dict[str, Job] = {}


def register(
    name: str,
    prefixes: tuple[str, ...],
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> Job:
    """Declare a child (once per name: a module imported twice keeps its first job)."""
    return JOBS.setdefault(name, Job(name, prefixes, argv, env, timeout))


def start_for(nodeids: Iterable[str]) -> list[str]:
    """Start every registered child whose tests are among ``nodeids``; their names."""
    selected = list(nodeids)
    started = []
    for job in JOBS.values():
        if any(nodeid.startswith(job.prefixes) for nodeid in selected):
            job.start()
            started.append(job.name)
    return started


def result(name: str) -> subprocess.CompletedProcess[str]:
    """The child's exit status and output, once it has ended (started now if it was not)."""
    return JOBS[name].wait()


def stop_all() -> None:
    """Kill the children still running (a run stopped early, or a test deselected late)."""
    for job in JOBS.values():
        if job.process is not None and job.process.poll() is None:
            job.process.kill()
            job.process.wait()
