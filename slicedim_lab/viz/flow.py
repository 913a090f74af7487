"""Activation-flow figures: pure functions from a flow table (`flow.session.FlowReport.table`: tidy rows
`site, layer, kind, map, role, metric, value`) to plotly figures along depth, and from map tables (the same
rows of the maps, with a `map_layer` and a `label` column) to the per-map figures.

A decoder layer is marked by a band over the sites whose `layer` column equals it, read from the table, so
these figures never number sites themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style

SITE_AXIS = "site (hover for its layer and block)"


def site_series(table: pd.DataFrame, metric: str) -> tuple[list[int], list[float]]:
    """(sites, values) of one site-level metric of a flow table (empty if absent)."""
    t = table[(table["map"] == "") & (table["metric"] == metric)].sort_values("site")
    return t["site"].astype(int).tolist(), t["value"].astype(float).tolist()


def layer_band(table: pd.DataFrame, layer: int) -> list[dict]:
    """A shaded band over the sites of decoder layer `layer` (the rows of `table` whose `layer` is it)."""
    sites = table.loc[(table["map"] == "") & (table["layer"] == layer), "site"]
    if sites.empty:
        return []
    return [{"type": "rect", "xref": "x", "yref": "paper", "x0": float(sites.min()) - 0.5,
             "x1": float(sites.max()) + 0.5, "y0": 0, "y1": 1, "fillcolor": style.BAND_FILL,
             "line": {"width": 0}, "layer": "below"}]


def _band(table: pd.DataFrame, layer: int | None) -> list[dict]:
    return layer_band(table, layer) if layer is not None else []


def _lines(fig: go.Figure, table: pd.DataFrame, series: Sequence[tuple[str, str, str, dict]],
           log: bool = False, **kwargs: object) -> None:
    """Add one lines+markers trace per (metric, name, colour, extra line style) of `table`."""
    for metric, name, color, extra in series:
        x, y = site_series(table, metric)
        ys = [style.log_value(1 - v) for v in y] if log else y
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines+markers", name=name, marker={"size": 4},
                                 line={"color": color, **extra}), **kwargs)


def energy_figure(table: pd.DataFrame, dim: int, layer: int | None = None) -> go.Figure:
    """The fraction of energy discarded along depth: by the calibration PCA, on dense eval activations, and
    on the activations that reach each projection in the sliced model."""
    fig = go.Figure()
    _lines(fig, table, [("retained_cal", "calibration PCA", style.NEUTRAL_COLOR, {}),
                        ("retained_eval_dense", "eval, dense activations", style.DENSE_COLOR, {}),
                        ("retained_eval", "eval, sliced activations", style.SLICED_COLOR, {})], log=True)
    return style.layout(fig, f"energy discarded along depth at d' = {dim}", xaxis_title=SITE_AXIS,
                        yaxis_title="fraction of energy discarded", yaxis_type="log",
                        yaxis_exponentformat="power", shapes=_band(table, layer))


def error_figure(table: pd.DataFrame, dim: int, layer: int | None = None) -> go.Figure:
    """The sliced residual against the dense one along depth: relative error (left) and cosine (right)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    _lines(fig, table, [("rel_error", "relative error ‖x̃ − x‖/‖x‖", style.SLICED_COLOR, {})],
           secondary_y=False)
    _lines(fig, table, [("cosine", "cosine(x̃, x)", style.DENSE_COLOR, {})], secondary_y=True)
    style.layout(fig, f"the residual stream against the dense one at d' = {dim}", xaxis_title=SITE_AXIS,
                 shapes=_band(table, layer))
    fig.update_yaxes(title_text="relative error", secondary_y=False)
    fig.update_yaxes(title_text="cosine", secondary_y=True)
    return fig


def lens_figure(table: pd.DataFrame, dim: int, layer: int | None = None) -> go.Figure:
    """The logit lens along depth: KL(dense ‖ sliced) (left) and each model's next-token loss (right, linear:
    the lens loss spans less than a decade, where a log axis would show a single tick)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    _lines(fig, table, [("lens_kl", "KL(dense ‖ sliced), logit lens", style.SLICED_COLOR, {})],
           secondary_y=False)
    _lines(fig, table, [("lens_loss_dense", "lens loss, dense", style.DENSE_COLOR, {"dash": "dot"}),
                        ("lens_loss_sliced", "lens loss, sliced", style.SLICED_COLOR, {"dash": "dot"})],
           secondary_y=True)
    style.layout(fig, f"logit lens along depth at d' = {dim}", xaxis_title=SITE_AXIS,
                 shapes=_band(table, layer))
    fig.update_yaxes(title_text="KL (nats)", secondary_y=False)
    fig.update_yaxes(title_text="next-token loss (nats)", rangemode="tozero", showgrid=False,
                     secondary_y=True)
    return fig


def attribution_figure(table: pd.DataFrame, dim: int, summary: Mapping[str, float] | None = None,
                       layer: int | None = None) -> go.Figure:
    """Each site's share of the loss increase (integrated gradients and first order); `summary` (a flow
    report's, with the decomposition's totals) puts Δloss = Σ + remainder in the title, None asks for it."""
    fig = go.Figure()
    for metric, name, color in (("attr_loss_integrated", "integrated gradients", style.SECOND_COLOR),
                                ("attr_loss_first", "first order", style.NEUTRAL_COLOR)):
        x, y = site_series(table, metric)
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=color))
    if summary is not None and "attr_loss_change" in summary:
        title = (f"prediction decomposition at d' = {dim}: Δloss {summary['attr_loss_change']:.4f} = "
                 f"Σ integrated {summary['attr_loss_integrated_sum']:.4f} + remainder "
                 f"{summary['attr_loss_integrated_remainder']:.4f} nats/token")
    else:
        title = "prediction decomposition: tick the box above to compute it"
    return style.layout(fig, title, xaxis_title=SITE_AXIS, yaxis_title="Δ loss attributed (nats/token)",
                        barmode="group", shapes=_band(table, layer))


# ----------------------------------------------------------------------------- linear maps


def map_bars_figure(maps: pd.DataFrame, layer: int, dim: int,
                    weight_kept: Mapping[tuple[str, str], float] | None = None) -> go.Figure:
    """The maps of decoder layer `layer` (map-table rows with that `map_layer`): the share of each map's
    output energy on kept / dropped directions and, with `weight_kept` ((map, role) → share), of its weight
    energy that survives slicing."""
    t = maps[maps["map_layer"] == layer]
    fig = go.Figure()
    for metric, name, color in (("act_kept", "output energy on kept directions", style.DENSE_COLOR),
                                ("act_dropped", "output energy on dropped directions", style.SLICED_COLOR)):
        sel = t[t["metric"] == metric]
        fig.add_trace(go.Bar(x=sel["label"].tolist(), y=sel["value"].tolist(), name=name, marker_color=color))
    sel = t[t["metric"] == "act_kept"]
    kept = weight_kept or {}
    ys = [kept.get((m, r)) for m, r in zip(sel["map"], sel["role"])]
    fig.add_trace(go.Bar(x=sel["label"].tolist(), y=ys, name="weight energy kept",
                         marker_color=style.NEUTRAL_COLOR))
    return style.layout(fig, f"layer {layer} at d' = {dim}: kept vs dropped directions, per map",
                        yaxis_title="fraction", barmode="group")


def map_depth_figure(maps: pd.DataFrame, dim: int, layer: int | None = None,
                     layers: tuple[int, int] | None = None) -> go.Figure:
    """The share of output energy each map sends through dropped directions, along the layers (one line per
    map name; `layers` = [first, last) keeps only decoder layers), `layer` marked."""
    dropped = maps[maps["metric"] == "act_dropped"]
    if layers is not None:
        dropped = dropped[(dropped["map_layer"] >= layers[0]) & (dropped["map_layer"] < layers[1])]
    fig = go.Figure()
    for name in sorted(set(dropped["map"])):
        sel = dropped[dropped["map"] == name].sort_values("map_layer")
        fig.add_trace(go.Scatter(x=sel["map_layer"].tolist(), y=[style.log_value(v) for v in sel["value"]],
                                 mode="lines+markers", name=name, marker={"size": 4}))
    mark = {"type": "line", "xref": "x", "yref": "paper", "x0": layer, "x1": layer, "y0": 0, "y1": 1,
            "line": {"color": "orange", "width": 2}}
    shapes = [] if layer is None else [mark]
    return style.layout(fig, f"output energy each map sends through dropped directions, d' = {dim}",
                        xaxis_title="layer", yaxis_title="output energy on dropped directions",
                        yaxis_type="log", yaxis_exponentformat="power", shapes=shapes)


def singular_figure(full: Sequence[float], sliced: Sequence[float], title: str = "") -> go.Figure:
    """Singular values (descending) of a map at full width and sliced."""
    fig = go.Figure()
    for name, vals, color in (("full map", full, style.DENSE_COLOR),
                              ("sliced map", sliced, style.SLICED_COLOR)):
        fig.add_trace(go.Scatter(x=list(range(1, len(vals) + 1)), y=list(vals), mode="lines", name=name,
                                 line={"color": color}))
    return style.layout(fig, title, xaxis_title="index", yaxis_title="singular value", yaxis_type="log",
                        yaxis_dtick="D2")
