"""The predictor figures from hand-made tables: which traces, in which order, with which data, colours and
visibility; error clipping; the per-site charge."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from slicedim_lab import schema
from slicedim_lab.predict import curve_dims, curves, registry
from slicedim_lab.predict.registry import predictor_names, shown_names
from slicedim_lab.viz import figures, report, style
from slicedim_lab.viz.tables import curve_table, measured_table, site_table


def default_curves(dense, tables, min_dim: int, measured=()) -> pd.DataFrame:
    """The curve table the report and the widgets draw (`predict.curves` over the Fisher tables)."""
    return curve_table(curves(dense, {"fisher": tables}, min_dim, measured=measured))


def by_name(fig) -> dict:
    return {t.name: t for t in fig.data}


def test_curve_dims_include_full_width_and_extras() -> None:
    assert curve_dims(64, 40, 8, extra=[33, 100, 0]) == [33, 40, 48, 56, 64]


def test_curves_hold_nan_where_a_predictor_is_unknown(dense, tables, width) -> None:
    curves = default_curves(dense, tables, 16)
    semi = curves.set_index("dim")[schema.pred("ppl", "fisher_semi")]
    assert semi.dropna().index.tolist() == [32, 48, width]  # the tables' semi widths and the full width
    assert curves[schema.pred("ppl", "fisher")].notna().all()


def test_prediction_figure_traces(dense, tables, rows, width) -> None:
    curves = default_curves(dense, tables, 16, measured=[r["dim"] for r in rows])
    fig = figures.prediction_figure(curves, "ppl", measured_table(rows))
    names = [t.name for t in fig.data]
    # registry order (the predictors these tables answer for), then measured
    preds = [style.predicted_name(p) for p in predictor_names() if schema.pred("ppl", p) in curves]
    assert names == [*preds, "measured", style.estimate_name("cal_ratio")]
    t = by_name(fig)
    full, semi = t[style.predicted_name("fisher")], t[style.predicted_name("fisher_semi")]
    assert full.mode == "lines" and list(full.x) == curves["dim"].tolist()
    assert semi.mode == "markers+lines" and semi.line.dash == "dash" and list(semi.x) == [32, 48, width]
    for p in predictor_names():
        if schema.pred("ppl", p) not in curves:
            continue
        tr = t[style.predicted_name(p)]
        assert tr.line.color == style.predictor_color(p)
        assert tr.visible == (True if p in shown_names() else "legendonly")
    meas = t["measured"]
    assert list(meas.x) == [32, 48] and list(meas.y) == [25.0, 14.0]
    assert meas.marker.color == style.MEASURED_COLOR
    assert fig.layout.yaxis.type == "log"


def test_log_axis_spans_measured_points_and_headline_predictors(dense, tables, rows) -> None:
    curves = default_curves(dense, tables, 16, measured=[32, 48])
    fig = figures.prediction_figure(curves, "ppl", measured_table(rows))
    lo, hi = (10 ** v for v in fig.layout.yaxis.range)
    heads = [*curves[schema.pred("ppl", "fisher")], *curves[schema.pred("ppl", "fisher_semi")].dropna()]
    assert lo <= min(min(heads), 14.0) and hi >= max(max(heads), 25.0)
    assert curves[schema.pred("ppl", "paper")].max() > hi  # the paper's law may leave the axis


def test_slider_marker_shows_shown_predictors_at_one_width(dense, tables) -> None:
    curves = default_curves(dense, tables, 16)
    at = {"dim": 40, **curves.set_index("dim").loc[40].dropna().to_dict()}
    fig = figures.prediction_figure(curves, "acc", None, at=at)
    here = fig.data[-1]
    shown = [p for p in predictor_names() if p in shown_names() and schema.pred("acc", p) in at]
    assert here.name == "at the slider" and list(here.x) == [40] * len(shown)
    assert list(here.y) == [at[schema.pred("acc", p)] for p in shown]
    assert list(here.marker.color) == [style.predictor_color(p) for p in shown]
    (line,) = fig.layout.shapes
    assert line.x0 == line.x1 == 40 and fig.layout.yaxis.type != "log"


def test_predictor_known_only_at_full_width_is_not_drawn() -> None:
    curves = pd.DataFrame({"dim": [32, 64], schema.pred("ppl", "paper"): [20.0, 10.0],
                           schema.pred("ppl", "fisher_semi"): [math.nan, 10.0]})
    assert figures.curve_predictors(curves) == ["paper"]


def test_error_bars_are_clipped_but_labelled_with_the_value() -> None:
    mt = pd.DataFrame({"dim": [48, 32], schema.err("paper"): [1234.5, -20.0],
                       schema.err("fisher"): [3.0, None], schema.err("fisher_cross"): [None, None],
                       schema.est_err("cal_ratio"): [1.0, 2.0]})
    fig = figures.error_figure(mt, limit=300.0)
    t = by_name(fig)
    assert list(t) == ["paper", "fisher", "estimate: cal_ratio"]  # an all-empty predictor is left out
    assert list(t["paper"].x) == ["32", "48"] and list(t["paper"].y) == [-20.0, 300.0]
    assert list(t["paper"].text) == ["-20%", "+1.23e+03%"]
    assert list(t["fisher"].y) == [None, 3.0] and t["fisher"].marker.color == style.predictor_color("fisher")
    assert t["estimate: cal_ratio"].marker.color == style.estimator_color("cal_ratio")
    assert fig.layout.xaxis.type == "category"


def test_clip() -> None:
    assert [figures.clip(v, 10) for v in (-50.0, 5.0, 50.0, None, math.nan)] == [-10, 5.0, 10, None, None]


def test_sites_figure_charges_the_fisher_increment(tables) -> None:
    st = site_table(tables.site_rows([32]))
    fig = figures.sites_figure(st)
    bars, energy = fig.data
    expected = (0.5 * tables.diag[:, 32] / tables.tokens).tolist()
    assert list(bars.y) == pytest.approx(expected)
    assert list(energy.y) == pytest.approx((1 - tables.energy[:, 32]).tolist())
    assert list(bars.hovertext)[:3] == ["embed", "L0 attn", "L0 mlp"]
    assert f"ΔL = {sum(expected):.4f} nats" in fig.layout.title.text
    assert energy.yaxis == "y2" and fig.layout.yaxis2.type == "log"


def test_sites_figure_with_several_widths_names_each(tables) -> None:
    fig = figures.sites_figure(site_table(tables.site_rows([32, 48])))
    assert [t.name.rsplit("=", 1)[-1] for t in fig.data] == ["32", "32", "48", "48"]


def test_a_newly_registered_predictor_reaches_every_figure(monkeypatch, dense, tables, rows) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    toy = registry.Predictor("toy", lambda dm, d, t: registry.from_dloss(dm, 0.01 * (dm.hidden - d)), "a toy")
    registry.register_predictor(toy)
    assert style.predictor_color("toy") == style.PREDICTOR_PALETTE[len(predictor_names()) - 1]
    assert style.visibility("toy") == "legendonly"
    curves = default_curves(dense, tables, 16)
    fig = figures.prediction_figure(curves, "ppl")
    assert style.predicted_name("toy") in by_name(fig)
    assert "<b>toy</b>: a toy" in report._predictor_list()


def test_measured_interval_draws_error_bars(dense, tables, rows) -> None:
    for r in rows:
        ppl = r[schema.measured("ppl")]
        r[schema.lo("ppl", "measured")], r[schema.hi("ppl", "measured")] = ppl - 1, ppl + 2
    fig = figures.prediction_figure(default_curves(dense, tables, 16), "ppl", measured_table(rows))
    bars = by_name(fig)["measured"].error_y
    assert not bars.symmetric and list(bars.array) == [2.0, 2.0] and list(bars.arrayminus) == [1.0, 1.0]
    plain = figures.prediction_figure(default_curves(dense, tables, 16), "acc", measured_table(rows))
    assert by_name(plain)["measured"].error_y.array is None  # no accuracy interval in the rows


def test_prediction_interval_becomes_a_band_after_its_curve(dense, tables) -> None:
    curves = default_curves(dense, tables, 16)
    col = curves[schema.pred("ppl", "fisher")]
    curves[schema.lo("ppl", "fisher")], curves[schema.hi("ppl", "fisher")] = col * 0.9, col * 1.2
    fig = figures.prediction_figure(curves, "ppl")
    names = [t.name for t in fig.data]
    band = fig.data[names.index(style.predicted_name("fisher")) + 1]
    assert band.name.endswith("interval: fisher") and band.fill == "toself" and band.showlegend is False
    n = len(curves)
    assert list(band.x) == curves["dim"].tolist() + curves["dim"].tolist()[::-1]
    assert list(band.y)[:n] == pytest.approx((col * 1.2).tolist())
    assert band.legendgroup == "fisher" and band.visible == style.visibility("fisher")
    assert sum(t.fill == "toself" for t in fig.data) == 1  # only the predictor with an interval


def test_anchored_prediction_is_drawn_apart_from_predictors(dense, tables, rows) -> None:
    head = schema.anchored("fisher_semi")
    for r in rows:
        r[schema.pred("ppl", head)] = r["ppl_measured"] * 1.01
        r[schema.err(head)] = 1.0
    mt = measured_table(rows)
    fig = figures.prediction_figure(default_curves(dense, tables, 16), "ppl", mt)
    anchored = by_name(fig)[style.anchored_name("fisher_semi")]
    assert list(anchored.x) == [32, 48] and anchored.line.color == style.predictor_color("fisher_semi")
    assert style.predicted_name(head) not in by_name(fig)  # never listed as a dense-only predictor
    err = by_name(figures.error_figure(mt))
    assert err[style.anchored_name("fisher_semi")].marker.pattern.shape == "/" and head not in err
