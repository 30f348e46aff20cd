"""Regenerate docs/ecosystem.md: ``python -m batchapply_conformance.adapters.matrix [--rows N] [--out FILE]``.

Runs the CLI (the full default run: profile ci, every clause) on each implementation
and writes one table row per implementation and one line per FAIL: the reason from
the shipped expectation file where there is one, else the first failing case.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

from batchapply_conformance import _gate

ROWS = [
    ("batchapply", "batchapply:BatchApply", None),
    ("flax.linen (flax 0.12.8)", "flax.linen:BatchApply", "flax.linen"),
    ("Haiku 0.0.10 to 0.0.17 (port)", "batchapply_conformance.adapters.haiku:BatchApply", "haiku"),
    ("Haiku 0.0.1 to 0.0.9 (port)", "batchapply_conformance.adapters.haiku_early:BatchApply", "haiku-early"),
    ("Sonnet 2 (port)", "batchapply_conformance.adapters.sonnet2:BatchApply", "sonnet2"),
    ("TF-Agents BatchSquash (port)", "batchapply_conformance.adapters.tf_agents:BatchApply", "tf-agents"),
    ("Stoix/Mava merge_leading_dims (port)", "batchapply_conformance.adapters.stoix:BatchApply", "stoix"),
    ("nested jax.vmap (port)", "batchapply_conformance.adapters.jax_vmap:BatchApply", "jax-vmap"),
]


def run_row(target: str, expect: str | None, extra: list[str]) -> tuple[int, float, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "report.json"
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "batchapply_conformance", target, "--json", str(path), *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - began
        if not path.exists():
            raise RuntimeError(f"{target}: no report (exit {done.returncode}): {done.stderr[-2000:]}")
        return done.returncode, seconds, json.loads(path.read_text())


def markdown(results: list[tuple[str, str, str | None, int, float, dict[str, Any]]], date: str) -> str:
    lines = [
        "# How existing implementations conform",
        "",
        "The conformance kit's verdicts on BatchApply implementations in the wild, from the full",
        "default run (`batchapply-conformance TARGET`: profile `ci`, every clause, nothing",
        "excluded; wall time on the project's 2-core machine, shared with other jobs), run on",
        f"{date}. Written by `python -m batchapply_conformance.adapters.matrix --out",
        "docs/ecosystem.md`; a test reruns the fast rows and compares their counts and FAILs.",
        "",
        "Haiku, Sonnet, TF-Agents, Stoix/Mava and the nested `jax.vmap` are *ports*: thin",
        "factories in `batchapply_conformance.adapters`, the kit's own code written from each",
        "implementation's behaviour (read from its source), so that they run without their",
        "frameworks. Run one with",
        "`batchapply-conformance batchapply_conformance.adapters.sonnet2:BatchApply`.",
        "flax.linen and batchapply are the installed packages. Each FAIL line is the reason in",
        "the expectation file that ships with the kit for that implementation (`--expect",
        "flax.linen`, `--expect sonnet2`, ...), written after reading the failing cases; a FAIL",
        "with no reason there shows its first failing case as the report does.",
        "",
        "| Implementation | Target | Exit | PASS | FAIL | N/A | Time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, target, _, code, seconds, report in results:
        s = report["summary"]
        lines.append(
            f"| {label} | `{target}` | {code} | {s['PASS']} | {s['FAIL']} | {s['N/A']} | {seconds:.1f} s |"
        )
    for label, _, expect, _, _, report in results:
        reasons = _gate.read_expectations(_gate.SHIPPED / f"{expect}.txt", set()) if expect else {}
        failing = [c for c in report["clauses"] if c["status"] == "FAIL"]
        lines += ["", f"## {label}", ""]
        if not failing:
            lines.append("Every applicable clause passes.")
        for c in failing:
            why = reasons.get(c["clause"]) or (c["failures"][0]["detail"] if c["failures"] else c["detail"])
            why = " ".join(why.split())
            why = why if len(why) <= 200 else why[:197] + "..."
            lines.append(f"- **{c['clause']}** ({c['title']}): {why}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", help="comma-separated labels' targets to run (default: all)")
    p.add_argument("--out", type=pathlib.Path, help="write the table here (default: stdout)")
    p.add_argument("--keep", type=pathlib.Path, help="also save each report in this folder")
    p.add_argument("--reuse", type=pathlib.Path, help="render the reports saved by --keep, run nothing")
    args = p.parse_args(argv)
    wanted = set(args.rows.split(",")) if args.rows else None
    results = []
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    dates = set()
    for label, target, expect in ROWS:
        if wanted is not None and target not in wanted:
            continue
        saved = (args.reuse or args.keep or pathlib.Path()) / f"{target.replace(':', '.')}.json"
        if args.reuse:
            kept = json.loads(saved.read_text())
            code, seconds, report = kept["exit"], kept["wall_s"], kept["report"]
            dates.add(kept.get("date") or "an unrecorded date")
        else:
            code, seconds, report = run_row(target, expect, [])
            dates.add(today)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                saved.write_text(
                    json.dumps({"exit": code, "wall_s": seconds, "report": report, "date": today})
                )
        print(f"{label}: exit {code} in {seconds:.1f} s", file=sys.stderr)
        results.append((label, target, expect, code, seconds, report))
    text = markdown(results, " and ".join(sorted(dates)))
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
