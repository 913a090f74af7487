"""Sweeps: rows as points finish, resume without duplicates, no silent reuse of stale rows, the dense-basis
emulation, the report and the CLI — on a tiny model with the real tokenizer."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import slicedim_lab.sweep.point as point
import slicedim_lab.sweep.runner as sweep
import slicedim_lab.sweep.state as state
from slicedim_lab import schema
from slicedim_lab.cli import main
from slicedim_lab.core.replay import ProjectedModel, dense_bases, dense_pcas
from slicedim_lab.core.sites import model_sites
from slicedim_lab.errors import UsageError
from slicedim_lab.load.models import LoadedModel
from slicedim_lab.predict import predict_point
from slicedim_lab.predict.fisher import FisherTables
from slicedim_lab.predict.registry import headline
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.folder import dense_metrics
from slicedim_lab.sweep.runner import run_sweep
from slicedim_lab.testing import tiny_model


@pytest.fixture(scope="module")
def lm(smol_tok) -> LoadedModel:
    model = tiny_model("llama", seed=0, vocab_size=len(smol_tok), tie_word_embeddings=True)
    return LoadedModel(model, smol_tok, "tiny", torch.device("cpu"))


def patch_measure(monkeypatch, fn) -> None:
    """Replace `inputs.measure` where the dense state (the dense point) and `point.measure_point` (widths)
    call it."""
    for module in (state, point):
        monkeypatch.setattr(module, "measure", fn)


def cfg(**kw) -> SweepConfig:
    base = dict(model="tiny", cal_samples=2, cal_seqlen=32, eval_seqlen=32, max_eval_windows=2, mc_items=4,
                mc_context=8, mc_cont=4)
    return SweepConfig(**{**base, **kw})


def csv_dims(path) -> list[int]:
    with open(path / "results.csv") as f:
        return [int(r["dim"]) for r in csv.DictReader(f)]


def test_resume_after_kill(tmp_path, lm, monkeypatch) -> None:
    out = tmp_path / "sw"
    calls: list[int] = []
    orig = state.measure

    def killed_on_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # dense, d'=48, then killed while measuring d'=32
            raise KeyboardInterrupt
        return orig(*a, **k)

    patch_measure(monkeypatch, killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg(), out, sparsities=[0, 0.25, 0.5], lm=lm, progress=False, report=False,
                  log=lambda m: None)
    assert csv_dims(out) == [64, 48]
    first = json.loads((out / "results.json").read_text())["rows"]

    calls.clear()
    patch_measure(monkeypatch, lambda *a, **k: calls.append(1) or orig(*a, **k))
    logs: list[str] = []
    rows = run_sweep(cfg(), out, sparsities=[0, 0.25, 0.5], lm=lm, progress=False, log=logs.append)
    assert len(calls) == 1  # only d'=32: dense metrics and finished points come from DIR
    assert any("resuming" in m for m in logs)
    assert csv_dims(out) == [64, 48, 32] and [r["dim"] for r in rows] == [64, 48, 32]
    assert rows[:2] == first
    header = open(out / "results.csv").readline().strip().split(",")
    for col in ("dim", "sparsity", "params", "ppl_measured", "ppl_pred_paper", "ppl_err_paper",
                "ppl_pred_fisher", "ppl_err_fisher", "ppl_est_calibration", "acc_measured", "acc_pred_fisher",
                "mc_acc_measured", "mc_acc_pred_paper", "mc_acc_pred_fisher", "seconds"):
        assert col in header
    r = rows[2]
    assert r["ppl_err_paper"] == pytest.approx(100 * (r["ppl_pred_paper"] / r["ppl_measured"] - 1))
    assert r["params"] < rows[0]["params"]
    html = (out / "report.html").read_text()
    assert "<script src=" not in html and len(html) > 1_000_000 and "fisher" in html


def test_changed_settings_are_not_reused(tmp_path, lm, monkeypatch) -> None:
    out = tmp_path / "sw"
    run_sweep(cfg(), out, dims=[64, 48], lm=lm, progress=False, report=False, log=lambda m: None)
    with pytest.raises(UsageError, match="cal_samples"):
        run_sweep(cfg(cal_samples=3), out, dims=[64, 48], lm=lm, progress=False, report=False)
    assert csv_dims(out) == [64, 48]
    calls: list[int] = []
    orig = state.measure
    patch_measure(monkeypatch, lambda *a, **k: calls.append(1) or orig(*a, **k))
    # more points with the same settings: only the new one is measured
    run_sweep(cfg(), out, dims=[64, 48, 40], lm=lm, progress=False, report=False, log=lambda m: None)
    assert len(calls) == 1 and csv_dims(out) == [64, 48, 40]
    # a width the tables were not built for (e.g. a slider position): the semi-interleaved predictors are
    # left out, the others are there with their errors
    tables = FisherTables.load(out / "fisher.pt")
    dense = dense_metrics(json.loads((out / "dense.json").read_text()), 64)
    row = sweep.with_predictions({"dim": 44, "ppl_measured": 2.0 * dense.ppl}, dense, {"fisher": tables})
    assert 44 not in tables.semi_dims
    assert "ppl_pred_fisher_semi" not in row and "ppl_err_fisher_semi" not in row
    assert row["ppl_err_fisher"] == pytest.approx(100 * (row["ppl_pred_fisher"] / row["ppl_measured"] - 1))
    # fresh: old rows and caches are discarded and everything is measured again
    calls.clear()
    run_sweep(cfg(cal_samples=3), out, dims=[64, 48], lm=lm, fresh=True, progress=False, report=False,
              log=lambda m: None)
    assert len(calls) == 2 and csv_dims(out) == [64, 48]
    # ... but a folder with the same settings resumes (make demo passes --fresh)
    calls.clear()
    run_sweep(cfg(cal_samples=3), out, dims=[64, 48], lm=lm, fresh=True, progress=False, report=False,
              log=lambda m: None)
    assert calls == [] and csv_dims(out) == [64, 48]
    assert json.loads((out / "settings.json").read_text())["settings"]["cal_samples"] == 3


def test_projected_model_is_the_projection(lm) -> None:
    model = lm.model
    ids = torch.randint(0, 1000, (2, 16), generator=torch.Generator().manual_seed(0))
    pcas = dense_pcas(model, ids, progress=False)
    full = ProjectedModel(model, dense_bases(pcas, [64] * 7))
    with torch.no_grad():
        torch.testing.assert_close(full(ids).logits, model(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
        b = pcas[0].basis(40)
        emb = model.get_input_embeddings()(ids)
        want = model(inputs_embeds=(emb @ b.float()) @ b.T.float()).logits
    got = ProjectedModel(model, dense_bases(pcas, [40] + [64] * 6))(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_dense_basis_sweep(tmp_path, lm) -> None:
    rows = run_sweep(cfg(basis="dense", tasks=[]), tmp_path / "d", dims=[64, 32], lm=lm, progress=False,
                     report=False, log=lambda m: None)
    assert rows[1]["ppl_measured"] > 0 and rows[1].get("ppl_est_calibration") is None
    assert rows[0]["ppl_measured"] == pytest.approx(rows[0]["ppl_pred_fisher"])


def test_cli_sweep_and_predict(tmp_path, lm, capsys) -> None:
    folder = tmp_path / "tiny"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    common = ["--model", str(folder), "--device", "cpu", "--cal-samples", "2", "--cal-seqlen", "32",
              "--eval-seqlen", "32", "--max-eval-windows", "2", "--mc-items", "4", "--no-progress"]
    assert main(["sweep", *common, "--sparsities", "0,0.5", "--out", str(tmp_path / "s"), "--json", "-"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert [r["dim"] for r in payload["rows"]] == [64, 32]
    # the side-by-side table: measured, paper and ours with their errors, in the log and the report
    assert "measured vs paper vs ours:" in captured.err
    r32 = payload["rows"][1]
    assert f"{r32['ppl_measured']:9.3f}" in captured.err
    assert f"{r32['ppl_err_ours']:+5.0f}%" in captured.err
    # and ours' 90% interval beside the measured value's own
    assert f"[{r32['ppl_lo_ours']:7.2f}, {r32['ppl_hi_ours']:7.2f}]" in captured.err
    assert f"[{r32['ppl_lo_measured']:7.2f}, {r32['ppl_hi_measured']:7.2f}]" in captured.err
    assert (tmp_path / "s" / "jvp.pt").exists()
    html = (tmp_path / "s" / "report.html").read_text()
    assert "PPL ours" in html and f"{r32['ppl_pred_ours']:.4g}" in html
    assert main(["predict", *common, "--dims", "48,32", "--cache", str(tmp_path / "s"), "--json", "-"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert [r["dim"] for r in pred["predictions"]] == [48, 32]
    assert all(r["ppl_lo_ours"] <= r["ppl_pred_ours"] <= r["ppl_hi_ours"] for r in pred["predictions"])
    assert pred["dense"]["ppl"] == pytest.approx(payload["rows"][0]["ppl_measured"])
    assert main(["sweep", *common, "--sparsities", "0,1.5", "--out", str(tmp_path / "x")]) == 2
    assert main(["predict", *common, "--sparsities", "0.1", "--dims", "8"]) == 2
    # by default `predict` builds what the headline reads (the JVP), not the Fisher tables; `all` builds all
    fresh = tmp_path / "p"
    assert main(["predict", *common, "--dims", "48", "--cache", str(fresh), "--json", "-"]) == 0
    only = json.loads(capsys.readouterr().out)["predictions"][0]
    assert (fresh / "jvp.pt").exists() and not (fresh / "fisher.pt").exists()
    assert "ppl_pred_ours" in only and "ppl_pred_paper" in only and "ppl_pred_fisher" not in only
    assert main(["predict", *common, "--dims", "48", "--cache", str(fresh), "--predictors", "all",
                 "--json", "-"]) == 0
    every = json.loads(capsys.readouterr().out)["predictions"][0]
    assert (fresh / "fisher.pt").exists() and "ppl_pred_fisher_semi" in every
    assert every["ppl_pred_ours"] == pytest.approx(only["ppl_pred_ours"], rel=1e-12)
    assert main(["predict", *common, "--dims", "48", "--predictors", "ours,nope"]) == 2
    bad_task = ["--sparsities", "0.1", "--tasks", "nonsense", "--out", str(tmp_path / "y")]
    assert main(["sweep", *common, *bad_task]) == 2
    assert "error:" in capsys.readouterr().err


def test_gradient_windows_are_held_out(tmp_path, lm) -> None:
    inp = sweep.load_inputs(cfg(), lm)
    assert inp.grad_heldout and inp.grad_ids.shape == inp.cal_ids.shape
    assert not any(torch.equal(g, c) for g in inp.grad_ids for c in inp.cal_ids)  # the PCA never saw them
    # the PCA's windows are those `slicedim slice --cal-samples` picks; in-sample gradients reuse them
    from slicedim_lab.load.corpus import load_windows

    assert torch.equal(inp.cal_ids, load_windows(lm.tokenizer, "python-docs", "calibration", 32, 2))
    same = sweep.load_inputs(cfg(grad_heldout=False), lm)
    assert torch.equal(same.grad_ids, same.cal_ids) and torch.equal(same.cal_ids, inp.cal_ids)
    # a calibration split with no window to spare: in-sample, said once in the log
    small = tmp_path / "small.txt"
    small.write_text("\n\n".join(f"Paragraph {i}: " + "words of text " * 12 for i in range(4)) + "\n")
    inp = sweep.load_inputs(cfg(corpus=str(small), cal_samples=64, tasks=[]), lm)
    assert not inp.grad_heldout and torch.equal(inp.grad_ids, inp.cal_ids)
    logs: list[str] = []
    run_sweep(cfg(corpus=str(small), cal_samples=64, tasks=[]), tmp_path / "s", dims=[48], lm=lm,
              progress=False, report=False, log=logs.append)
    assert any("in-sample" in m for m in logs)


def test_prediction_settings_keep_measured_rows(tmp_path, lm, monkeypatch) -> None:
    out = tmp_path / "sw"
    first = run_sweep(cfg(), out, dims=[64, 48], lm=lm, progress=False, report=False, log=lambda m: None)
    jvp_written = (out / "jvp.pt").stat().st_mtime_ns
    calls: list[int] = []
    orig = state.measure
    patch_measure(monkeypatch, lambda *a, **k: calls.append(1) or orig(*a, **k))
    logs: list[str] = []
    again = run_sweep(cfg(grad_heldout=False), out, dims=[64, 48], lm=lm, progress=False, report=False,
                      log=logs.append)
    assert calls == [] and any("predictions recomputed" in m for m in logs)
    assert [r["ppl_measured"] for r in again] == [r["ppl_measured"] for r in first]
    assert again[1]["ppl_pred_fisher"] != first[1]["ppl_pred_fisher"]  # other gradient windows
    assert FisherTables.load(out / "fisher.pt").settings["grad_heldout"] is False
    # only the statistic that reads the changed setting is made again (`Statistic.depends_on`)
    assert (out / "jvp.pt").stat().st_mtime_ns == jvp_written
    assert again[1]["ppl_pred_jvp_power"] == first[1]["ppl_pred_jvp_power"]


def test_the_dense_state_is_made_at_once_and_covers_measured_widths(tmp_path, lm) -> None:
    """The runner's dense state exists as soon as it does, answering at the widths it was opened for; a
    width measured later is added to the statistics that answer at named widths only."""
    logs: list[str] = []
    runner = sweep.SweepRunner.open(cfg(), tmp_path / "sw", lm=lm, widths=[40], progress=False,
                                    log=logs.append)
    assert runner.stats["fisher"].semi_dims == [40] and runner.dense.hidden == 64
    assert (tmp_path / "sw" / "dense.json").exists() and (tmp_path / "sw" / "fisher.pt").exists()
    assert "ppl_pred_fisher_semi" in predict_point(runner.dense, 40, runner.stats)
    row = runner.measure(32)
    assert runner.stats["fisher"].semi_dims == [32, 40] and any("recomputing the fisher" in m for m in logs)
    assert row["ppl_err_fisher_semi"] is not None and row["dim"] == 32
    again = sweep.SweepRunner.open(cfg(), tmp_path / "sw", lm=lm, progress=False, log=logs.append)
    assert again.stats["fisher"].semi_dims == [32, 40]  # read back, covering the measured width


def test_older_format_is_not_reused(tmp_path, lm) -> None:
    out = tmp_path / "sw"
    run_sweep(cfg(), out, dims=[64], lm=lm, progress=False, report=False, log=lambda m: None)
    meta = json.loads((out / "settings.json").read_text())
    del meta["format"]  # a folder written before windows were spread over the split
    (out / "settings.json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="older slicedim-lab"):
        run_sweep(cfg(), out, dims=[64], lm=lm, progress=False, report=False)


def test_error_summary_counts_every_sliced_point() -> None:
    from slicedim_lab.viz.tables import error_summary

    rows = [{"dim": 512, "sparsity": 0.1, "ppl_err_paper": 10.0},
            {"dim": 288, "sparsity": 0.5, "ppl_err_paper": -30.0}]
    (paper,) = error_summary(rows)  # no dense row in the sweep: both points count
    assert (paper["mean_abs_err"], paper["max_abs_err"], paper["points"]) == (20.0, 30.0, 2)
    dense = {"dim": 576, "sparsity": 0.0, "ppl_err_paper": 0.0}
    (paper,) = error_summary([dense, *rows])  # the dense row does not
    assert paper["points"] == 2 and paper["mean_abs_err"] == 20.0


def test_anchored_headline_and_measured_intervals(tmp_path, lm) -> None:
    """An anchor width is measured even if not asked for; the anchored headline equals the measured value
    there and is set at every other width in its own columns; measured points carry eval-window intervals."""
    out = tmp_path / "a"
    rows = run_sweep(cfg(anchor_dims=[48]), out, dims=[64, 56, 40], lm=lm, progress=False, report=False,
                     log=lambda m: None)
    by = {r["dim"]: r for r in rows}
    assert sorted(by) == [40, 48, 56, 64]
    head = schema.anchored(headline("interleaved"))
    assert by[48]["anchor"] and not by[40]["anchor"]
    assert by[48][schema.pred("ppl", head)] == pytest.approx(by[48]["ppl_measured"], rel=1e-9)
    assert by[40][schema.pred("ppl", head)] > 0 and schema.err(head) in by[56]
    lo, hi = by[40][schema.lo("ppl", head)], by[40][schema.hi("ppl", head)]
    assert lo < by[40][schema.pred("ppl", head)] < hi  # the anchored ours states its interval too
    for r in rows:
        assert r["ppl_lo_measured"] <= r["ppl_measured"] <= r["ppl_hi_measured"]
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {schema.pred("ppl", head), "anchor", "ppl_lo_measured"} <= set(header)
    # changing only the anchors keeps every measured row and the Fisher tables
    mtime = (out / "fisher.pt").stat().st_mtime_ns
    again = run_sweep(cfg(anchor_dims=[40]), out, dims=[64, 56, 40], lm=lm, progress=False, report=False,
                      log=lambda m: None)
    assert (out / "fisher.pt").stat().st_mtime_ns == mtime
    assert {r["dim"]: r["ppl_measured"] for r in again} == {d: r["ppl_measured"] for d, r in by.items()}
    assert {r["dim"]: r["anchor"] for r in again}[40]


def test_predict_with_anchor_measures_it(lm) -> None:
    res = sweep.predict_only(cfg(anchor_dims=[48]), dims=[56, 40], lm=lm, progress=False)
    head = schema.anchored(headline("interleaved"))
    assert [r["dim"] for r in res["predictions"]] == [56, 40]
    assert all(r[schema.pred("ppl", head)] > 0 for r in res["predictions"])
    with pytest.raises(UsageError, match="anchor widths must lie"):
        sweep.predict_only(cfg(anchor_dims=[64]), dims=[56], lm=lm, progress=False)


def test_predict_only_the_chosen_predictors_builds_only_their_statistics(lm, tmp_path) -> None:
    """`--predictors ours`: the JVP alone is made (no Fisher tables); the headline's numbers are those of a
    full prediction."""
    full = sweep.predict_only(cfg(), dims=[56, 40], lm=lm, progress=False)
    res = sweep.predict_only(cfg(), dims=[56, 40], lm=lm, progress=False, cache=tmp_path / "c",
                             predictors=["ours"])
    assert (tmp_path / "c" / "jvp.pt").exists() and not (tmp_path / "c" / "fisher.pt").exists()
    names = schema.predictors_in(res["predictions"][0])
    assert "ours" in names and "fisher" not in names
    for a, b in zip(res["predictions"], full["predictions"]):
        assert a["ppl_pred_ours"] == pytest.approx(b["ppl_pred_ours"], rel=1e-12)


@pytest.mark.parametrize("arch", ["phi", "gpt2"])
def test_sweep_and_predict_follow_the_site_list(tmp_path, smol_tok, arch) -> None:
    """Parallel (Phi-2: L+1 sites) and LayerNorm (GPT-2) families sweep and predict like the Llama ones."""
    model = tiny_model(arch, seed=0, vocab_size=len(smol_tok))
    lm = LoadedModel(model, smol_tok, f"tiny-{arch}", torch.device("cpu"))
    rows = run_sweep(cfg(model=f"tiny-{arch}"), tmp_path / arch, dims=[64, 32], lm=lm, progress=False,
                     report=False, log=lambda m: None)
    r32 = {r["dim"]: r for r in rows}[32]
    assert r32["ppl_measured"] > 0 and r32["ppl_pred_ours"] > 0 and r32["ppl_pred_fisher"] > 0
    res = sweep.predict_only(cfg(model=f"tiny-{arch}"), dims=[48], lm=lm, progress=False)
    assert res["n_sites"] == len(model_sites(model)) and res["predictions"][0]["ppl_pred_ours"] > 0
