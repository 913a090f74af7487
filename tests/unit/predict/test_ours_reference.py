"""The package's `ours` against its frozen definition (`tests/reference/ours_v1.py`, v1 as frozen before the
held-out corpora were run): the same first-order anchor ΔL_J (the package linearises by a central
difference, v1 by forward-mode AD), the same closed form at every width, the same one-anchor correction; and
the one documented change, v2's interval, is wider than v1's everywhere below the anchor width."""

from __future__ import annotations

import math

import pytest
import torch
from reference import ours_v1

from slicedim_lab.predict import Anchoring, predict_point
from slicedim_lab.predict.anchor import Anchor
from slicedim_lab.predict.jvp import JVP_SETTINGS, JvpTables, anchor_dim, jvp_tables
from slicedim_lab.predict.moments import dense_moments
from slicedim_lab.predict.registry import DenseMetrics
from slicedim_lab.testing import tiny_model

G = torch.Generator().manual_seed(5)
CAL = torch.randint(3, 256, (8, 24), generator=G)  # 184 predicted tokens > D = 64: full-rank moments
EV = torch.randint(3, 256, (4, 24), generator=G)
DIMS = [60, 56, 48, 40, 32]


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=4, dtype=torch.float64)


def test_the_anchor_is_v1s(model) -> None:
    D = model.config.hidden_size
    v1 = ours_v1.ours_anchor(model, CAL, EV, {"anchor_dim": anchor_dim(D, JVP_SETTINGS["anchor_sparsity"])})
    now = jvp_tables(model, EV, dense_moments(model, CAL, progress=False), progress=False)
    assert now.anchor_dim == v1["settings"]["anchor_dim"] == 56  # s_J = 1/9 of D = 64, as 512 of 576
    assert len(now.window_dl) == len(v1["window_dl"]) == EV.shape[0]
    # the central difference is the forward-mode derivative to O(ε²): per window within 1e-3 relative
    torch.testing.assert_close(torch.tensor(now.window_dl), torch.tensor(v1["window_dl"]), rtol=1e-3, atol=0)


def test_closed_form_anchored_mode_and_interval() -> None:
    v1 = {"hidden": 64, "window_dl": [0.11, 0.16, 0.14, 0.13],
          "settings": {**ours_v1.OURS_V1, "anchor_dim": 56}}
    t = JvpTables(hidden=64, anchor_dim=56, window_dl=list(v1["window_dl"]), settings=dict(JVP_SETTINGS))
    dense = DenseMetrics(ppl=30.0, acc=0.3, hidden=64)
    for ref in ours_v1.predict(v1, dense.ppl, DIMS + [64]):
        row = predict_point(dense, ref["dim"], {"jvp": t})
        assert row["ppl_pred_jvp_power"] == pytest.approx(ref["ppl"], rel=1e-12)
        assert row["dloss_pred_jvp_power"] == pytest.approx(ref["dloss"], rel=1e-12, abs=1e-15)
        if ref["dim"] < 56:  # v2's interval adds the anchor's model error: wider than v1's
            assert row["ppl_lo_jvp_power"] < ref["ppl_lo"] and row["ppl_hi_jvp_power"] > ref["ppl_hi"]
    # one measured anchor: v1 rescales ΔL by the measured one along (s/s_m)^β; so does the package's rule
    measured_dl = 0.5
    anchored = Anchoring("jvp_power", (40,), (Anchor(40, measured_dl, t.dloss(40)),))
    for ref in ours_v1.predict_anchored(40, measured_dl, 64, dense.ppl, DIMS):
        row = predict_point(dense, ref["dim"], {"jvp": t}, anchoring=anchored)
        assert row["ppl_pred_jvp_power_anchored"] == pytest.approx(ref["ppl"], rel=1e-12)
    at_anchor = predict_point(dense, 40, {"jvp": t}, anchoring=anchored)
    assert math.isclose(at_anchor["ppl_pred_jvp_power_anchored"],
                        dense.ppl * math.exp(measured_dl), rel_tol=1e-12)
