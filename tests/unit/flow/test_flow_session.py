"""Activation-flow metrics: limits at d' = D, monotonicity in d', exact reconstructions, reconciliation with
the sliced model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_fixtures import tiny64, token_ids

from slicedim_lab.core.emulate import emulated_logits
from slicedim_lab.core.sites import lens_sites, n_sites
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import site_dims
from slicedim_lab.errors import UsageError
from slicedim_lab.eval.metrics import evaluate
from slicedim_lab.flow.attribution import gauss_legendre, prediction_decomposition
from slicedim_lab.flow.maps import map_weight
from slicedim_lab.flow.session import FlowSession
from slicedim_lab.flow.tables import COLUMNS, spectrum_table
from slicedim_lab.flow.text import format_layers

L, D = 3, 64
S = n_sites(L)
CAL, EVAL = token_ids(8, 32, seed=3), token_ids(4, 20, seed=4)


@pytest.fixture(scope="module")
def session() -> FlowSession:
    return FlowSession(tiny64("llama", tied=True), CAL, EVAL, batch_size=2, lens="all")


def metric(table: pd.DataFrame, name: str, maps: bool = False) -> pd.Series:
    t = table[(table["metric"] == name) & ((table["map"] != "") if maps else (table["map"] == ""))]
    return t.set_index(["site", "map"] if maps else "site")["value"]


@pytest.mark.parametrize("basis", ["dense", "interleaved"])
def test_full_width_is_the_dense_model(session: FlowSession, basis: str):
    r = session.report(D, basis, attribution=1, svd=True)
    t = r.table
    assert list(t.columns) == COLUMNS
    assert (metric(t, "rel_error") == 0).all()
    assert np.allclose(metric(t, "cosine"), 1, atol=1e-12)
    for m in ("retained_cal", "retained_eval", "retained_eval_dense"):
        assert (metric(t, m) == 1).all(), m
    assert (metric(t, "lens_kl").abs() < 1e-9).all()
    assert np.allclose(metric(t, "lens_loss_dense"), metric(t, "lens_loss_sliced"), atol=1e-9)
    assert r.summary["nll_sliced"] == pytest.approx(r.summary["nll_dense"], abs=1e-12)
    assert abs(r.summary["kl"]) < 1e-9
    assert (metric(t, "act_kept", maps=True) == 1).all() and (metric(t, "act_dropped", maps=True) == 0).all()
    assert np.allclose(metric(t, "weight_kept", maps=True), 1)
    assert np.allclose(metric(t, "sigma1_ratio", maps=True), 1)
    for name in ("attr_loss_integrated", "attr_logit_first", "attr_loss_direct"):
        assert (metric(t, name) == 0).all()
    assert r.summary["attr_loss_change"] == 0


def test_retained_energies_monotone_in_dim(session: FlowSession):
    dims = [8, 16, 24, 40, 56, 64]
    reps = [session.report(d, "dense", attribution=None, maps=True) for d in dims]
    for m in ("retained_cal", "retained_eval_dense"):
        vals = np.stack([metric(r.table, m).to_numpy() for r in reps])  # [dims, sites]
        assert (np.diff(vals, axis=0) >= -1e-12).all(), m
        assert (vals <= 1 + 1e-12).all() and (vals[-1] == 1).all()
    kept = np.stack([metric(r.table, "act_kept", maps=True).to_numpy() for r in reps])
    writers = [r.table[(r.table["role"] == "writer") & (r.table["metric"] == "act_kept")]["value"]
               for r in reps]
    assert (np.diff(np.stack(writers), axis=0) >= -1e-12).all()  # nested subspaces keep more of any output
    assert (kept >= -1e-12).all() and (kept <= 1 + 1e-12).all()
    # errors shrink towards full width (not necessarily monotone, but 0 at D and positive below)
    rel = np.stack([metric(r.table, "rel_error").to_numpy() for r in reps])
    assert (rel[:-1].max(axis=1) > 0).all() and (rel[-1] == 0).all()


def test_calibration_retained_energy_matches_spectrum(session: FlowSession):
    spec = spectrum_table(session.pcas)
    assert len(spec) == S * D
    last = spec.groupby("site")["retained"].last()
    assert np.allclose(last, 1, atol=1e-12)
    r = session.report(24, "dense", attribution=None, maps=False)
    at24 = spec[spec["index"] == 24].set_index("site")["retained"]
    cal = metric(r.table, "retained_cal")
    assert np.allclose(cal[:-1], at24[:-1], atol=1e-12) and cal.iloc[-1] == 1  # the head's site stays full


def test_interleaved_report_reconciles_with_the_sliced_model(session: FlowSession):
    r = session.report(40, "interleaved", attribution=None, maps=False)
    res = slice_model(session.model, CAL, site_dims(L, D, dim=40), batch_size=2, progress=False)
    ev = evaluate(res.model, EVAL, batch_size=2, progress=False)
    assert r.summary["nll_sliced"] == pytest.approx(ev.nll, rel=1e-6)
    assert r.summary["accuracy_sliced"] == pytest.approx(ev.accuracy)
    # KL at the last site == KL of the final next-token distributions, computed directly
    with torch.no_grad():
        ld = session.model(EVAL).logits[:, :-1].log_softmax(-1)
        ls = res.model(EVAL).logits[:, :-1].log_softmax(-1)
    kl = float((ld.exp() * (ld - ls)).sum(-1).mean())
    assert r.summary["kl"] == pytest.approx(kl, rel=1e-5)
    assert metric(r.table, "lens_kl").iloc[-1] == pytest.approx(kl, rel=1e-5)


@pytest.mark.parametrize("basis", ["dense", "interleaved"])
def test_prediction_decomposition_reconstructs_the_sliced_prediction(session: FlowSession, basis: str):
    r = session.report(24, basis, attribution=4, maps=False)
    sm = r.summary
    res_bases, _ = session.bases(24, basis)
    # the sliced mean correct-token logit and loss, straight from the emulated bridge run
    logits = emulated_logits(session.bridge, EVAL, res_bases)[:, :-1]
    tgt = EVAL[:, 1:]
    z_logit = float(logits.gather(-1, tgt[..., None]).mean())
    z_loss = float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten()))
    assert sm["attr_logit_sliced"] == pytest.approx(z_logit, rel=1e-9)
    assert sm["attr_loss_sliced"] == pytest.approx(z_loss, rel=1e-9)
    for z in ("logit", "loss"):
        for k in ("first", "integrated", "direct"):
            per_site = metric(r.table, f"attr_{z}_{k}")
            assert len(per_site) == S
            total = sm[f"attr_{z}_dense"] + per_site.sum() + sm[f"attr_{z}_{k}_remainder"]
            assert total == pytest.approx(sm[f"attr_{z}_sliced"], abs=1e-12)
        # the integrated path attribution leaves a small remainder; the linearisation does not
        change = abs(sm[f"attr_{z}_change"])
        assert abs(sm[f"attr_{z}_integrated_remainder"]) < 0.05 * change
        assert abs(sm[f"attr_{z}_integrated_remainder"]) < abs(sm[f"attr_{z}_first_remainder"])


def test_standalone_decomposition_matches_session(session: FlowSession):
    bases, _ = session.bases(24, "dense")
    rows, sm = prediction_decomposition(session.bridge, EVAL, bases, steps=2, batch_size=2)
    r = session.report(24, "dense", attribution=2, maps=False)
    a = metric(rows, "attr_loss_integrated").to_numpy()
    b = metric(r.table, "attr_loss_integrated").to_numpy()
    assert np.allclose(a, b, rtol=1e-9, atol=1e-12)
    expected = r.summary["attr_loss_integrated_remainder"]
    assert sm["loss_integrated_remainder"] == pytest.approx(expected, abs=1e-12)


def test_linear_maps_and_singular_values(session: FlowSession):
    r = session.report(24, "dense", attribution=None, svd=True)
    maps = r.table[r.table["map"] != ""]
    n_maps = 1 + L * (3 + 1 + 2 + 1) + 1  # embed, q/k/v, o, gate/up, down per layer, lm_head
    assert maps.groupby(["site", "map"]).ngroups == n_maps
    w = maps[maps["role"] == "writer"].pivot_table(index=["site", "map"], columns="metric", values="value")
    assert np.allclose(w["act_kept"] + w["act_dropped"], 1)
    sv = r.singular
    assert (sv["sigma_sliced"] <= sv["sigma_full"] * (1 + 1e-9) + 1e-12).all()  # interlacing
    wk = metric(r.table, "weight_kept", maps=True)
    assert ((wk > 0) & (wk <= 1)).all()
    # singular values from the Gram route equal an SVD of the sliced map
    m = next(m for m in session.maps if m["map"] == "mlp.down_proj" and m["site"] == 4)
    B = session.bases(24, "dense")[0][4]
    direct = torch.linalg.svdvals(B.T @ map_weight(m))
    got = sv[(sv["site"] == 4) & (sv["map"] == "mlp.down_proj")]["sigma_sliced"].to_numpy()[:24]
    assert np.allclose(got, direct.numpy(), rtol=1e-6, atol=1e-9 * float(direct[0]))


def test_per_layer_table_and_text(session: FlowSession):
    r = session.report(40, "dense", attribution=1)
    layers = r.per_layer()
    assert list(layers["layer"]) == [-1, 0, 1, 2]
    attr = metric(r.table, "attr_loss_integrated")
    assert layers["attr_loss_integrated"].sum() == pytest.approx(attr.sum())
    text = format_layers(layers)
    assert text.splitlines()[1].lstrip().startswith("embed") and len(text.splitlines()) == L + 2


def test_compare_bases(session: FlowSession):
    c = session.compare(24)
    assert list(c["basis"]) == ["none (dense model)", "dense", "interleaved"]
    inter = c.set_index("basis").loc["interleaved"]
    assert inter["d_nll_vs_interleaved"] == 0 and inter["kl"] > 0
    dense = c.set_index("basis").loc["dense"]
    assert dense["ppl_ratio_vs_interleaved"] == pytest.approx(math.exp(dense["nll"] - inter["nll"]))


def test_lens_sites_and_validation(session: FlowSession):
    assert lens_sites(3, "post") == [0, 2, 4, 6]
    assert lens_sites(3, "none") == [] and lens_sites(3, "all") == list(range(7))
    assert lens_sites(30, 10) == [0, 20, 40, 60] and lens_sites(30, "10") == [0, 20, 40, 60]
    for bad in ("every", 0, [99]):
        with pytest.raises(UsageError):
            lens_sites(3, bad)
    with pytest.raises(UsageError):
        session.report(0)
    with pytest.raises(UsageError):
        session.report(D + 1)
    with pytest.raises(UsageError):
        session.report(8, "pca")
    with pytest.raises(UsageError):
        session.spectrum("interleaved")


def test_gauss_legendre_integrates_cubics():
    nodes = gauss_legendre(2)
    assert sum(w for _, w in nodes) == pytest.approx(1)
    assert sum(w * a**3 for a, w in nodes) == pytest.approx(0.25)
