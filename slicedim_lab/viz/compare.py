"""Two (or more) models side by side on one figure: pure functions of tidy tables with a `model` column.

- `spectra`: eigen-spectrum rows of each model's dense PCA (`flow.tables.spectrum_table` + `model`: `site`,
  `layer`, `index`, `share`, `retained`); a model's width D is its largest `index`;
- `measured`: `model, dim, sparsity, ppl, ppl_dense` — perplexity measured at a kept width (dense bases) and
  the dense model's on the same windows;
- `predicted`: `model, predictor, dim, sparsity, ppl, ppl_dense` (`predicted_rows` from `predict.curves`).

The models differ in width and depth, so the axes are relative: direction / D, depth as a fraction of the
sites, sparsity s = 1 − d'/D, perplexity as a ratio to the dense model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import schema
from . import style

MODEL_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
PREDICTOR_DASH = ("dash", "dot", "dashdot", "longdash")
MEASURED_COLUMNS = ["model", "dim", "sparsity", "ppl", "ppl_dense"]
PREDICTED_COLUMNS = ["model", "predictor", "dim", "sparsity", "ppl", "ppl_dense"]


def predicted_rows(curves: pd.DataFrame, model: str, hidden: int, ppl_dense: float,
                   predictors: Sequence[str]) -> pd.DataFrame:
    """A `viz.tables.curve_table` of one model of width `hidden` as `predicted` rows: one per (predictor, d')
    where the predictor answers."""
    rows = [{"model": model, "predictor": p, "dim": int(d), "sparsity": 1 - d / hidden, "ppl": float(v),
             "ppl_dense": ppl_dense}
            for p in predictors if schema.pred("ppl", p) in curves
            for d, v in zip(curves["dim"], curves[schema.pred("ppl", p)]) if pd.notna(v)]
    return pd.DataFrame(rows, columns=PREDICTED_COLUMNS)


def model_colors(models: Sequence[str]) -> dict[str, str]:
    return {m: MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, m in enumerate(models)}


def middle_site(spectra: pd.DataFrame) -> int:
    """The site halfway along depth (of one model's spectrum rows)."""
    sites = sorted(set(spectra["site"]))
    return int(sites[len(sites) // 2])


def discarded_along_depth(spectra: pd.DataFrame, dim: int) -> pd.DataFrame:
    """Per site of one model: relative depth (site / last site) and the fraction of energy the top-`dim`
    directions discard (1 − retained at `dim`; 0 where `dim` is the full width)."""
    hidden = int(spectra["index"].max())
    last = max(int(spectra["site"].max()), 1)
    at = spectra[spectra["index"] == min(dim, hidden)].sort_values("site")
    lost = [0.0 if dim >= hidden else max(0.0, 1 - r) for r in at["retained"]]
    return pd.DataFrame({"site": at["site"].tolist(), "depth": [s / last for s in at["site"]],
                         "discarded": lost})


def two_models_figure(spectra: pd.DataFrame, measured: pd.DataFrame, predicted: pd.DataFrame,
                      dims: Mapping[str, int], sparsity: float) -> go.Figure:
    """One figure, three panels, a colour per model: (1) the eigen-spectrum of the site halfway along depth
    against direction / D, the cut at 1 − s; (2) the energy discarded along relative depth at each model's
    d' = `dims[model]` (the width of `sparsity`); (3) perplexity / dense perplexity against s, measured
    (markers) and predicted (a dashed line per predictor; log scale), the slider's s marked."""
    models = list(dict.fromkeys([*spectra["model"], *measured["model"], *predicted["model"]]))
    colors = model_colors(models)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(
        "eigen-spectrum at mid-depth", f"energy discarded along depth at s = {sparsity:.2f}",
        "perplexity / dense perplexity"))
    dashes = {p: PREDICTOR_DASH[i % len(PREDICTOR_DASH)]
              for i, p in enumerate(dict.fromkeys(predicted["predictor"]))}
    for m in models:
        c, sp = colors[m], spectra[spectra["model"] == m]
        if len(sp):
            hidden = int(sp["index"].max())
            mid = sp[sp["site"] == middle_site(sp)].sort_values("index")
            fig.add_trace(go.Scatter(x=(mid["index"] / hidden).tolist(),
                                     y=[style.log_value(v) for v in mid["share"]], mode="lines",
                                     name=f"{m} (D = {hidden})", legendgroup=m, line={"color": c}),
                          row=1, col=1)
            lost = discarded_along_depth(sp, dims.get(m, hidden))
            fig.add_trace(go.Scatter(x=lost["depth"].tolist(),
                                     y=[style.log_value(v) for v in lost["discarded"]], mode="lines+markers",
                                     marker={"size": 4}, name=f"{m}: d' = {dims.get(m)}", legendgroup=m,
                                     showlegend=False, line={"color": c},
                                     hovertext=[f"site {s}" for s in lost["site"]]), row=1, col=2)
        for p, sel in predicted[predicted["model"] == m].groupby("predictor", sort=False):
            sel = sel.sort_values("sparsity")
            fig.add_trace(go.Scatter(x=sel["sparsity"].tolist(), y=(sel["ppl"] / sel["ppl_dense"]).tolist(),
                                     mode="lines", name=f"{m}: predicted ({p})", legendgroup=m,
                                     line={"color": c, "dash": dashes[p]}), row=1, col=3)
        me = measured[measured["model"] == m].sort_values("sparsity")
        if len(me):
            fig.add_trace(go.Scatter(x=me["sparsity"].tolist(), y=(me["ppl"] / me["ppl_dense"]).tolist(),
                                     mode="markers", name=f"{m}: measured", legendgroup=m,
                                     marker={**style.MEASURED_MARKER, "color": c}), row=1, col=3)
    fig.add_vline(x=1 - sparsity, line=style.CURSOR_LINE, row=1, col=1)
    fig.add_vline(x=sparsity, line=style.CURSOR_LINE, row=1, col=3)
    fig.update_xaxes(title_text="direction / D", row=1, col=1)
    fig.update_xaxes(title_text="depth (site / last site)", row=1, col=2)
    fig.update_xaxes(title_text="sparsity s = 1 − d'/D", row=1, col=3)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=1)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    style.layout(fig, "two models side by side")
    # the ratio spans decades (a predictor at a strong cut) or a fraction of one: labels between decades too
    fig.update_yaxes(title_text="PPL / dense PPL", type="log", minorloglabels="complete", row=1, col=3)
    fig.update_layout(height=440)
    return fig
