"""Planned widths: pure figures of a plan along depth and of planned-vs-uniform sweeps.

- `plan_figure`: a site table (`predict.plan.site_rows`: one row per site with its planned and uniform width,
  the loss each charges there and the price that chose the width) drawn along depth — the widths on top, the
  per-site charges below;
- `plan_sweep_figure`: measured perplexity against parameters for uniform slicing and for the plan at the
  same count (the `plan_*` columns of `slicedim sweep --plan` rows, `schema.planned`), with the plan
  statistic's predictions of both dashed.
`report.html` and the notebook's plan explorer draw through these.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import schema
from . import style

PLAN_COLOR, UNIFORM_COLOR = style.SECOND_COLOR, style.NEUTRAL_COLOR
SITE_AXIS = "site (hover for its layer and block)"


def plan_figure(sites: pd.DataFrame, title: str = "") -> go.Figure:
    """Widths along depth (planned and uniform) and the loss increase each site is charged under each."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45])
    x, labels = sites["site"].tolist(), sites["label"].tolist()
    hover = [f"{lab}: price {p:.3g} nats/param, {k:.1%} energy kept" for lab, p, k in
             zip(labels, sites["price"], sites["energy_kept"])]
    fig.add_trace(go.Scatter(x=x, y=sites["dim_uniform"], mode="lines", name="uniform width",
                             line={"color": UNIFORM_COLOR, "dash": "dash"}, text=labels,
                             hovertemplate="%{text}: %{y}<extra>uniform</extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=sites["dim"], mode="lines+markers", name="planned width",
                             line={"color": PLAN_COLOR}, marker={"size": 5}, text=hover,
                             hovertemplate="%{text}<br>width %{y}<extra>planned</extra>"), row=1, col=1)
    if sites["dloss_uniform"].notna().any():
        fig.add_trace(go.Bar(x=x, y=sites["dloss_uniform"], name="ΔL charged, uniform",
                             marker={"color": style.translucent(UNIFORM_COLOR, 0.5)}, text=labels,
                             hovertemplate="%{text}: %{y:.4f} nats<extra>uniform</extra>"), row=2, col=1)
    fig.add_trace(go.Bar(x=x, y=sites["dloss"], name="ΔL charged, planned", marker={"color": PLAN_COLOR},
                         text=labels, hovertemplate="%{text}: %{y:.4f} nats<extra>planned</extra>"),
                  row=2, col=1)
    style.layout(fig, title or "planned widths along depth, and the loss each site is charged",
                 barmode="group")
    fig.update_layout(height=style.FIG_HEIGHT + 160)
    fig.update_yaxes(title_text="kept width", row=1, col=1)
    fig.update_yaxes(title_text="ΔL (nats)", row=2, col=1)
    fig.update_xaxes(title_text=SITE_AXIS, row=2, col=1)
    return fig


def planned_rows(rows: Sequence[dict]) -> list[dict]:
    """The rows of a sweep that carry a measured plan, fewest parameters first."""
    have = [r for r in rows if r.get(schema.planned(schema.measured("ppl"))) is not None]
    return sorted(have, key=lambda r: r["params"])


def plan_sweep_figure(rows: Sequence[dict], title: str = "") -> go.Figure:
    """Perplexity against parameters: uniform slicing and the plan at its count, measured (solid) and as the
    plan statistic predicts them (dashed); a log perplexity axis."""
    rs = planned_rows(rows)
    fig = go.Figure()
    ppl, params = schema.measured("ppl"), "params"
    for name, color, p_col, y_col, pred_col in (
            ("uniform", UNIFORM_COLOR, params, ppl, schema.planned("ppl_pred_uniform")),
            ("planned", PLAN_COLOR, schema.planned(params), schema.planned(ppl), schema.planned("ppl_pred"))):
        text = [f"d'={r['dim']}" + (f", widths {r[schema.planned('dims')]}" if name == "planned" else "")
                for r in rs]
        fig.add_trace(go.Scatter(x=[r[p_col] for r in rs], y=[r[y_col] for r in rs], mode="lines+markers",
                                 name=f"measured: {name}", line={"color": color}, marker={"size": 9},
                                 hovertext=text))
        fig.add_trace(go.Scatter(x=[r[p_col] for r in rs], y=[r.get(pred_col) for r in rs], mode="lines",
                                 name=f"predicted (plan statistic): {name}", visible="legendonly",
                                 line={"color": color, "dash": "dot"}))
    return style.layout(fig, title or "perplexity against parameters: planned widths vs uniform slicing",
                        xaxis_title="parameters", yaxis_title="perplexity", yaxis_type="log")


def plan_table_html(rows: Sequence[dict]) -> str:
    """The planned-vs-uniform table of a sweep (empty without planned rows)."""
    rs = planned_rows(rows)
    if not rs:
        return ""
    ppl, acc, mc = (schema.measured(m) for m in ("ppl", "acc", "mc_acc"))
    head = ("<tr><th>d'</th><th>params uniform</th><th>params planned</th><th>PPL uniform</th>"
            "<th>PPL planned</th><th>change</th><th>top-1 uniform</th><th>top-1 planned</th>"
            "<th>MC uniform</th><th>MC planned</th></tr>")

    def num(v: float | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    body = "".join(
        f"<tr><td>{r['dim']}</td><td>{r['params']:,}</td><td>{r[schema.planned('params')]:,}</td>"
        f"<td>{r[ppl]:.3f}</td><td><b>{r[schema.planned(ppl)]:.3f}</b></td>"
        f"<td>{100 * (r[schema.planned(ppl)] / r[ppl] - 1):+.1f}%</td>"
        f"<td>{num(r.get(acc), '.4f')}</td><td>{num(r.get(schema.planned(acc)), '.4f')}</td>"
        f"<td>{num(r.get(mc), '.3f')}</td><td>{num(r.get(schema.planned(mc)), '.3f')}</td></tr>"
        for r in rs)
    note = ("<p>Planned: per-site widths chosen from the dense model alone for uniform slicing's exact "
            "parameter count (docs/planning.md); the same calibration and eval windows. Widths per plan: "
            + "; ".join(f"d'={r['dim']}: {html.escape(str(r[schema.planned('dims')]))}" for r in rs)
            + "</p>")
    return f"<h2>Planned widths vs uniform slicing</h2><table>{head}{body}</table>{note}"
