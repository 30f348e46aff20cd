"""The sample outputs in the docs, generated from real runs: ``python docs/_samples.py [--check]``.

A sample is a fenced ``text`` block right after a ``<!-- sample: ARGS -->`` line; it is
the output of ``batchapply-conformance ARGS`` (then ``$ echo $?`` and the exit status).
Timings print as ``in N.N s``; the check compares everything else.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

DOCS = pathlib.Path(__file__).resolve().parent
PAGES = ["conformance.md", "gating.md"]
SAMPLE = re.compile(r"(<!-- sample: (?P<args>.+?) -->\n```text\n)(?P<body>.*?)(^```$)", re.S | re.M)
TIMING = re.compile(r"in \d+\.\d s")


def run(args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "batchapply_conformance", *shlex.split(args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        cwd=DOCS.parent,
    )
    return f"$ batchapply-conformance {args}\n{done.stdout.rstrip()}\n$ echo $?\n{done.returncode}"


def normalized(text: str) -> str:
    return TIMING.sub("in N.N s", text)


def regenerate(page: pathlib.Path, *, check: bool) -> list[str]:
    """Rewrite the samples of ``page`` (or, with ``check``, list those that differ)."""
    text = page.read_text()
    stale = []

    def fresh(match: re.Match[str]) -> str:
        body = run(match["args"]) + "\n"
        if normalized(body) != normalized(match["body"]):
            stale.append(f"{page.name}: {match['args']}")
        return match[1] + body + match[4]

    new = SAMPLE.sub(fresh, text)
    if not check:
        page.write_text(new)
    return stale


def main() -> int:
    check = "--check" in sys.argv
    stale = [s for name in PAGES for s in regenerate(DOCS / name, check=check)]
    for s in stale:
        print(f"stale sample: {s}" if check else f"rewritten: {s}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
