"""examples/flax_time_series.py trains: its loss falls within a few dozen steps."""

from __future__ import annotations

import importlib.util
import pathlib
import types

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "flax_time_series.py"


def load_example() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("flax_time_series", EXAMPLE)
    assert spec is not None and spec.loader is not None, f"cannot load {EXAMPLE}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_series_example_loss_decreases(capsys: pytest.CaptureFixture[str]) -> None:
    losses = load_example().main(steps=40, log_every=20)
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses
    printed = capsys.readouterr().out
    assert "step    0" in printed and "step   39" in printed
