"""Mutation testing: how many sampled faults in the source the fast tests catch.

    PYTHONPATH=impl:reference:conformance:. python -m tests.mutation.run            # defaults
    python -m tests.mutation.run --files impl/batchapply/_core.py --sample 60 --seed 0
    python -m tests.mutation.run --files impl/batchapply/_core.py --list           # no run
    python -m tests.mutation.run --files impl/batchapply/_core.py --functions _on_host --no-write
    python -m tests.mutation.run --judge cli --files impl/batchapply/_core.py --sample 60   # the kit

For each file, the mutants of ``tests.mutation.mutants`` are enumerated and ``--sample``
of them drawn with ``--seed``. The tracked and untracked (not ignored) files of the
repository are copied once into a temporary directory; each mutant is written over its
file there, the test selection runs in one subprocess (``pytest -x``, ``--timeout``
seconds), and the file is restored. A mutant is *killed* when the tests fail (or time
out), *survived* when they pass, *equivalent* when it survives and
``tests.mutation.equivalent`` lists it with its reason. First the unmutated copy
(unparsed like every mutant) must pass, or nothing is measured.

Results: ``tests/mutation/results/<file>.csv`` and ``.md`` (file, line, operator,
mutation, status, killing test); the score is killed / (sampled - equivalent).

``--pool NAME`` draws one sample of ``--sample`` mutants from the mutants of all the
``--files`` together (each mutant equally likely, whatever its file: ``random.Random(f"{seed}:pool")``
over the files' mutants in ``--files`` order), and writes ``results/NAME.csv`` and ``.md``.
``--pool core`` takes the modules the old ``impl/batchapply/_core.py`` was split into (issue 25)::

    python -m tests.mutation.run --judge cli --pool core --sample 60 --seed 0

``--judge cli`` measures the conformance kit instead of the tests (issue 22): the killing
command is the CLI, ``python -m batchapply_conformance batchapply:BatchApply --profile ci -x``,
run against the mutated copy; a mutant is killed when it exits non-zero (a MUST clause
FAILs or did not run, or the target no longer loads), and the killing "test" is the
failing clause. ``-x`` (``--exitfirst``) stops the CLI at its first MUST failure: the exit
status is the same as a full run's, sooner. Results: ``tests/mutation/results/<file>.cli.csv`` and ``.md``.
One test process at a time: a run of 60 mutants took about 25 to 40 minutes on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

from tests.mutation import equivalent, mutants

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "mutation" / "results"
CORE = [  # what the old impl/batchapply/_core.py was split into (issue 25, docs/architecture.md)
    "impl/batchapply/_core.py",
    "impl/batchapply/_plan.py",
    "impl/batchapply/_exec_reshape.py",
    "impl/batchapply/_exec_fused.py",
    "impl/batchapply/_exec_steady.py",
    "impl/batchapply/_exec_chunks.py",
    "impl/batchapply/_exec_local.py",
    "impl/batchapply/_exec_map.py",
    "impl/batchapply/_chunks.py",
    "impl/batchapply/_leaves.py",
    "impl/batchapply/_trees.py",
    "impl/batchapply/_errors.py",
    "impl/batchapply/_options.py",
    "impl/batchapply/_helpers.py",
]
FILES = [
    *CORE,
    "reference/batchapply_reference/_core.py",
    "impl/batchapply/_sharding.py",
]
POOLS = {"core": CORE}  # issue 22's "_core.py" sample, drawn over the split core
# The fastest killers first: pytest -x stops at the first failure.
TESTS = [
    "tests/test_eager_paths.py",
    "tests/test_errors.py",
    "tests/test_call.py",
    "tests/test_helpers.py",
    "tests/test_repr.py",
    "tests/test_eager_dispatch.py",
    "tests/test_eager_steady.py",
    "tests/golden",
    "tests/test_mutation_survivors.py",
    "tests/test_row_order.py",  # section 14 on one device
    "tests/test_exact_inputs.py",  # x64, weak types, PRNG keys, devices: what the CPU host path must keep
    "tests/test_chunking.py",  # section 13: _chunks.py and the _exec_* chunk executors
    "tests/test_sharding.py",  # section 14 on 8 simulated devices, in a subprocess
    "tests/property/test_eager_agreement.py",
    "tests/test_haiku_cases.py",  # chunks inside haiku.transform go through haiku.scan (_exec_map)
]
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def _copy_tree(destination: pathlib.Path) -> None:
    """The repository's tracked and untracked, not ignored, files (no results, no caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in listed:
        if not name or name.startswith("tests/mutation/results/"):
            continue
        source = ROOT / name
        if not source.is_file():
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _run_tests(tree: pathlib.Path, tests: list[str], timeout: float) -> tuple[bool, str, float]:
    """(passed, the first failing test or "", seconds) of the selection run in ``tree``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(tree / p) for p in ("impl", "reference", "conformance", "."))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("BATCHAPPLY_HYPOTHESIS_PROFILE", "mutation")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"(timeout after {timeout:.0f} s)", time.monotonic() - start
    seconds = time.monotonic() - start
    if done.returncode == 0:
        return True, "", seconds
    found = FAILED.search(done.stdout)
    if found:
        return False, found.group(1), seconds
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["?"]
    return False, f"(exit {done.returncode}: {tail[0][:80]})", seconds


PRELOAD = ("numpy", "jax", "jax.numpy", "flax.linen", "flax.nnx", "haiku", "optax")
"""What ``--fork`` imports once in the parent: third-party libraries only, not this project, not
pytest plugins (hypothesis: pytest rewrites their asserts when it starts)."""


def _preload() -> None:
    """Import :data:`PRELOAD` without starting a jax backend (a forked backend would deadlock)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    from jax._src import xla_bridge

    if xla_bridge._backends:  # pragma: no cover - an import started jax: forking is unsafe
        raise SystemExit("--fork: importing the libraries started a jax backend; run without --fork")


def _run_tests_forked(tree: pathlib.Path, tests: list[str], timeout: float) -> tuple[bool, str, float]:
    """As :func:`_run_tests`, in a child forked from this process, which has imported the
    libraries (:func:`_preload`) but not batchapply: the child imports the (mutated) tree's
    copy, so the mutant is the same; only the seconds of importing jax, flax and haiku are saved."""
    import signal

    log = tree.parent / (tree.name + ".pytest.log")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(tree)
            paths = [str(tree / p) for p in ("impl", "reference", "conformance", ".")]
            os.environ["PYTHONPATH"] = os.pathsep.join(paths)
            os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
            os.environ.setdefault("BATCHAPPLY_HYPOTHESIS_PROFILE", "mutation")
            sys.dont_write_bytecode = True
            sys.path[:0] = paths
            for name in [n for n in sys.modules if n == "tests" or n.startswith("tests.")]:
                del sys.modules[name]  # this runner's own package, from the repository, not the tree
            import pytest

            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests]))
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False, f"(timeout after {timeout:.0f} s)", time.monotonic() - start
        time.sleep(0.1)
    seconds = time.monotonic() - start
    output = log.read_text(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return True, "", seconds
    found = FAILED.search(output)
    if found:
        return False, found.group(1), seconds
    tail = output.strip().splitlines()[-1:] or ["?"]
    return False, f"(exit {code}: {tail[0][:80]})", seconds


CLI = [sys.executable, "-m", "batchapply_conformance", "batchapply:BatchApply", "--profile", "ci", "-x"]
"""The killing command of ``--judge cli``: the conformance kit's CLI with its default profile."""
FAILING_CLAUSE = re.compile(r"^(BA-\d+\.\d+)\s+MUST\s+FAIL", re.MULTILINE)
NOT_RUN_CLAUSE = re.compile(r"^(BA-\d+\.\d+)\s+MUST\s+NOT RUN(?!.*--exitfirst)", re.MULTILINE)


def _run_cli(tree: pathlib.Path, timeout: float) -> tuple[bool, str, float]:
    """(passed, the first failing MUST clause or "", seconds) of the CLI run in ``tree``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(tree / p) for p in ("impl", "reference", "conformance", "."))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("XLA_FLAGS", None)  # the CLI sets 8 CPU devices itself
    env["JAX_PLATFORMS"] = "cpu"
    start = time.monotonic()
    try:
        done = subprocess.run(
            CLI, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"(timeout after {timeout:.0f} s)", time.monotonic() - start
    seconds = time.monotonic() - start
    if done.returncode == 0:
        return True, "", seconds
    found = FAILING_CLAUSE.search(done.stdout) or NOT_RUN_CLAUSE.search(done.stdout)
    if found:
        return False, found.group(1), seconds
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["?"]
    return False, f"(exit {done.returncode}: {tail[0][:80]})", seconds


def pooled_sample(
    files: list[str], found: dict[str, list[mutants.Mutant]], n: int, seed: int
) -> list[mutants.Mutant]:
    """``n`` of the mutants of all ``files`` (all if fewer), each equally likely; in file, then line order."""
    everything = [m for file in files for m in found[file]]
    if n < len(everything):
        everything = random.Random(f"{seed}:pool").sample(everything, n)
    order = {file: i for i, file in enumerate(files)}
    return sorted(everything, key=lambda m: (order[m.file], m.line, m.index, m.operator, m.k))


def _write(file: str, rows: list[dict[str, str]], header: str, suffix: str = "") -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = file.replace("/", "__").removesuffix(".py") + suffix
    fields = ["file", "line", "function", "operator", "mutation", "status", "killed_by"]
    with open(RESULTS / f"{stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [header, "", "| line | function | operator | mutation | status | killed by / reason |"]
    lines.append("|---|---|---|---|---|---|")
    for row in rows:
        mutation = row["mutation"].replace("|", "\\|")
        lines.append(
            f"| {row['line']} | `{row['function']}` | {row['operator']} | `{mutation}` "
            f"| {row['status']} | {row['killed_by']} |"
        )
    path = RESULTS / f"{stem}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed_out(row: dict[str, str]) -> bool:
    """Whether a row was killed by the timeout alone (rerun by --recheck: a loaded machine, not a kill)."""
    return row["killed_by"].startswith("(timeout")


def _row_key(row: dict[str, str]) -> tuple[str, str, str, str]:
    return (row["file"], row["line"], row["operator"], row["mutation"])


def _mutant_key(m: mutants.Mutant) -> tuple[str, str, str, str]:
    return (m.file, str(m.line), m.operator, f"{m.before} -> {m.after}")


def _previous(
    file: str, chosen: list[mutants.Mutant], suffix: str = ""
) -> dict[tuple[str, str, str, str], dict[str, str]]:
    """The rows of ``file``'s last results, by mutant; each must be one of ``chosen`` (all of them,
    unless that run was ``--incremental`` and stopped early)."""
    path = RESULTS / (file.replace("/", "__").removesuffix(".py") + suffix + ".csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    wanted = {_mutant_key(m) for m in chosen}  # two mutants can make the same edit: one key
    if any(_row_key(row) not in wanted for row in rows) or len(rows) > len(chosen):
        raise SystemExit(
            f"{path} lists another sample (the source or the seed changed): run without --recheck"
        )
    return {_row_key(row): row for row in rows}


def _header(
    file: str,
    args: argparse.Namespace,
    sampled: int,
    total: int,
    done: int,
    counts: dict[str, int],
    rechecked: bool,
    final: bool,
    sources: dict[str, str],
) -> str:
    """The results' header: what ran, the counts and score, the command."""
    counted = done - counts["equivalent"]
    score = counts["killed"] / counted if counted else 1.0
    run = f"sample {sampled} of {total} mutants (seed {args.seed})"
    if done < sampled:
        run += (
            f", stopped after {done} of them, run in a random order (--incremental): "
            f"those {done} are a random sample of the {sampled}"
            if final or args.incremental
            else f", {done} done"
        )
    selection = f"--pool {args.pool}" if args.pool else f"--files {file}"
    title = f"pool `{args.pool}` ({', '.join(f'`{f}`' for f in sources)})" if args.pool else f"`{file}`"
    command = (
        f"Command: `python -m tests.mutation.run --judge cli {selection} "
        f"--sample {args.sample} --seed {args.seed}`; killing command: "
        f"`{' '.join(CLI[1:])}` (exit status not 0)"
        if args.judge == "cli"
        else f"Command: `python -m tests.mutation.run {selection} --sample {args.sample} "
        f"--seed {args.seed}{' --fork' if args.fork else ''}{' --incremental' if args.incremental else ''}"
        f"{' --recheck' if rechecked else ''}{' --resume' if args.resume else ''}`; "
        f"tests: {' '.join(args.tests)}"
    )
    return (
        f"# Mutation results: {title}\n\n"
        f"{datetime.date.today().isoformat()}"
        f"{' (the survivors of the last run rerun)' if rechecked else ''}: {run}; "
        f"killed {counts['killed']}, equivalent {counts['equivalent']}, "
        f"survived {counts['survived']}: score {score:.1%} (killed / (run - equivalent)).\n\n{command}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", nargs="+", default=FILES, help="source files, relative to the repo root")
    parser.add_argument("--sample", type=int, default=60, help="mutants per file or pool (default 60)")
    parser.add_argument(
        "--pool",
        choices=sorted(POOLS),
        default="",
        help="one sample from the mutants of these files together (results named after the pool)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test run")
    parser.add_argument("--tests", nargs="+", default=TESTS, help="the test selection")
    parser.add_argument("--list", action="store_true", help="print the sampled mutants, run nothing")
    parser.add_argument("--only", type=str, default="", help="comma-separated indices in the sample")
    parser.add_argument(
        "--match",
        type=str,
        default="",
        help="every mutant whose edit contains this text (or one of A||B), not a sample",
    )
    parser.add_argument(
        "--functions",
        type=str,
        default="",
        help="every mutant in these functions (comma-separated, as the results name them), not a sample",
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="rerun only the last results' survivors that equivalent.py does not list (same sample)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write the results files")
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="run the mutants in a random order (by --seed) and rewrite the results after each one: a "
        "run stopped early leaves a random sample of them, said so in the results (--recheck reruns "
        "its survivors)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --incremental: keep the last results' rows (a timeout is rerun, a survivor now "
        "listed in equivalent.py counts as equivalent) and run only the mutants they lack",
    )
    parser.add_argument(
        "--fork",
        action="store_true",
        help="run each mutant's tests in a child forked from this process, which has imported jax, "
        "flax and haiku once (not batchapply): the same verdicts, a few seconds less per mutant",
    )
    parser.add_argument(
        "--judge",
        choices=("tests", "cli"),
        default="tests",
        help="what must catch the mutants: the test selection (default) or the conformance CLI (ci profile)",
    )
    args = parser.parse_args(argv)
    if args.resume and args.recheck:
        parser.error("--resume and --recheck: run one, then the other")
    suffix = ".cli" if args.judge == "cli" else ""
    equivalents = {**equivalent.EQUIVALENT, **(equivalent.KIT_EQUIVALENT if args.judge == "cli" else {})}

    def judge(tree: pathlib.Path) -> tuple[bool, str, float]:
        if args.judge == "cli":
            return _run_cli(tree, args.timeout)
        if args.fork:
            return _run_tests_forked(tree, args.tests, args.timeout)
        return _run_tests(tree, args.tests, args.timeout)

    if args.fork and args.judge == "tests" and not args.list:
        _preload()
    plans = []  # (what the results are named after, the files' sources, the chosen mutants)
    groups = [(file, [file]) for file in args.files]
    if args.pool:
        groups = [(f"pool-{args.pool}", POOLS[args.pool])]
    for label, files in groups:
        sources = {file: (ROOT / file).read_text() for file in files}
        found = {file: mutants.find(file, sources[file]) for file in files}
        every = [m for file in files for m in found[file]]
        if args.pool:
            chosen = pooled_sample(files, found, args.sample, args.seed)
        else:
            chosen = mutants.sample(every, args.sample, args.seed)
        if args.match:
            texts = args.match.split("||")
            chosen = [m for m in every if any(t in f"{m.before} -> {m.after}" for t in texts)]
        if args.functions:
            names = set(args.functions.split(","))
            chosen = [m for m in every if m.function in names]
        if args.only:
            chosen = [chosen[int(i)] for i in args.only.split(",")]
        plans.append((label, sources, chosen, len(every)))
    if args.list:
        for _, _, chosen, _ in plans:
            for i, m in enumerate(chosen):
                print(f"{i:3d} {m.file}:{m.line} {m.function} {m.operator}: {m.before} -> {m.after}")
        return 0

    status = 0
    with tempfile.TemporaryDirectory(prefix="batchapply-mutation-") as tmp:
        tree = pathlib.Path(tmp)
        _copy_tree(tree)
        for file, sources, chosen, total in plans:
            # The baseline: the unparsed, unmutated files pass, so a failure is the mutant's doing.
            for name, source in sources.items():
                (tree / name).write_text(mutants.apply_none(source))
            passed, failing, seconds = judge(tree)
            if not passed:
                print(f"{file}: the unmutated copy fails ({failing}); nothing measured", flush=True)
                status = 1
                continue
            print(f"{file}: baseline passes in {seconds:.0f} s; {len(chosen)} mutants", flush=True)
            previous = _previous(file, chosen, suffix) if args.recheck or args.resume else None
            sampled = len(chosen)
            if previous is not None and args.recheck:  # a stopped --incremental run: only the mutants it ran
                chosen = [m for m in chosen if _mutant_key(m) in previous]
            order = list(range(len(chosen)))
            if args.incremental:  # any prefix of a random order is a random sample
                random.Random(f"{args.seed}:{file}:order").shuffle(order)
            done: dict[int, dict[str, str]] = {}
            rechecked = previous is not None and args.recheck
            counts = {"killed": 0, "survived": 0, "equivalent": 0}

            writes = not (args.no_write or args.only or args.match)
            for i in order:
                m = chosen[i]
                before = previous.get(_mutant_key(m)) if previous is not None else None
                if before is not None and args.resume and not timed_out(before):
                    verdict = before["status"]
                    if verdict == "survived" and m.key in equivalents:
                        before = {**before, "status": "equivalent", "killed_by": equivalents[m.key]}
                    done[i] = before
                    counts[before["status"]] += 1
                    continue
                if before is not None and before["status"] == "killed" and not timed_out(before):
                    done[i] = before  # more tests cannot revive a killed mutant
                    counts["killed"] += 1
                    continue
                if before is not None and m.key in equivalents:
                    # It survived the last run and is listed: not rerun (run without --recheck for that).
                    done[i] = {**before, "status": "equivalent", "killed_by": equivalents[m.key]}
                    counts["equivalent"] += 1
                    continue
                target = tree / m.file
                target.write_text(mutants.apply(sources[m.file], m))
                passed, failing, seconds = judge(tree)
                target.write_text(mutants.apply_none(sources[m.file]))
                reason = equivalents.get(m.key)
                verdict = "killed" if not passed else ("equivalent" if reason else "survived")
                counts[verdict] += 1
                done[i] = {
                    "file": m.file,
                    "line": str(m.line),
                    "function": m.function,
                    "operator": m.operator,
                    "mutation": f"{m.before} -> {m.after}",
                    "status": verdict,
                    "killed_by": failing if not passed else (reason or ""),
                }
                print(
                    f"  [{i:3d}] {verdict:10s} {seconds:5.1f}s {m.file}:{m.line} {m.operator}: "
                    f"{m.before} -> {m.after}" + (f"  [{failing}]" if failing else ""),
                    flush=True,
                )
                if writes and args.incremental:
                    text = _header(file, args, sampled, total, len(done), counts, rechecked, False, sources)
                    _write(file, [done[j] for j in sorted(done)], text, suffix)
            for name, source in sources.items():
                (tree / name).write_text(source)
            text = _header(file, args, sampled, total, len(done), counts, rechecked, True, sources)
            if writes:
                written = _write(file, [done[j] for j in sorted(done)], text, suffix)
                print(f"  written {written.relative_to(ROOT)}")
            print(text.splitlines()[2], flush=True)
            if counts["survived"]:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
