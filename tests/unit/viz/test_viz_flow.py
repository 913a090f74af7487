"""Flow, map, spectrum and theory figures from hand-made tidy tables: series along depth, the layer band
read from the table's `layer` column, the maps' kept/dropped bars, the paper's law with a free slope."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from slicedim_lab.core.sites import layer_sites, sequential_sites
from slicedim_lab.predict.law import implied_kappa, kappa_ppl
from slicedim_lab.viz import flow as vf
from slicedim_lab.viz import spectra, style
from slicedim_lab.viz.theory import paper_law_figure

L = 2
SITE_METRICS = ("retained_cal", "retained_eval_dense", "retained_eval", "rel_error", "cosine", "lens_kl",
                "lens_loss_dense", "lens_loss_sliced", "attr_loss_integrated", "attr_loss_first")


@pytest.fixture
def table() -> pd.DataFrame:
    """A flow table of a 2-layer model at d' = 24: site rows (value = metric index + site/10), map rows."""
    rows = [{**s.row(), "basis": "dense", "dim": 24, "map": "", "role": "", "metric": m,
             "value": k + s.index / 10} for s in sequential_sites(L) for k, m in enumerate(SITE_METRICS)]
    for s, layer, role in ((1, 0, "writer"), (0, 0, "reader"), (3, 1, "writer")):
        for metric, v in (("act_kept", 0.9), ("act_dropped", 0.1)):
            rows.append({**sequential_sites(L)[s].row(), "basis": "dense", "dim": 24, "map": f"m{s}",
                         "role": role, "metric": metric, "value": v, "map_layer": layer,
                         "label": f"m{s}<br>({role})"})
    return pd.DataFrame(rows)


def test_site_series_and_band(table) -> None:
    x, y = vf.site_series(table, "cosine")
    assert x == [0, 1, 2, 3, 4] and y == pytest.approx([4 + s / 10 for s in x])
    (band,) = vf.layer_band(table, 1)
    own = layer_sites(L)[1].own
    assert (band["x0"], band["x1"]) == (own[0] - 0.5, own[1] + 0.5)
    assert vf.layer_band(table, 7) == []


def test_depth_figures(table) -> None:
    energy = vf.energy_figure(table, 24, layer=0)
    assert [t.name for t in energy.data] == ["calibration PCA", "eval, dense activations",
                                             "eval, sliced activations"]
    assert list(energy.data[0].y) == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6])  # 1 − retained_cal
    assert len(energy.layout.shapes) == 1
    err = vf.error_figure(table, 24)
    assert [t.yaxis for t in err.data] == ["y", "y2"] and not err.layout.shapes
    lens = vf.lens_figure(table, 24, layer=1)
    assert [t.line.dash for t in lens.data] == [None, "dot", "dot"]
    # the lens loss spans less than a decade: a linear right axis from 0 (a log one showed a single tick)
    assert lens.layout.yaxis2.type != "log" and lens.layout.yaxis2.rangemode == "tozero"


def test_attribution_title_asks_until_computed(table) -> None:
    assert "tick the box" in vf.attribution_figure(table, 24).layout.title.text
    sm = {"attr_loss_change": 0.5, "attr_loss_integrated_sum": 0.45, "attr_loss_integrated_remainder": 0.05}
    title = vf.attribution_figure(table, 24, sm).layout.title.text
    assert "Δloss 0.5000" in title and "remainder 0.0500" in title


def test_map_figures(table) -> None:
    maps = table[table["map"] != ""]
    bars = vf.map_bars_figure(maps, 0, 24, {("m1", "writer"): 0.7})
    kept, dropped, weight = bars.data
    assert list(kept.x) == ["m1<br>(writer)", "m0<br>(reader)"] and list(kept.y) == [0.9, 0.9]
    assert list(weight.y) == [0.7, None]
    depth = vf.map_depth_figure(maps, 24, layer=1, layers=(0, L))
    assert sorted(t.name for t in depth.data) == ["m0", "m1", "m3"] and depth.layout.shapes[0].x0 == 1


def test_spectrum_figures() -> None:
    share = [0.5, 0.25, 0.125, 0.125, 0.0]
    fig = spectra.spectrum_figure(share, 2)
    kept, dropped = fig.data
    assert list(kept.x) == [1, 2] and list(dropped.x) == [2, 3, 4, 5] and list(dropped.y)[-1] is None
    lost = spectra.discarded_figure([1, 2, 3], [0.1, 0.2, 0.0], selected=2)
    assert list(lost.data[1].x) == [2] and list(lost.data[0].y) == [0.1, 0.2, None]
    spec = pd.DataFrame([{"site": s, "layer": lay, "kind": k, "index": i, "share": 1 / i}
                         for s, lay, k in ((1, 0, "attn"), (2, 0, "mlp"), (3, 1, "attn")) for i in (1, 2, 3)])
    lay = spectra.layer_spectra_figure(spec, 0, 2)
    assert [t.name for t in lay.data] == ["attn site", "mlp site"] and lay.layout.shapes[0].x0 == 2.5


def test_paper_law_figure_and_implied_kappa() -> None:
    ppl0, D = 10.0, 64
    fig = paper_law_figure(ppl0, D, {32: 40.0}, kappas=(1.0, 1.5))
    paper, steep, meas = fig.data
    assert paper.line.color == style.predictor_color("paper") and meas.name == "measured"
    i = list(paper.x).index(32)
    assert paper.y[i] == pytest.approx(ppl0 ** 2)  # κ = 1, s = ½: ln PPL = 2 ln PPL₀
    assert steep.y[0] is None and steep.y[-1] == pytest.approx(ppl0)  # 1 − κs < 0.2 at d' = 16: diverged
    assert steep.line.dash == "dot"
    k = implied_kappa(ppl0, 40.0, D, 32)
    assert kappa_ppl(ppl0, D, 32, k) == pytest.approx(40.0)
    assert math.isnan(implied_kappa(ppl0, 40.0, D, D))
