"""Revert each fix of issue 11 on a scratch copy and run the differential (ci profile).

Usage, from the repository root (takes 20 to 30 minutes on 2 cores; never on the working tree)::

    mkdir -p /tmp/scratch && git archive HEAD | tar -x -C /tmp/scratch
    python tests/property/revert_fixes.py /tmp/scratch [finding ...]

Each entry of REVERTS names a finding and the edits that bring its bug back (the original
code path, for one class of leaf where one change fixed several findings). The script applies
one entry, runs ``tests/property/test_input_space.py -k agree`` on the copy, records whether it
failed and the first assertion, restores the files, and goes on. The edits match the code as of
issue 11's merge; docs/testing.md records the result.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

SCRATCH = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path("/tmp/scratch")
IMPL, REF = "impl/batchapply/_core.py", "reference/batchapply_reference/_core.py"
TREE = "reference/batchapply_reference/_tree.py"
EAGER_MAP = [(IMPL, "(not eager or self._map_when_eager)", "True")]
ROUND_TRIP = "        merged = _jax_merge(x, num_dims, counts)\n"


NUMPY_ROUND_TRIP = "            merged = x.__array_namespace__().asarray(np.asarray(merged))\n"


def round_trip(cond: str) -> list[tuple[str, str, str]]:
    """The reference's old NumPy round trip of merged jax.Array leaves, for the leaves where ``cond``."""
    return [(REF, ROUND_TRIP, ROUND_TRIP + f"        if {cond}:\n" + NUMPY_ROUND_TRIP)]


REVERTS = {
    "1 chunk: 64-bit NumPy leaf as a 32-bit tracer": EAGER_MAP
    + [(IMPL, "return bool(jax.dtypes.canonicalize_dtype(dtype) == dtype)", "return True")],
    "2 chunk: masks dropped by np.concatenate": [
        (IMPL, "np.ma.concatenate(column) if masked else np.concatenate(column)", "np.concatenate(column)"),
        (
            IMPL,
            "np.ma.concatenate if any(isinstance(x, np.ma.MaskedArray) for x in column) else np.concatenate",
            "np.concatenate",
        ),
    ],
    "3 impl: numpy.matrix merged as an ndarray": [
        (IMPL, "kind = _MATRIX  # always 2-D", "kind = _NUMPY  # always 2-D")
    ],
    "3 ref: numpy.matrix merged": [
        (REF, '_check_not_matrix(mergeable, "merged")  # E26, before E9', "pass  # E26, before E9")
    ],
    "4 chunk: str/object/... NumPy leaf as a tracer": EAGER_MAP
    + [
        (
            IMPL,
            "    if not (dtype == np.bool_ or jnp.issubdtype(dtype, jnp.number)):\n        return False\n",
            "",
        )
    ],
    "5 chunk: eager jax.lax.map (NumPy out becomes jax.Array)": EAGER_MAP,
    "6 ref: x64 jax.Array through NumPy": round_trip("x.dtype.itemsize == 8 and 'key' not in str(x.dtype)"),
    "7 ref: weak-typed jax.Array through NumPy": round_trip("getattr(x, 'weak_type', False)"),
    "8 ref: PRNG key array through NumPy": round_trip("'key' in str(x.dtype)"),
    "9 ref: masked array through np.asarray": [
        (
            REF,
            "    if not isinstance(x, np.ma.MaskedArray):\n        return copy(np.asarray(x))",
            "    if True:\n        return copy(np.asarray(x))",
        )
    ],
    "10 ref: committed jax.Array through NumPy (2 devices)": round_trip("getattr(x, 'committed', False)"),
    "10 impl: uncommitted leaf fused with a committed one (2 devices)": [
        (
            IMPL,
            "    committed = {x.committed for x in xs}\n    return len(committed) == 1\n",
            "    return True\n",
        )
    ],
    "11 ref: recursive pytree walk": [
        (
            TREE,
            "    map_leaves(record, tree, axes, path)\n    return found\n",
            "    def depth(t):  # the old walk: a frame for the call and one for the comprehension\n"
            "        children = t.values() if type(t) is dict else t if type(t) in (list, tuple) else ()\n"
            "        return 1 + max((depth(c) for c in children), default=0)\n\n"
            "    depth(tree)\n    map_leaves(record, tree, axes, path)\n    return found\n",
        )
    ],
    "12 impl: self not positional-only": [(IMPL, "def __call__(self, /, *args", "def __call__(self, *args")],
    "12 ref: self not positional-only": [(REF, "def __call__(self, /, *args", "def __call__(self, *args")],
    "13 impl: mixed-key dict (jax's ValueError)": [
        (
            IMPL,
            'leaves, treedef = _flatten((args, kwargs), (args, kwargs), ("args", "kwargs"))',
            "leaves, treedef = tree_util.tree_flatten((args, kwargs))",
        )
    ],
    "13 ref: mixed-key dict (sorted's TypeError)": [
        (REF, "entries = _leaves_with_paths(args", "entries = _tree.leaves_with_paths(args"),
        (REF, "entries += _leaves_with_paths(kwargs", "entries += _tree.leaves_with_paths(kwargs"),
    ],
    "13 impl: deleted input (jax's RuntimeError)": [
        (
            IMPL,
            "            _raise_if_deleted("
            "leaves, [i for i in order if ndim_at_least(leaves[i], n)], paths)\n",
            "",
        )
    ],
}
only = sys.argv[2:]
results: dict[str, dict[str, object]] = {}
for name, edits in REVERTS.items():
    if only and not any(name.startswith(o + " ") for o in only):
        continue
    saved: dict[str, str] = {}
    for path, old, new in edits:
        p = SCRATCH / path
        saved.setdefault(path, p.read_text())
        text = p.read_text()
        assert old in text, (name, old)
        p.write_text(text.replace(old, new))
    env = {
        **os.environ,
        "CI": "true",
        "BATCHAPPLY_HYPOTHESIS_PROFILE": "ci-noshrink",
        "PYTHONPATH": f"{SCRATCH}/impl:{SCRATCH}/reference:{SCRATCH}/conformance:{SCRATCH}",
    }
    if "2 devices" in name:
        env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    t = time.time()
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/property/test_input_space.py",
                "-k",
                "agree",
            ],
            cwd=SCRATCH,
            env=env,
            capture_output=True,
            text=True,
            timeout=420,
        ).stdout
    except subprocess.TimeoutExpired as e:
        out = "TIMEOUT " + (e.stdout or b"").decode()[-500:] if isinstance(e.stdout, bytes) else "TIMEOUT"
    lines = [
        line for line in out.splitlines() if line.startswith("E   ") and ("Error" in line or "assert" in line)
    ]
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    results[name] = {
        "summary": summary,
        "first": lines[0][:300] if lines else "",
        "seconds": round(time.time() - t),
    }
    print(name, "->", results[name], flush=True)
    for path, text in saved.items():
        (SCRATCH / path).write_text(text)
(SCRATCH / "reverts.json").write_text(json.dumps(results, indent=1))
