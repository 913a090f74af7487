"""Predictor figures: pure functions from tidy tables (`viz.tables`) to plotly figures, drawn the same way by
`report.html` and by the notebook widgets.

- `prediction_figure`: one metric against d' — a curve per predictor (with its interval band where the
  table has one), the measured points (with their interval as error bars), the anchored predictions and the
  estimators (both run the sliced model) and, for a slider, each shown predictor's value at one d';
- `error_figure`: signed % perplexity error of every predictor at the measured widths, bars clipped;
- `sites_figure`: where along depth the Fisher predictor charges the loss, beside the energy discarded.

Rules, from the data and the registry only: a predictor's curve is a line where it is known at every width
of the curve table and dashed markers where it has gaps; `shown_names()` are drawn, the rest wait in the
legend; a log perplexity axis spans the measured points and the registry's headline predictors
(`headline_for`), since the paper's law grows like PPL₀^(D/d') and would flatten everything else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import schema
from ..eval.uncertainty import LEVEL
from ..predict.registry import predictor_names, predictors, shown_names
from . import style

ERR_CLIP = 300.0  # error bars beyond ±300% are clipped (their labels keep the value)
TITLES = {"ppl": ("perplexity against kept width d'", "perplexity"),
          "acc": ("next-token top-1 accuracy against d'", "top-1 accuracy"),
          "mc_acc": ("multiple-choice accuracy (corpus-mc) against d'", "accuracy")}
SITE_AXIS = "site (hover for its layer and block)"


ANCHORED = schema.anchored("")  # the suffix of an anchored prediction's name: not a dense-only predictor


def _in_order(present: Sequence[str]) -> list[str]:
    """Predictor names, registered ones in registry order, then the others; anchored names left out."""
    present = [p for p in present if not p.endswith(ANCHORED)]
    return [p for p in predictor_names() if p in present] + [p for p in present if p not in predictor_names()]


def ordered_predictors(columns: Sequence[str], metric: str = "ppl") -> list[str]:
    """The predictors with a `{metric}_pred_*` column, registered ones in registry order, then the others."""
    return _in_order(schema.predictors_in(columns, metric))


def anchored_predictors(columns: Sequence[str], metric: str = "ppl") -> list[str]:
    """The registered predictors whose anchored prediction (`schema.anchored`) has a column."""
    return [p for p in predictor_names() if schema.pred(metric, schema.anchored(p)) in columns]


def curve_predictors(curves: pd.DataFrame, metric: str = "ppl") -> list[str]:
    """`ordered_predictors` with a value somewhere below the full width (at full width every predictor is
    exact and says nothing)."""
    if curves.empty:
        return []
    narrow = curves["dim"] < curves["dim"].max()
    return [p for p in ordered_predictors(list(curves.columns), metric)
            if curves.loc[narrow, schema.pred(metric, p)].notna().any()]


def error_predictors(columns: Sequence[str]) -> list[str]:
    """The predictors with a `schema.err` column (estimators excluded), registered ones in registry order."""
    pre, est = schema.err(""), schema.est_err("")
    return _in_order([c[len(pre):] for c in columns if c.startswith(pre) and not c.startswith(est)])


def _values(table: pd.DataFrame | None, column: str) -> pd.Series:
    if table is None or column not in table:
        return pd.Series([], dtype=float)
    return table[column].dropna().astype(float)


def _focus_range(curves: pd.DataFrame, metric: str, measured: pd.DataFrame | None) -> list[float] | None:
    """log10 y-range over the headline predictors' curves and the measured points (None: nothing to span)."""
    heads = [p.name for p in predictors() if p.headline_for]
    vals = [v for p in heads for v in _values(curves, schema.pred(metric, p))]
    vals += list(_values(measured, schema.measured(metric)))
    vals = [v for v in vals if v > 0]
    if not vals:
        return None
    return [math.log10(min(vals) / 1.15), math.log10(max(vals) * 2.0)]


def interval_band(curves: pd.DataFrame, metric: str, predictor: str) -> go.Scatter | None:
    """A filled band between a predictor's `schema.lo` and `schema.hi` columns (None if the table has no
    interval for it), in its colour, switched with its curve in the legend."""
    lo, hi = schema.lo(metric, predictor), schema.hi(metric, predictor)
    if lo not in curves or hi not in curves:
        return None
    t = curves[curves[lo].notna() & curves[hi].notna()]
    if t.empty:
        return None
    x = t["dim"].tolist()
    return go.Scatter(x=x + x[::-1], y=t[hi].tolist() + t[lo].tolist()[::-1], mode="lines", fill="toself",
                      fillcolor=style.translucent(style.predictor_color(predictor)), line={"width": 0},
                      name=style.interval_name(predictor, LEVEL), legendgroup=predictor, showlegend=False,
                      visible=style.visibility(predictor), hoverinfo="skip")


def measured_error(rows: pd.DataFrame, metric: str) -> dict | None:
    """Asymmetric error bars from the measured values' `schema.lo`/`schema.hi` columns (None without them;
    a row without an interval gets none)."""
    lo, hi, col = schema.lo(metric, "measured"), schema.hi(metric, "measured"), schema.measured(metric)
    if lo not in rows or hi not in rows or not rows[lo].notna().any():
        return None
    up = [float(h - v) if pd.notna(h) else 0.0 for h, v in zip(rows[hi], rows[col])]
    down = [float(v - lo_) if pd.notna(lo_) else 0.0 for lo_, v in zip(rows[lo], rows[col])]
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down,
            "color": style.MEASURED_COLOR, "thickness": 1.5, "width": 5}


def prediction_figure(
    curves: pd.DataFrame,
    metric: str = "ppl",
    measured: pd.DataFrame | None = None,
    *,
    at: Mapping[str, float] | None = None,
    also_measured: Sequence[str] = (),
    title: str | None = None,
    log: bool | None = None,
) -> go.Figure:
    """`metric` (ppl | acc | mc_acc) against d'. Traces in order: one per predictor of `curve_predictors`,
    the measured points (`measured[schema.measured(metric)]`, then `also_measured` metrics dotted), the
    estimators (perplexity), and — with `at`, a prediction row holding `dim` — each shown predictor's value
    there, with a dashed line at that d'. `log` defaults to True for perplexity."""
    log = metric == "ppl" if log is None else log
    default_title, ytitle = TITLES.get(metric, (f"{metric} against d'", metric))
    fig = go.Figure()
    for p in curve_predictors(curves, metric):
        col = curves[schema.pred(metric, p)]
        known = col.notna()
        full = bool(known.all())
        color = style.predictor_color(p)
        fig.add_trace(go.Scatter(
            x=curves.loc[known, "dim"].tolist(), y=col[known].tolist(),
            mode="lines" if full else "markers+lines",
            name=style.predicted_name(p), legendgroup=p, visible=style.visibility(p),
            line={"color": color, "width": 2, "dash": None if full else "dash"},
            marker={"color": color, "size": 8, "symbol": "x"}))
        band = interval_band(curves, metric, p)
        if band is not None:
            fig.add_trace(band)
    mt = measured if measured is not None else pd.DataFrame({"dim": []})
    for k, m in enumerate([metric, *also_measured]):
        col = schema.measured(m)
        if col not in mt or not mt[col].notna().any():
            continue
        sel = mt[mt[col].notna()]
        name = "measured" if k == 0 else f"measured {m}"
        fig.add_trace(go.Scatter(x=sel["dim"].tolist(), y=sel[col].tolist(), mode="markers+lines", name=name,
                                 marker=style.MEASURED_MARKER, error_y=measured_error(sel, m),
                                 line={"color": style.MEASURED_COLOR, "dash": "solid" if k == 0 else "dot"}))
    for p in anchored_predictors(list(mt.columns), metric):
        col = schema.pred(metric, schema.anchored(p))
        sel = mt[mt[col].notna()]
        if len(sel):
            color = style.predictor_color(p)
            fig.add_trace(go.Scatter(x=sel["dim"].tolist(), y=sel[col].tolist(), mode="markers+lines",
                                     name=style.anchored_name(p), line={"color": color, "dash": "dot"},
                                     marker={"color": color, "size": 9, "symbol": "circle-open"}))
    if metric == "ppl":
        for e in schema.ESTIMATORS:
            col = schema.est(e)
            if col in mt and mt[col].notna().any():
                sel = mt[mt[col].notna()]
                fig.add_trace(go.Scatter(x=sel["dim"].tolist(), y=sel[col].tolist(), mode="markers",
                                         name=style.estimate_name(e),
                                         marker={"color": style.estimator_color(e), "symbol": "x",
                                                 "size": 9}))
    shapes = []
    if at is not None:
        here = [p for p in curve_predictors(curves, metric)
                if p in shown_names() and at.get(schema.pred(metric, p)) is not None]
        fig.add_trace(go.Scatter(x=[at["dim"]] * len(here), y=[at[schema.pred(metric, p)] for p in here],
                                 mode="markers", name="at the slider", showlegend=False,
                                 marker={"size": 11, "color": [style.predictor_color(p) for p in here],
                                         "line": {"color": "white", "width": 1}}))
        shapes.append(style.cursor(at["dim"]))
    style.layout(fig, title if title is not None else default_title, xaxis_title="kept width d'",
                 yaxis_title=ytitle, shapes=shapes)
    if log:
        fig.update_yaxes(type="log", dtick="D2")
        rng = _focus_range(curves, metric, measured)
        if rng is not None and metric == "ppl":
            fig.update_yaxes(range=rng)
    return fig


def clip(v: float | None, limit: float = ERR_CLIP) -> float | None:
    """`v` limited to [−limit, limit] (None stays None)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else max(-limit, min(limit, v))


def error_figure(measured: pd.DataFrame, limit: float = ERR_CLIP, title: str | None = None) -> go.Figure:
    """Grouped bars per measured d' (a category axis): every predictor's signed % perplexity error
    (`schema.err`), then the anchored predictions' (hatched) and the estimators' (`schema.est_err`); bars
    clipped at ±`limit`, labelled with the unclipped value."""
    fig = go.Figure()
    mt = measured.sort_values("dim") if len(measured) else measured
    xs = [str(int(d)) for d in mt["dim"]] if len(mt) else []
    series = [(p, schema.err(p), style.predictor_color(p), style.visibility(p), "")
              for p in error_predictors(list(mt.columns))]
    series += [(style.anchored_name(p), schema.err(schema.anchored(p)), style.predictor_color(p), True, "/")
               for p in predictor_names() if schema.err(schema.anchored(p)) in mt]
    series += [(f"estimate: {e}", schema.est_err(e), style.estimator_color(e), True, "")
               for e in schema.ESTIMATORS if schema.est_err(e) in mt]
    for name, col, color, visible, pattern in series:
        vals = [None if pd.isna(v) else float(v) for v in mt[col]] if col in mt else []
        if not any(v is not None for v in vals):
            continue
        fig.add_trace(go.Bar(x=xs, y=[clip(v, limit) for v in vals], name=name, visible=visible,
                             marker={"color": color, "pattern": {"shape": pattern}}, legendgroup=name,
                             textposition="outside", cliponaxis=False,
                             text=[None if v is None else f"{v:+.3g}%" for v in vals]))
    fig.add_hline(y=0, line_color="gray")
    default = f"perplexity error at the measured points (signed %, bars clipped at ±{limit:.0f}%)"
    style.layout(fig, title or default,
                 xaxis_title="kept width d'", yaxis_title="predicted / measured − 1 (%)", barmode="group")
    fig.update_xaxes(type="category")
    return fig


def sites_figure(sites: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Per site (a `viz.tables.site_table`): bars of the loss increase the Fisher predictor charges there
    (nats) and, on a log right axis, the fraction of energy the dense PCA discards — one pair per d'."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    dims = sorted(sites["dim"].unique()) if len(sites) else []
    one = len(dims) == 1
    for d in dims:
        t = sites[sites["dim"] == d].sort_values("site")
        tag = "" if one else f", d'={d}"
        fig.add_trace(go.Bar(x=t["site"].tolist(), y=t["dloss"].tolist(), hovertext=t["label"].tolist(),
                             name=f"Fisher increment ½·mean (g·δ)² (nats){tag}",
                             marker_color=style.SECOND_COLOR if one else None), secondary_y=False)
        fig.add_trace(go.Scatter(x=t["site"].tolist(), y=[style.log_value(v) for v in t["discarded"]],
                                 hovertext=t["label"].tolist(), mode="lines+markers", marker={"size": 4},
                                 name=f"energy discarded{tag}",
                                 line={"color": style.SLICED_COLOR} if one else {"dash": "dot"}),
                      secondary_y=True)
    if title is None:
        title = "where the Fisher predictor charges the loss"
        if one:
            total = float(sites["dloss"].sum())
            title = (f"where the loss is charged at d' = {dims[0]}: ΔL = {total:.4f} nats "
                     f"(PPL × {math.exp(total):.3f})")
    style.layout(fig, title, xaxis_title=SITE_AXIS, barmode="group")
    fig.update_yaxes(title_text="nats", secondary_y=False)
    fig.update_yaxes(title_text="fraction of energy discarded", type="log", exponentformat="power",
                     secondary_y=True)
    return fig
