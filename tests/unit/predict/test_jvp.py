"""predict/jvp.py: the JVP is the derivative of the dense replay along the increments; the closed form,
its interval and the anchored interval behave as documented."""

from __future__ import annotations

import math

import pytest
import torch

from slicedim_lab.core.replay import run_sites
from slicedim_lab.predict import predict_point
from slicedim_lab.predict.anchor import Anchor
from slicedim_lab.predict.increments import increment, semi_bases
from slicedim_lab.predict.jvp import JVP_SETTINGS, JvpTables, interval, jvp_tables, linearised_logits
from slicedim_lab.predict.moments import dense_moments
from slicedim_lab.predict.registry import DenseMetrics
from slicedim_lab.testing import tiny_model

G = torch.Generator().manual_seed(0)
CAL = torch.randint(0, 256, (3, 16), generator=G)
EV = torch.randint(0, 256, (2, 16), generator=G)


def _jvp(model, bases) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: forward-mode AD of the dense replay with every increment (of the dense residuals)
    added to the tangent at its site."""
    import torch.autograd.forward_ad as fwAD

    charged, prev = len(bases), {}

    def inject(s: int, x: torch.Tensor) -> torch.Tensor:
        p, t = fwAD.unpack_dual(x)
        if s >= charged:
            return x
        d = increment(p, prev.get(s - 1), bases[s], bases[s - 1] if s else None)
        prev[s] = p
        return fwAD.make_dual(p, d if t is None else t + d)

    model.set_attn_implementation("eager")  # SDPA has no forward-mode derivative on CPU
    try:
        with torch.no_grad(), fwAD.dual_level():
            _, logits = run_sites(model, EV, project=inject)
            z, dz = (t.clone() for t in fwAD.unpack_dual(logits))
    finally:
        model.set_attn_implementation("sdpa")
    return z, dz


def test_linearisation_is_the_jvp_along_the_increments() -> None:
    model = tiny_model("llama", seed=1, dtype=torch.float64)
    dm = dense_moments(model, CAL, progress=False)
    bases = semi_bases(dm.second, dm.cross, 40, len(dm.second) - 1)
    z_ref, dz_ref = _jvp(model, bases)
    z, dz = linearised_logits(model, EV, bases)
    with torch.no_grad():
        torch.testing.assert_close(z, model(input_ids=EV).logits)
    torch.testing.assert_close(z, z_ref)
    rel = [((linearised_logits(model, EV, bases, e)[1] - dz_ref).abs().max() / dz_ref.abs().max()).item()
           for e in (JVP_SETTINGS["fd_eps"], 3 * JVP_SETTINGS["fd_eps"])]
    # the central difference converges to the JVP quadratically in eps (1/9 for a third of the step; HF
    # norms compute in float32, which limits how small eps can go)
    assert ((dz - dz_ref).abs().max() / dz_ref.abs().max()).item() == pytest.approx(rel[0])
    assert rel[0] < 0.2 * rel[1] and rel[0] < 1e-3, rel


def test_closed_form_and_intervals() -> None:
    t = JvpTables(hidden=576, anchor_dim=512, window_dl=[0.1, 0.2, 0.15, 0.15], settings=dict(JVP_SETTINGS))
    beta = JVP_SETTINGS["beta"]
    assert t.dloss_anchor == pytest.approx(0.15) and t.dloss(576) == 0.0 and t.rel_sigma(576) == 0.0
    assert t.dloss(400) == pytest.approx(0.15 * ((1 - 400 / 576) / (1 / 9)) ** beta)
    assert 0 < t.rel_se() < 0.3
    dense = DenseMetrics(ppl=13.5, acc=0.47, hidden=576, mc_acc=0.9, mc_chance=0.25)
    row = predict_point(dense, 400, {"jvp": t})
    ppl, lo, hi = row["ppl_pred_jvp_power"], row["ppl_lo_jvp_power"], row["ppl_hi_jvp_power"]
    assert ppl == pytest.approx(13.5 * math.exp(t.dloss(400))) and 13.5 < lo < ppl < hi
    # multiplicative in ΔL: ln(ΔL_hi/ΔL) = ln(ΔL/ΔL_lo) = z·σ, σ = √(σ_J² + σ_A² + (ln(s/s_J) σ_β)²)
    dl_lo, dl, dl_hi = (math.log(v / 13.5) for v in (lo, ppl, hi))
    sigma = math.sqrt(t.rel_se() ** 2 + JVP_SETTINGS["sigma_anchor"] ** 2
                      + (math.log((1 - 400 / 576) * 9) * JVP_SETTINGS["sigma_beta"]) ** 2)
    assert math.log(dl_hi / dl) == pytest.approx(1.6449 * sigma, rel=1e-3)
    assert math.log(dl / dl_lo) == pytest.approx(1.6449 * sigma, rel=1e-3)
    assert "ppl_pred_fisher" not in row  # no Fisher tables given
    # a ΔL_J indistinguishable from zero (a random tiny model) has a huge relative error: finite bounds
    lo, hi = interval(49152.0, 5e-4, 14.7)
    assert 49152.0 <= lo < hi < math.inf
    assert interval(10.0, -0.2, 0.5)[1] < 10.0  # a negative ΔL stays below the dense perplexity
    # the anchored interval grows with the distance (in log s) from the nearest anchor, zero at it
    one = [Anchor(400, 0.6, t.dloss(400))]
    assert t.anchored_rel_sigma(400, one) == 0.0
    assert 0 < t.anchored_rel_sigma(344, one) < t.anchored_rel_sigma(288, one)


def test_tables_from_the_dense_model_only() -> None:
    model = tiny_model("qwen2", seed=2, dtype=torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dm = dense_moments(model, CAL, progress=False)
    t = jvp_tables(model, EV, dm, progress=False)
    assert t.anchor_dim == 56 and len(t.window_dl) == EV.shape[0]  # d' = 56 of 64 at s = 1/9
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.config._attn_implementation == "eager"  # restored after the forward-mode pass


def test_tables_saved_before_v2_load_with_the_current_interval(tmp_path) -> None:
    """A sweep folder's jvp.pt (ours.pt then) from before v2 (σ_β 0.10, no σ_A / σ_p) gets the current
    model errors."""
    old = {k: v for k, v in JVP_SETTINGS.items() if k not in ("sigma_anchor", "sigma_point")}
    t = JvpTables(hidden=576, anchor_dim=512, window_dl=[0.1, 0.2], settings={**old, "sigma_beta": 0.10})
    t.save(tmp_path / "jvp.pt")
    back = JvpTables.load(tmp_path / "jvp.pt")
    assert back.settings["sigma_beta"] == JVP_SETTINGS["sigma_beta"] and back.window_dl == [0.1, 0.2]
    assert back.rel_sigma(400) > JVP_SETTINGS["sigma_anchor"]

