"""The theory notebook's figure of the paper's law with a free slope: PPL against d' under
ln PPL₀ / ln PPL = 1 − κ·s for a few slopes κ, with measured points (a pure function of plain numbers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from ..predict.law import kappa_ppl
from . import style


def paper_law_figure(ppl0: float, hidden: int, measured: Mapping[int, float] | None = None,
                     kappas: Sequence[float] = (1.0, 0.7, 0.5)) -> go.Figure:
    """ln PPL_0 / ln PPL(d') = 1 − κ·s for a few slopes κ (κ = 1 is the paper's law, in `paper`'s colour),
    with measured points. A curve stops where 1 − κ·s falls below 0.2 (`predict.law.kappa_ppl`)."""
    ds = list(range(max(8, hidden // 4), hidden + 1, max(1, hidden // 144)))
    fig = go.Figure()
    for k in kappas:
        name = f"κ = {k:g}" + (" (paper)" if k == 1 else "")
        line = {"color": style.predictor_color("paper")} if k == 1 else {"dash": "dot"}
        fig.add_trace(go.Scatter(x=ds, y=[kappa_ppl(ppl0, hidden, d, k) for d in ds], mode="lines", name=name,
                                 line=line))
    if measured:
        fig.add_trace(go.Scatter(x=list(measured), y=list(measured.values()), mode="markers", name="measured",
                                 marker=style.MEASURED_MARKER))
    return style.layout(fig, "perplexity against kept width: ln PPL₀ / ln PPL = 1 − κ·s", xaxis_title="d'",
                        yaxis_title="perplexity", yaxis_type="log")
