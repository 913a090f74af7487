"""The registry is open: a predictor with a dense statistic of its own (`tests/toy_predictor.py`, one module
and its registration, from the test tree) reaches results.csv, report.html, `slicedim predict --json` and the
sweep widget with no other edit; its statistic is built once from the dense model, kept in the sweep folder
and read back."""

from __future__ import annotations

import csv
import json

import pytest
import toy_predictor
from tiny_fixtures import tiny_folder

from slicedim_lab import schema
from slicedim_lab import widgets as sw
from slicedim_lab.cli import main
from slicedim_lab.predict import registry, statistics
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.viz import style

SMALL = ["--device", "cpu", "--cal-samples", "2", "--cal-seqlen", "32", "--eval-seqlen", "32",
         "--max-eval-windows", "2", "--mc-items", "4", "--no-progress"]


@pytest.fixture
def toy(monkeypatch):
    """The toy predictor and its statistic registered for one test (both registries restored after)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(statistics, "_STATISTICS", dict(statistics._STATISTICS))
    toy_predictor.BUILT.clear()
    toy_predictor.register()
    return toy_predictor


def test_a_predictor_with_its_own_statistic_reaches_every_consumer(toy, tmp_path, smol_tok, capsys) -> None:
    model = tiny_folder(tmp_path / "model", smol_tok)
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", str(model), *SMALL, "--sparsities", "0,0.5", "--out", str(out)]) == 0
    assert toy.BUILT == [5] and (out / "toy_energy.pt").exists()  # 2 layers: 5 sites, one dense pass
    with open(out / "results.csv") as f:
        rows = {int(r["dim"]): r for r in csv.DictReader(f)}
    for col in (schema.pred("ppl", "toy"), schema.err("toy"), schema.lo("ppl", "toy"),
                schema.hi("ppl", "toy"), schema.pred("acc", "toy"), schema.pred("mc_acc", "toy"),
                schema.dloss("toy")):
        assert rows[32][col] != "", col
    assert float(rows[32][schema.pred("ppl", "toy")]) > float(rows[64][schema.pred("ppl", "toy")])
    html = (out / "report.html").read_text()
    assert "<b>toy</b> (drawn): 0.05·s·ln(1 + mean energy)" in html and "<b>toy_energy</b>" in html
    assert style.predicted_name("toy") in html and f"<th>{schema.pred('ppl', 'toy')}</th>" in html
    capsys.readouterr()

    assert main(["predict", "--model", str(model), *SMALL, "--dims", "48,32", "--cache", str(out),
                 "--predictors", "toy", "--json", "-"]) == 0
    pred = json.loads(capsys.readouterr().out)["predictions"]
    assert toy.BUILT == [5]  # read back from the sweep folder, not built again
    assert all(r[schema.lo("ppl", "toy")] < r[schema.pred("ppl", "toy")] < r[schema.hi("ppl", "toy")]
               for r in pred)
    assert pred[1][schema.pred("ppl", "toy")] == pytest.approx(float(rows[32][schema.pred("ppl", "toy")]))

    cfg = SweepConfig(model=str(model), cal_samples=2, cal_seqlen=32, eval_seqlen=32, max_eval_windows=2,
                      mc_items=4)
    bench = sw.SweepBench.open(cfg, out, device="cpu", progress=False, log=lambda m: None)
    ex = sw.sweep_explorer(bench, dim=40)
    assert style.predicted_name("toy") in [t.name for t in ex.figures["ppl"].data]
    assert ex.state[schema.pred("ppl", "toy")] > 0 and "<td>toy</td>" in ex.outputs["table"].value
    assert "toy" in [t.name for t in ex.figures["error"].data]  # its error at the measured width
    assert toy.BUILT == [5]
