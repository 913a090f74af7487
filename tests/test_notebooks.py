"""Every notebook in notebooks/ runs headless, top to bottom, on the embedded model with small sizes.

Each runs through papermill with INTERACTIVE=False (it then drives its widgets from code: setting a
slider's value or clicking a button fires the same callbacks a user's drag or click does), the first 2
decoder layers of SmolLM2 (`MAX_LAYERS`), and 2 windows × 64 tokens. Papermill fails the test on any cell
error; the notebook's own record (`OUT_DIR/<name>.json`, written by `widgets.save_run`) must show at least one
widget callback and at least one saved figure. Also: the committed notebooks are exactly what
`notebooks/_build.py` writes, and hold no outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))

SMALL = dict(DEVICE="cpu", INTERACTIVE=False, MAX_LAYERS=2, BATCH_SIZE=2, CAL_WINDOWS=2, CAL_SEQLEN=64,
             EVAL_WINDOWS=2, EVAL_SEQLEN=64)
EXTRA = {
    "00_quickstart": dict(MAX_NEW_TOKENS=6),
    "01_activation_flow": dict(LAYER=1, NODES=1, COMPARE_INTERLEAVED=False),
    "02_linear_maps": dict(LAYER=1),
    "03_dimension_sweep": dict(GRAD_WINDOWS=2, MC_ITEMS=4, MEASURE_DIMS=[432, 288], SEMI_DIMS=[432]),
    "04_theory": dict(GRAD_WINDOWS=2),
}


def test_notebooks_found() -> None:
    assert NOTEBOOKS == ["00_quickstart", "01_activation_flow", "02_linear_maps", "03_dimension_sweep",
                         "04_theory"]


def test_notebooks_are_built_and_stripped(tmp_path: Path) -> None:
    """The committed notebooks equal the generator's output and carry no outputs or execution counts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("nb_build", NB_DIR / "_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.HERE = tmp_path
    for path in build.build():
        committed = nbformat.read(NB_DIR / path.name, as_version=4)
        assert committed == nbformat.read(path, as_version=4), f"{path.name}: rerun notebooks/_build.py"
        for cell in committed.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} holds outputs"
        tags = [c.metadata.get("tags", []) for c in committed.cells]
        assert sum("parameters" in t for t in tags) == 1, f"{path.name}: one parameters cell"
        first = committed.cells[0].source
        assert "**What it shows.**" in first and "**How long.**" in first


@pytest.mark.slow
@pytest.mark.smol
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_headless(name: str, tmp_path: Path) -> None:
    import papermill

    out = tmp_path / "out"
    params = {**SMALL, **EXTRA.get(name, {}), "OUT_DIR": str(out)}
    if name == "03_dimension_sweep":
        params["SWEEP_DIR"] = str(tmp_path / "sweep")
    papermill.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                               parameters=params, cwd=str(tmp_path), progress_bar=False,
                               kernel_name="python3")
    record = json.loads((out / f"{name}.json").read_text())
    assert record["callbacks"] >= 1, record
    assert record["figures"], record
    for fig in record["figures"]:
        html = (out / fig).read_text()
        assert "plotly" in html and len(html) > 1000, fig
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # the saved figures open offline
    if name == "03_dimension_sweep":
        dims = sorted(int(r["dim"]) for r in record["rows"])
        assert dims == [288, 432], dims
        assert all(r["ppl_measured"] > 0 and "ppl_err_fisher" in r for r in record["rows"])
