"""``python -m tests.mutation.run --pool``: one sample over several files (issue 22's core sample)."""

from __future__ import annotations

import pathlib

from tests.mutation import mutants, run

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_a_pooled_sample_is_drawn_once_over_every_file_of_the_pool() -> None:
    files = run.POOLS["core"]
    found = {f: mutants.find(f, (ROOT / f).read_text()) for f in files}
    chosen = run.pooled_sample(files, found, 60, 0)
    assert chosen == run.pooled_sample(files, found, 60, 0)  # the seed decides
    assert len({(m.file, m.index, m.operator, m.k) for m in chosen}) == 60
    assert len({m.file for m in chosen}) >= 5  # not one file's 60
    order = [(files.index(m.file), m.line) for m in chosen]
    assert order == sorted(order)  # file order, then line order, as the results list them
    everything = sum(len(v) for v in found.values())
    assert set(run.pooled_sample(files, found, everything + 1, 0)) == {m for f in files for m in found[f]}
