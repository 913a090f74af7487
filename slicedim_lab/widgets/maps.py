"""The maps explorer: how a layer's linear maps split into kept and dropped directions at d', over a
`FlowSession` (`viz.flow` map figures), and the tables the notebook prints beside it."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as W
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..core.sites import layer_of_map
from ..flow.maps import map_weight
from ..flow.session import FlowSession
from ..viz import flow as vf
from .base import Explorer, counted, default_width, live, redraw, slider
from .flow import ReportCache

map_layer = layer_of_map


def map_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-map rows of a flow table, with `map_layer` (see `map_layer`) and a readable `label`."""
    t = table[table["map"] != ""].copy()
    t["map_layer"] = [map_layer(r, s) for r, s in zip(t["role"], t["site"])]
    t["label"] = [f"{m}<br>({r})" for m, r in zip(t["map"], t["role"])]
    return t


def map_singular_values(
    session: FlowSession, dim: int, map_index: int, basis: str = "dense"
) -> tuple[Float[Tensor, " r"], Float[Tensor, " r_sliced"]]:
    """Singular values (descending) of one map of `flow.linear_maps` at full width and sliced to `dim` with
    `basis` bases: a reader keeps W B (its input restricted to the kept directions), a writer BᵀW."""
    m = session.maps[map_index]
    bases, _ = session.bases(dim, basis)
    B = bases[m["site"]].double()
    w = map_weight(m)
    ws = w @ B if m["role"] == "reader" else B.T @ w
    return torch.linalg.svdvals(w), torch.linalg.svdvals(ws)


def layer_maps_table(maps: pd.DataFrame, layer: int, weight_kept: dict | None = None) -> pd.DataFrame:
    """One row per map of decoder layer `layer` (rows of `map_table`), one column per metric; with
    `weight_kept` ((map, role) -> share, a maps explorer's `state["weight_kept"]`) that column too."""
    t = maps[maps["map_layer"] == layer]
    df = t.pivot_table(index=["map", "role", "site"], columns="metric", values="value").reset_index()
    if weight_kept:
        df["weight_kept"] = [weight_kept.get((m, r)) for m, r in zip(df["map"], df["role"])]
    df.columns.name = None
    return df


def maps_explorer(session: FlowSession, dim: int | None = None, layer: int | None = None, basis: str = "dense"
                  ) -> Explorer:
    """How a layer's linear maps split into kept and dropped directions at d' (`flow.FlowSession` map rows):
    the share of each map's output energy (on dense eval activations) carried by the kept / dropped
    directions and the share of its weight energy that survives (from the singular values of the layer's
    maps, computed on demand); along depth, the dropped share of every map; and the singular values of one
    map, full against sliced. Sliders for d' and layer, a dropdown for the map."""
    D, L = session.D, session.L
    dim, layer = dim or default_width(D), L // 2 if layer is None else layer
    cache = ReportCache(session, attribution=None, maps=True)
    dim_s = slider(dim, 8, D, "d'", step=8)
    layer_s = slider(min(layer, L - 1), 0, L - 1, "layer")

    def layer_maps(i: int) -> list[tuple[str, int]]:
        return [(f"{m['map']} ({m['role']})", k) for k, m in enumerate(session.maps)
                if map_layer(m["role"], m["site"]) == i]

    map_s = W.Dropdown(options=layer_maps(layer_s.value), description="map")
    status = W.HTML()
    figures = {"maps": live(), "depth": live(), "singular": live()}
    ex = Explorer(box=W.VBox([dim_s, layer_s, map_s, status, *figures.values()]),
                  controls={"dim": dim_s, "layer": layer_s, "map": map_s}, figures=figures,
                  outputs={"status": status})
    sv_cache: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def singular(d: int, k: int) -> tuple[Tensor, Tensor]:
        if (d, k) not in sv_cache:
            sv_cache[(d, k)] = map_singular_values(session, d, k, basis)
        return sv_cache[(d, k)]

    def draw_sv(_: Any = None) -> None:
        if map_s.value is None or ex.state.get("quiet"):
            return
        d = int(dim_s.value)
        full, sliced = singular(d, map_s.value)
        m = session.maps[map_s.value]
        ratio = float(sliced[0] / full[0])
        title = (f"singular values of layer {layer_s.value} {m['map']} ({m['role']} of site {m['site']}): "
                 f"σ₁ sliced/full = {ratio:.4f}, rank ≤ {min(d, len(full))}")
        redraw(figures["singular"], vf.singular_figure(full.tolist(), sliced.tolist(), title))
        ex.state.update(map=m["map"], sigma1_ratio=ratio)

    def draw_layer(_: Any = None) -> None:
        i, d = layer_s.value, ex.state["dim"]
        kept_w = {}
        for _label, k in layer_maps(i):  # ‖sliced W‖²_F / ‖W‖²_F = Σσ_sliced² / Σσ_full²
            full, sliced = singular(d, k)
            m = session.maps[k]
            kept_w[(m["map"], m["role"])] = float(sliced.square().sum() / full.square().sum())
        ex.state["weight_kept"] = kept_w
        redraw(figures["maps"], vf.map_bars_figure(ex.state["maps"], i, d, kept_w))
        redraw(figures["depth"], vf.map_depth_figure(ex.state["maps"], d, i, layers=(0, L)))
        options = layer_maps(i)
        current = map_s.value
        ex.state["quiet"] = True  # the dropdown's own callback stays quiet while its options change
        try:
            map_s.options = options
            if current in [k for _, k in options]:
                map_s.value = current
        finally:
            ex.state["quiet"] = False
        draw_sv()

    def draw_dim(_: Any = None) -> None:
        d = int(dim_s.value)
        status.value = f"<i>computing d' = {d}…</i>"
        t0 = time.perf_counter()
        rep = cache.get(d, basis)
        ex.state.update(report=rep, maps=map_table(rep.table), dim=d, seconds=time.perf_counter() - t0)
        sm = rep.summary
        status.value = (f"<b>d' = {d}</b> ({basis} bases): PPL {sm['ppl_dense']:.3f} → "
                        f"{sm['ppl_sliced']:.3f}, KL {sm['kl']:.4f} nats ({ex.state['seconds']:.1f} s)")
        draw_layer()

    dim_s.observe(counted(ex, draw_dim), names="value")
    layer_s.observe(counted(ex, draw_layer), names="value")
    map_s.observe(counted(ex, draw_sv), names="value")
    draw_dim()
    return ex
