"""One look for every figure: a colour per predictor and estimator, the measured style, the legend rule and
the common layout. The report and the widgets both draw through these, so `paper` is the same red, a hidden
predictor waits in the same legend, everywhere.

Colours follow the predictor registry's order (`paper` first), so they are stable while registration order
is; a predictor registered later takes the next palette colour with no edit here.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from .. import schema
from ..predict.registry import predictor_names, shown_names

# registry order: paper, fisher, fisher_cross, fisher_full, fisher_semi, fisher_semi_cross, fisher_semi_geo, …
PREDICTOR_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#bcbd22", "#e377c2",
                     "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
ESTIMATOR_COLORS = dict(zip(schema.ESTIMATORS, ("#8c564b", "#ff7f0e")))
UNKNOWN_COLOR = "#7f7f7f"  # a predictor found in a table but not registered (an older results file)
MEASURED_COLOR = "black"
MEASURED_MARKER = {"size": 10, "color": MEASURED_COLOR, "symbol": "diamond"}
# dense-vs-sliced comparisons outside the predictor figures (quickstart bars, spectra, flow along depth)
DENSE_COLOR, SLICED_COLOR, NEUTRAL_COLOR, SECOND_COLOR = "#1f77b4", "#d62728", "#7f7f7f", "#2ca02c"
BAND_FILL = "rgba(255,165,0,0.18)"
CURSOR_LINE = {"color": "rgba(0,0,0,0.35)", "dash": "dash"}
FIG_HEIGHT = 360
TABLE_CSS = ("<style>.sdl-table td, .sdl-table th {padding: 2px 12px; text-align: left; "
             "border-bottom: 1px solid #ddd; vertical-align: top}</style>")


def predictor_color(name: str) -> str:
    """The colour of predictor `name`: its registry position in `PREDICTOR_PALETTE` (cycling)."""
    names = predictor_names()
    if name not in names:
        return UNKNOWN_COLOR
    return PREDICTOR_PALETTE[names.index(name) % len(PREDICTOR_PALETTE)]


def estimator_color(name: str) -> str:
    return ESTIMATOR_COLORS.get(name, UNKNOWN_COLOR)


def visibility(name: str) -> bool | str:
    """Plotly `visible` of a predictor's traces: drawn if the registry marks it shown, else in the legend."""
    return True if name in shown_names() else "legendonly"


def predicted_name(name: str) -> str:
    """The legend entry of a predictor's curve."""
    return f"predicted: {name}"


def estimate_name(name: str) -> str:
    """The legend entry of an estimator (it runs the sliced model: never a prediction)."""
    return f"estimate (runs sliced model): {name}"


def anchored_name(name: str) -> str:
    """The legend entry of a predictor corrected by widths measured for real (a sliced model ran there)."""
    return f"anchored (measures the anchors): {name}"


def interval_name(name: str, level: float) -> str:
    """The legend entry of a prediction's or measurement's interval."""
    return f"{level:.0%} interval: {name}"


def translucent(color: str, alpha: float = 0.15) -> str:
    """`#rrggbb` as an rgba() fill of opacity `alpha` (other colour strings are returned as they are)."""
    if not (color.startswith("#") and len(color) == 7):
        return color
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def log_value(v: float | None) -> float | None:
    """A value for a log axis: None (a gap) for zero or less, which only rank-deficient calibration gives."""
    return v if v is not None and v > 0 else None


def cursor(x: float) -> dict:
    """A dashed vertical line at x across the plot (a slider's position)."""
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": CURSOR_LINE}


def layout(fig: go.Figure, title: str = "", **kwargs: Any) -> go.Figure:
    """The common layout: white template, fixed height, legend below; log axes label 1, 2, 5 × 10ⁿ only."""
    fig.update_layout(title=title, height=FIG_HEIGHT, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      template="plotly_white", legend={"orientation": "h", "y": -0.2}, **kwargs)
    fig.update_yaxes(minorloglabels="none")
    return fig
