"""predict/ours.py (v3): the headline is its base predictor's loss increase, scaled and tilted, with a band in
ΔL that closes at full width; the anchored band is zero at an anchor and grows away from it."""

from __future__ import annotations

import math

import pytest

from slicedim_lab.eval.uncertainty import Z
from slicedim_lab.predict import ours
from slicedim_lab.predict import registry as R
from slicedim_lab.predict.anchor import Anchor
from slicedim_lab.predict.jvp import JVP_SETTINGS, JvpTables
from slicedim_lab.predict.paper import paper_ppl
from slicedim_lab.predict.rows import predict_point

DENSE = R.DenseMetrics(ppl=13.5, acc=0.47, hidden=576, mc_acc=0.9, mc_chance=0.25)


@pytest.fixture
def on_paper(monkeypatch):
    """`ours` over the paper's law (no statistic needed) with known constants."""
    monkeypatch.setitem(ours.OURS, "base", "paper")
    for k, v in {"mu": -1.2, "gamma": 0.4, "resid_mean": 0.1, "resid_sd": 0.2, "sigma_beta": 0.3}.items():
        monkeypatch.setitem(ours.OURS, k, v)
    return ours.OURS


def test_the_headline_is_its_base_scaled_and_tilted(on_paper) -> None:
    for d in (512, 400, 288):
        s = 1 - d / 576
        b = math.log(paper_ppl(13.5, 576, d) / 13.5)
        pr = R.get_predictor("ours").fn(DENSE, d, None)
        assert pr.dloss == pytest.approx(b * math.exp(-1.2) * (s / 0.3) ** 0.4, rel=1e-12)
        assert pr.ppl == pytest.approx(13.5 * math.exp(pr.dloss), rel=1e-12)
        # the band: ΔL·e^{m ± zσ}, both bounds above the dense perplexity
        lo, hi = pr.ppl_lo, pr.ppl_hi
        assert math.log(lo / 13.5) == pytest.approx(pr.dloss * math.exp(0.1 - Z * 0.2), rel=1e-12)
        assert math.log(hi / 13.5) == pytest.approx(pr.dloss * math.exp(0.1 + Z * 0.2), rel=1e-12)
        assert 13.5 < lo < hi
    full = R.get_predictor("ours").fn(DENSE, 576, None)
    assert full.ppl == full.ppl_lo == full.ppl_hi == 13.5
    with pytest.raises(Exception, match="wider than the model"):
        R.get_predictor("ours").fn(DENSE, 600, None)


def test_anchored_band_zero_at_the_anchor(on_paper) -> None:
    one = [Anchor(400, 0.6, 0.5)]
    f = R.get_predictor("ours").anchored_interval
    lo, hi = f(None, DENSE, 400, one, 13.5 * math.exp(0.6))
    assert lo == pytest.approx(hi) == pytest.approx(13.5 * math.exp(0.6))
    widths = [math.log(b / a) for a, b in (f(None, DENSE, d, one, 13.5 * math.exp(0.7)) for d in (344, 288))]
    assert 0 < widths[0] < widths[1]


def test_registered_as_the_interleaved_headline_over_its_base() -> None:
    p = R.get_predictor("ours")
    assert R.headline("interleaved") == "ours" and p.interval and p.shown
    assert p.needs == R.get_predictor(ours.OURS["base"]).needs



def test_the_frozen_headline_over_the_jvp() -> None:
    """As frozen: the JVP power law's ΔL times e^μ (s/0.3)^γ, in a row beside `jvp_power` itself."""
    t = JvpTables(hidden=576, anchor_dim=512, window_dl=[0.1, 0.2, 0.15, 0.15], settings=dict(JVP_SETTINGS))
    assert ours.OURS["base"] == "jvp_power"
    for d in (512, 400, 288):
        row = predict_point(DENSE, d, {"jvp": t})
        tilt = math.exp(ours.OURS["mu"]) * ((1 - d / 576) / 0.3) ** ours.OURS["gamma"]
        assert row["dloss_pred_ours"] == pytest.approx(row["dloss_pred_jvp_power"] * tilt, rel=1e-12)
        assert row["ppl_lo_ours"] < row["ppl_pred_ours"] < row["ppl_hi_ours"]
