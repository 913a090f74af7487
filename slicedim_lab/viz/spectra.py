"""Eigen-spectrum figures: pure functions from spectrum tables (`flow.session.spectrum_table` rows: `site`,
`layer`, `kind`, `index`, `share`, `retained`) or plain lists to plotly figures.

- `spectrum_figure`: one site's share of the energy per eigen-direction, kept directions against dropped;
- `discarded_figure`: the fraction of energy every site discards at its width, one site marked;
- `layer_spectra_figure`: the spectra of one decoder layer's sites, the cut at d' marked.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from . import style

DIRECTION_AXIS = "eigen-direction (descending eigenvalue)"
KIND_COLORS = {"embed": style.NEUTRAL_COLOR, "attn": style.DENSE_COLOR, "mlp": style.SECOND_COLOR}


def spectrum_figure(share: Sequence[float], dim: int, title: str = "") -> go.Figure:
    """Each eigen-direction's share of the energy (log scale): the first `dim` kept, the rest discarded
    (shaded); the two traces meet at direction `dim`."""
    idx = list(range(1, len(share) + 1))
    vals = [style.log_value(float(v)) for v in share]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=idx[:dim], y=vals[:dim], mode="lines", name="kept directions",
                             line={"color": style.DENSE_COLOR}))
    fig.add_trace(go.Scatter(x=idx[dim - 1:], y=vals[dim - 1:], mode="lines", name="discarded directions",
                             line={"color": style.SLICED_COLOR}, fill="tozeroy",
                             fillcolor="rgba(214,39,40,0.15)"))
    return style.layout(fig, title, xaxis_title=DIRECTION_AXIS, yaxis_title="share of the energy",
                        yaxis_type="log", yaxis_exponentformat="power")


def discarded_figure(sites: Sequence[int], discarded: Sequence[float], selected: int | None = None,
                     labels: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """The fraction of energy each site discards (log scale), the `selected` site ringed."""
    fig = go.Figure()
    vals = [style.log_value(float(v)) for v in discarded]
    fig.add_trace(go.Scatter(x=list(sites), y=vals, mode="lines+markers", name="energy discarded",
                             marker={"size": 5}, line={"color": style.DENSE_COLOR},
                             hovertext=list(labels) if labels is not None else None))
    sel = [(s, v) for s, v in zip(sites, vals) if s == selected]
    fig.add_trace(go.Scatter(x=[s for s, _ in sel], y=[v for _, v in sel], mode="markers",
                             name="selected site", marker={"size": 13, "color": style.SLICED_COLOR}))
    return style.layout(fig, title, xaxis_title="site (hover for its layer and block)",
                        yaxis_title="fraction of energy discarded", yaxis_type="log",
                        yaxis_exponentformat="power")


def layer_spectra_figure(spectra: pd.DataFrame, layer: int, dim: int, title: str | None = None) -> go.Figure:
    """The share of the energy per eigen-direction of every site of decoder layer `layer` (rows of a
    spectrum table whose `layer` equals it), one line per site kind, the cut at d' dashed."""
    fig = go.Figure()
    t = spectra[spectra["layer"] == layer]
    for kind, sel in t.groupby("kind", sort=False):
        sel = sel.sort_values("index")
        fig.add_trace(go.Scatter(x=sel["index"].tolist(), y=[style.log_value(v) for v in sel["share"]],
                                 mode="lines", name=f"{kind} site",
                                 line={"color": KIND_COLORS.get(str(kind), style.NEUTRAL_COLOR)}))
    cut = {"type": "line", "xref": "x", "yref": "paper", "x0": dim + 0.5, "x1": dim + 0.5, "y0": 0, "y1": 1,
           "line": {"color": "black", "dash": "dash"}}
    return style.layout(fig, title or f"layer {layer}: dense eigen-spectra of its sites, cut at d' = {dim}",
                        xaxis_title="eigen-direction (descending)", yaxis_title="share of the energy",
                        yaxis_type="log", yaxis_exponentformat="power", shapes=[cut])
