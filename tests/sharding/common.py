"""Helpers shared by the multi-device checks (check_sharding.py, multihost_worker.py).

Importing this module does not start jax's backend: the device count is the caller's to
check. ``run_processes`` runs child Pythons (the 8-device checks, or the processes of a
multi-process run) with a timeout, and reports every child's output when one fails.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLLECTIVE = re.compile(
    r"\b(all-gather|all-to-all|all-reduce|collective-permute|reduce-scatter)(?:-start)?\("
)

F, HIDDEN = 4, 8
_WEIGHTS = np.random.default_rng(0)
W1 = _WEIGHTS.normal(size=(F, HIDDEN)).astype(np.float32)
W2 = _WEIGHTS.normal(size=(HIDDEN, F)).astype(np.float32)


def mlp(x: Any) -> Any:
    """A row-independent f: its hand-written per-device program has no collective."""
    return jnp.tanh(x @ W1) @ W2


def mlp_numpy(x: np.ndarray) -> np.ndarray:
    return np.tanh(x @ W1) @ W2


def count_collectives(hlo: Any) -> dict[str, int]:
    """Collective ops by name in compiled HLO (a ``Compiled`` or its text)."""
    text = hlo if isinstance(hlo, str) else hlo.as_text()
    found: dict[str, int] = {}
    for name in COLLECTIVE.findall(text):
        found[name] = found.get(name, 0) + 1
    return found


def run_processes(
    argvs: Sequence[Sequence[str]],
    env: dict[str, str],
    timeout: float,
    what: str,
    ok: Sequence[int] = (0,),
) -> list[tuple[int, str, str]]:
    """Run ``sys.executable argv`` for every argv at once, from the repository root.

    Returns (returncode, stdout, stderr) per child. Once one child fails (an exit code not in
    ``ok``), the others get
    10 s to finish (a multi-process peer then usually waits on a collective forever) and
    are killed; past ``timeout`` every child is killed. Raises AssertionError with every
    child's output when a child failed or was killed.
    """
    children = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, argv in enumerate(argvs):
            out = open(os.path.join(tmp, f"{k}.out"), "w+")  # noqa: SIM115 - closed below
            err = open(os.path.join(tmp, f"{k}.err"), "w+")  # noqa: SIM115 - closed below
            proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=out, stderr=err)
            children.append((proc, out, err))
        deadline = time.monotonic() + timeout
        killed: list[str] = []
        while any(proc.poll() is None for proc, _, _ in children):
            failed = any(proc.returncode not in (None, *ok) for proc, _, _ in children)
            if failed:
                deadline = min(deadline, time.monotonic() + 10)
            if time.monotonic() > deadline:
                for k, (proc, _, _) in enumerate(children):
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                        killed.append(
                            f"process {k} killed after {'a peer failed' if failed else f'{timeout} s'}"
                        )
                break
            time.sleep(0.1)
        results = []
        for proc, out, err in children:
            out.seek(0)
            err.seek(0)
            results.append((proc.returncode, out.read(), err.read()))
            out.close()
            err.close()
    if killed or any(rc not in ok for rc, _, _ in results):
        report = "\n".join(
            f"--- process {k}: exit code {rc}\n--- stdout:\n{stdout[-6000:]}\n--- stderr:\n{stderr[-6000:]}"
            for k, (rc, stdout, stderr) in enumerate(results)
        )
        raise AssertionError(f"{what} failed ({'; '.join(killed) or 'a process failed'}):\n{report}")
    return results
