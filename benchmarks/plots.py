"""Plots and tables of the benchmarks' JSON, for BENCHMARKS.md and docs/performance.md (issue 27).

    python benchmarks/plots.py            # redraw docs/images/*.svg, rewrite the generated tables
    python benchmarks/plots.py --check    # exit 1 if an image or a table differs from the JSON

Inputs (each records the command that made it):

- ``benchmarks/results/leaves.json``: pytest-benchmark JSON of the ``eager_identity_*`` and
  ``eager_cold_*`` groups of ``benchmarks/test_benchmarks.py`` (``stats.data`` dropped);
- ``benchmarks/results/chunk_memory.json``: ``benchmarks/chunk_memory.py --json``;
- ``benchmarks/results/calls.json``: ``benchmarks/eager_calls.py --json`` (every call index, in
  fresh processes: issue 26).

Outputs: four SVG plots in ``docs/images/`` and, in each page, the Markdown between
``<!-- plots:NAME -->`` and ``<!-- /plots:NAME -->``. The tables need only the JSON; the
images need matplotlib (the ``dev`` extra). tests/test_release.py runs ``--check``.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import re
import statistics
import sys
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
PAGES = [ROOT / "BENCHMARKS.md", ROOT / "docs" / "performance.md"]
LABELS = {
    "batchapply": "batchapply.BatchApply",
    "flax": "flax.linen.BatchApply",
    "floor": "floor: one jitted reshape of the whole tree per direction",
    "by_hand": "by hand: one eager reshape per leaf",
}
IMPLS = ["batchapply", "flax", "floor", "by_hand"]
MB = 2**20


def _medians(data: dict[str, Any], prefix: str) -> dict[int, dict[str, float]]:
    """``{leaves: {impl: median seconds}}`` of the groups ``prefix{leaves}``."""
    found: dict[int, dict[str, float]] = {}
    for bench in data["benchmarks"]:
        group = bench["group"] or ""
        if group.startswith(prefix) and group[len(prefix) :].isdigit():
            impl = bench["extra_info"]["impl"]
            found.setdefault(int(group[len(prefix) :]), {})[impl] = bench["stats"]["median"]
    return dict(sorted(found.items()))


def load() -> dict[str, Any]:
    leaves = json.loads((RESULTS / "leaves.json").read_text())
    memory = json.loads((RESULTS / "chunk_memory.json").read_text())
    calls = json.loads((RESULTS / "calls.json").read_text())
    return {
        "calls": calls,
        "leaves_command": leaves["command"],
        "leaves_date": leaves["datetime"][:16].replace("T", " ") + " UTC",
        "per_call": _medians(leaves, "eager_identity_"),
        "first_call": _medians(leaves, "eager_cold_"),
        "memory": memory,
    }


Row = tuple[str, float, float, float]


def _chunk_rows(memory: dict[str, Any]) -> list[Row]:
    """``(chunk_size, eager RSS peak MB, eager live-array peak MB, compiled temporaries MB)``."""
    rows = []
    for variant, runs in memory["eager"].items():
        rss = min(run["rss_peak_above_inputs_mb"] for run in runs)
        live = min(run["live_peak_above_inputs_mb"] for run in runs)
        rows.append((variant, rss, live, memory["compiled_temp_bytes"][variant] / MB))
    return rows


def tables(results: dict[str, Any]) -> dict[str, str]:
    """The generated Markdown of each ``plots:NAME`` block."""

    def leaves_table(kind: str, what: str) -> str:
        lines = [
            f"{what}, median milliseconds ({results['leaves_date']}; `{results['leaves_command']}`):",
            "",
            "| leaves | " + " | ".join(f"`{impl}`" for impl in IMPLS) + " | flax / batchapply |",
            "| ---: | " + " | ".join("---:" for _ in IMPLS) + " | ---: |",
        ]
        for n, times in results[kind].items():
            cells = [f"{times[impl] * 1e3:.2f}" for impl in IMPLS]
            lines.append(f"| {n} | " + " | ".join(cells) + f" | {times['flax'] / times['batchapply']:.1f}x |")
        return "\n".join(lines)

    memory = results["memory"]
    lines = [
        f"MLP over 2**{memory['rows_log2']} merged rows (hidden 512, float32), MB above the inputs "
        f"({memory['date']}; `{memory['command']}`):",
        "",
        "| `chunk_size` | eager, RSS peak | eager, live-array peak | `jax.jit`, compiled temporaries |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for variant, rss, live, compiled in _chunk_rows(memory):
        lines.append(f"| {variant} | {rss:.1f} | {live:.1f} | {compiled:.1f} |")
    return {
        "calls": calls_table(results["calls"]),
        "per-call": leaves_table("per_call", "Cost per eager call (a repeated signature)"),
        "first-call": leaves_table("first_call", "First eager call (cleared caches)"),
        "chunk-memory": "\n".join(lines),
    }


CALL_STATS = ("call 1", "call 2", "call 3", "steady")


def _call_medians(calls: dict[str, Any]) -> dict[int, dict[str, dict[str, float]]]:
    """``{leaves: {impl: {stat: median seconds over the fresh processes}}}`` of eager_calls.py."""
    found: dict[int, dict[str, dict[str, float]]] = {}
    for leaves, by_impl in calls["results"].items():
        for impl, runs in by_impl.items():
            stats = {f"call {k}": statistics.median(run["calls"][k - 1] for run in runs) for k in (1, 2, 3)}
            stats["steady"] = statistics.median(run["steady"] for run in runs)
            stats["worst"] = max(
                statistics.median(run["calls"][k] for run in runs) for k in range(len(runs[0]["calls"]))
            )
            found.setdefault(int(leaves), {})[impl] = stats
    return dict(sorted(found.items()))


def calls_table(calls: dict[str, Any]) -> str:
    """Issue 26's table: calls 1 to 3 and the steady state, per implementation and leaf count."""
    lines = [
        f"Every eager call in fresh processes, median milliseconds over "
        f"{len(next(iter(next(iter(calls['results'].values())).values())))} processes "
        f"({calls['date']}; `{calls['command']}`); *worst*: batchapply's slowest call index "
        "against flax's same call:",
        "",
        "| leaves | `batchapply` call 1 / 2 / 3 / steady | `flax` call 1 / 2 / 3 / steady "
        "| `floor` steady | batchapply steady / floor | flax / batchapply steady | worst call / flax's |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, by_impl in _call_medians(calls).items():
        mine, theirs = by_impl["batchapply"], by_impl["flax"]
        floor = by_impl.get("floor", {}).get("steady")
        worst = max(v for k, v in calls["ratios"].items() if k.startswith(f"{n}:call"))
        cells = [
            " / ".join(f"{mine[s] * 1e3:.2f}" for s in CALL_STATS),
            " / ".join(f"{theirs[s] * 1e3:.2f}" for s in CALL_STATS),
            "" if floor is None else f"{floor * 1e3:.2f}",
            "" if floor is None else f"{mine['steady'] / floor:.2f}",
            f"{theirs['steady'] / mine['steady']:.1f}x",
            f"{worst:.2f}",
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- plots:{name} -->\n)(.*?)(<!-- /plots:{name} -->)", re.S)


def _replacement(markdown: str) -> Callable[[re.Match[str]], str]:
    return lambda match: match[1] + "\n" + markdown + "\n\n" + match[3]


def render_pages(results: dict[str, Any]) -> dict[pathlib.Path, str]:
    """Each page with its ``plots:NAME`` blocks regenerated."""
    generated = tables(results)
    pages = {}
    for page in PAGES:
        text = page.read_text()
        for name, markdown in generated.items():
            text = _block(name).sub(_replacement(markdown), text)
        pages[page] = text
    return pages


def images(results: dict[str, Any]) -> dict[str, str]:
    """The four plots as SVG text (deterministic: fixed hash salt, no date, text as text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "batchapply", "svg.fonttype": "none", "font.size": 9})
    out = {}

    def save(fig: Any, name: str) -> None:
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
        plt.close(fig)
        out[name] = buffer.getvalue()

    styles = {"batchapply": "o-", "flax": "s-", "floor": "^--", "by_hand": "x:"}
    for kind, title, name in (
        ("per_call", "Cost per eager call, signature repeated", "per_call.svg"),
        ("first_call", "First eager call, caches cleared", "first_call.svg"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        counts = list(results[kind])
        for impl in IMPLS:
            ax.plot(counts, [results[kind][n][impl] * 1e3 for n in counts], styles[impl], label=LABELS[impl])
        ax.set(xscale="log", yscale="log", xlabel="leaves of (4, 8, 16)", ylabel="median time (ms)")
        ax.set_title(f"{title} ({results['leaves_date']})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, name)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    by_leaves = _call_medians(results["calls"])
    counts = list(by_leaves)
    colors = {"batchapply": "C0", "flax": "C1", "floor": "C2"}
    for impl, color in colors.items():
        for stat, style in (("call 1", "o:"), ("call 2", "s--"), ("steady", "^-")):
            points = [(n, by_leaves[n][impl][stat] * 1e3) for n in counts if impl in by_leaves[n]]
            if impl == "floor" and stat != "steady":
                continue  # the floor's compiles take minutes: only its steady state is shown
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, style, color=color, label=f"{impl}, {stat}")
    ax.set(xscale="log", yscale="log", xlabel="leaves of (4, 8, 16)", ylabel="median time (ms)")
    ax.set_title(f"Every eager call, fresh processes ({results['calls']['date']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save(fig, "calls.svg")

    memory = results["memory"]
    rows = _chunk_rows(memory)
    chunked = [row for row in rows if row[0] != "none"]
    whole = next((row for row in rows if row[0] == "none"), None)
    sizes = [int(row[0]) for row in chunked]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    series = ("eager, RSS peak", "eager, live-array peak", "jax.jit, compiled temporaries")
    for i, (label, style) in enumerate(zip(series, ("o-", "s-", "^-"), strict=True)):
        line = ax.plot(sizes, [float(row[i + 1]) for row in chunked], style, label=label)
        if whole is not None:
            ax.axhline(float(whole[i + 1]), color=line[0].get_color(), linestyle=":", alpha=0.7)
    ax.set(xscale="log", yscale="log", xlabel="chunk_size (merged rows)", ylabel="MB above the inputs")
    ax.set_title(f"MLP over 2**{memory['rows_log2']} rows; dotted: no chunk_size ({memory['date']})")
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, "chunk_memory.svg")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--tables-only", action="store_true", help="leave the images alone (no matplotlib)")
    args = parser.parse_args(argv)
    results = load()
    stale = []
    for page, text in render_pages(results).items():
        if page.read_text() != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                page.write_text(text)
    if not args.tables_only:
        for name, svg in images(results).items():
            path = IMAGES / name
            if not path.exists() or path.read_text() != svg:
                stale.append(path.relative_to(ROOT).as_posix())
                if not args.check:
                    IMAGES.mkdir(exist_ok=True)
                    path.write_text(svg)
    if args.check and stale:
        print(f"out of date with benchmarks/results/: {', '.join(stale)}; run: python benchmarks/plots.py")
        return 1
    print(("checked" if args.check else "wrote") + f": {len(PAGES)} pages, 4 images; changed: {stale}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
