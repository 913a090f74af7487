"""The quickstart's figure: bars of perplexity, top-1 accuracy and parameters for a few named models (a pure
function of plain numbers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style


def metrics_figure(models: Sequence[Mapping[str, float | str]], windows: int, seqlen: int) -> go.Figure:
    """Bars of perplexity, next-token top-1 accuracy and parameter count, one bar per model (rows with
    `name`, `ppl`, `accuracy`, `params`; the first is the reference, drawn in the dense colour)."""
    names = [str(m["name"]) for m in models]
    colors = [style.DENSE_COLOR if i == 0 else style.SLICED_COLOR for i in range(len(names))]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("perplexity (lower is better)", "top-1 accuracy",
                                                        "parameters (millions)"))
    cols = [[float(m["ppl"]) for m in models], [float(m["accuracy"]) for m in models],
            [float(m["params"]) / 1e6 for m in models]]
    for j, (vals, fmt) in enumerate(zip(cols, ("{:.2f}", "{:.3f}", "{:.1f}"))):
        fig.add_trace(go.Bar(x=names, y=vals, marker_color=colors, text=[fmt.format(v) for v in vals],
                             textposition="auto", showlegend=False), row=1, col=j + 1)
    style.layout(fig, f"dense vs sliced on {windows} eval windows × {seqlen} tokens")
    fig.update_layout(margin={"t": 90})
    return fig
