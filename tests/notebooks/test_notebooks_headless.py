"""Every notebook runs headless, top to bottom, on the embedded model with small sizes.

Each runs through papermill (`python -m papermill`, `headless_runs` in conftest.py) with INTERACTIVE=False:
it then drives its widgets from code (setting a slider's value or clicking a button fires the same callbacks
a user's drag or click does), on the first 2 decoder layers of SmolLM2 (`MAX_LAYERS`) and 2 windows × 64
tokens (`notebook_runs.SMALL`). Papermill fails the run on any cell error; the notebook's own record
(`OUT_DIR/<name>.json`, written by `widgets.save_run`) must show at least one widget callback and at least
one saved figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from notebook_runs import HeadlessRuns

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))

pytestmark = [pytest.mark.slow, pytest.mark.smol]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_headless(name: str, headless_runs: HeadlessRuns) -> None:
    work = headless_runs.result(name)
    out = work / "out"
    record = json.loads((out / f"{name}.json").read_text())
    assert record["callbacks"] >= 1, record
    assert record["figures"], record
    for fig in record["figures"]:
        html = (out / fig).read_text()
        assert "plotly" in html and len(html) > 1000, fig
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # the saved figures open offline
    if name == "04_theory":  # the Fisher gradients come from calibration windows the PCA did not see
        executed = nbformat.read(work / f"{name}.ipynb", as_version=4)
        code = [c for c in executed.cells if c.cell_type == "code"]
        printed = "".join(o.get("text", "") for c in code for o in c.outputs)
        assert "held-out gradient (2, 64)" in printed
    if name == "03_dimension_sweep":
        dims = sorted(int(r["dim"]) for r in record["rows"])
        assert dims == [288, 432], dims
        assert all(r["ppl_measured"] > 0 and "ppl_err_fisher" in r for r in record["rows"])
