"""The notebooks' sources: one jupytext py:percent file per notebook (`notebooks/NN_name.py`, what one edits
and ruff lints), paired with an output-free `.ipynb` holding exactly the same cells (`jupytext --sync`)."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"
GUIDE = NB_DIR.parent / "docs" / "notebooks.md"
NOTEBOOKS = ("00_quickstart", "01_activation_flow", "02_linear_maps", "03_dimension_sweep", "04_theory",
             "05_tokens", "06_width_plan")


def test_notebooks_found() -> None:
    assert tuple(sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))) == NOTEBOOKS
    assert tuple(sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.py"))) == NOTEBOOKS
    assert not (NB_DIR / "_build.py").exists()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_pair_in_sync_and_stripped(name: str) -> None:
    """Same cells (type, source, metadata) in the .py and the .ipynb; no outputs; one parameters cell."""
    source = jupytext.read(NB_DIR / f"{name}.py")
    paired = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(paired)
    assert source.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    assert paired.metadata["jupytext"]["formats"] == "ipynb,py:percent", "pair it: jupytext --set-formats"
    assert paired.metadata["kernelspec"]["name"] == "python3"
    cells = [(c.cell_type, c.source, dict(c.metadata)) for c in source.cells]
    assert cells == [(c.cell_type, c.source, dict(c.metadata)) for c in paired.cells], (
        f"{name}.ipynb is out of sync with {name}.py: run `jupytext --sync notebooks/{name}.py`")
    for cell in paired.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}.ipynb holds outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in paired.cells) == 1
    first = paired.cells[0]
    assert first.cell_type == "markdown"
    assert "**What it shows.**" in first.source and "**How long.**" in first.source
    assert "**What you will learn.**" in first.source


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercises_are_in_the_teachers_guide(name: str) -> None:
    """Two or three numbered exercises in an `## Exercises` cell, collected word for word in
    docs/notebooks.md."""
    cells = [c.source for c in jupytext.read(NB_DIR / f"{name}.py").cells if c.cell_type == "markdown"]
    (exercises,) = [c for c in cells if c.startswith("## Exercises")]
    items = re.split(r"\n(?=\d\. )", exercises.split("\n", 1)[1].strip())
    assert 2 <= len(items) <= 3 and all(i.startswith(f"{k}. ") for k, i in enumerate(items, 1))
    guide = words(GUIDE.read_text())
    assert all(words(i) in guide for i in items), f"docs/notebooks.md misses an exercise of {name}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_width_of_one_model_is_hard_coded(name: str) -> None:
    """Widths follow from a sparsity or from D: no parameter names a width (SmolLM2's 432 … is Gemma 3's
    nothing)."""
    params = [c.source for c in jupytext.read(NB_DIR / f"{name}.py").cells
              if "parameters" in c.metadata.get("tags", [])][0]
    for line in params.splitlines():
        if re.match(r"(DIM|LAYER|SEMI_DIMS|MEASURE_DIMS)\s*=", line):
            assert re.match(r"\w+\s*=\s*None\b", line), line


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n != "03_dimension_sweep"])
def test_model_notebooks_share_one_setup(name: str) -> None:
    """The model, its layers and its windows come from `widgets.setup.notebook_setup`, never from a cell."""
    code = "\n".join(c.source for c in jupytext.read(NB_DIR / f"{name}.py").cells if c.cell_type == "code")
    assert "notebook_setup(" in code
    assert "load_windows(" not in code and "load_model(" not in code
