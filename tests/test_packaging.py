"""The distribution: one wheel, two packages with the same public names; the reference has no jax."""

from __future__ import annotations

import importlib.resources
import pathlib
import subprocess
import sys
import textwrap

import pytest

import batchapply
import batchapply_reference


def test_both_packages_expose_the_same_public_names() -> None:
    assert sorted(batchapply.__all__) == sorted(batchapply_reference.__all__)
    for name in batchapply.__all__:
        assert callable(getattr(batchapply, name)) and callable(getattr(batchapply_reference, name))


def test_reference_does_not_import_jax() -> None:
    script = textwrap.dedent(
        """
        import sys
        for name in ("jax", "hypothesis", "flax"):
            sys.modules[name] = None  # any `import jax` (hypothesis, flax) now raises ImportError
        import numpy as np
        import batchapply_reference as ref
        out = ref.BatchApply(lambda x: x * 2)(np.ones((2, 3, 4)))
        assert out.shape == (2, 3, 4)
        heavy = ("jax", "jaxlib", "hypothesis", "flax")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        assert loaded == ["flax", "hypothesis", "jax"], loaded  # only our None placeholders
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_reference_source_never_imports_jax() -> None:
    """jax.Array leaves are handled by their own methods (BA-5.6), not by importing jax."""
    import batchapply_reference

    root = pathlib.Path(batchapply_reference.__file__).parent
    for path in sorted(root.glob("*.py")):
        for line in path.read_text().splitlines():
            words = line.split()
            imported = (
                words[1].split(".")[0] if words[:1] in (["import"], ["from"]) and len(words) > 1 else ""
            )
            assert imported not in ("jax", "jaxlib", "flax", "hypothesis"), f"{path.name}: {line.strip()}"


@pytest.mark.spec("BA-12.10")
def test_batchapply_does_not_import_flax() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["flax"] = None  # any `import flax` now raises ImportError
        import numpy as np
        import batchapply
        assert batchapply.BatchApply(lambda x: x * 2)(np.ones((2, 3, 4))).shape == (2, 3, 4)
        loaded = sorted(m for m in sys.modules if m == "flax" or m.startswith("flax."))
        assert loaded == ["flax"], loaded  # only our None placeholder
        try:
            import batchapply.linen
        except ImportError:
            print("ok")  # the Flax modules, and only they, need flax
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_reference_holds_only_the_oracle() -> None:
    """The kit (strategies, functions, golden codec, checks, CLI) lives in batchapply_conformance."""
    import batchapply_reference

    root = pathlib.Path(batchapply_reference.__file__).parent
    modules = sorted(
        p.name for p in root.iterdir() if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")
    )
    assert modules == ["__init__.py", "_core.py", "_order.py", "_tree.py"], modules


def test_packages_are_typed() -> None:
    for package in ("batchapply", "batchapply_reference", "batchapply_conformance"):
        assert importlib.resources.files(package).joinpath("py.typed").is_file()


def test_ci_runs_the_readme_test_command() -> None:
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    ci_command = re.search(r"^TEST_COMMAND='(.+)'$", (root / ".ci/run").read_text(), re.M)
    assert ci_command is not None
    readme_blocks = re.findall(r"```bash\n(.+?)\n```", (root / "README.md").read_text(), re.S)
    assert readme_blocks[1] == ci_command[1], "README's test command and .ci/run's TEST_COMMAND differ"
