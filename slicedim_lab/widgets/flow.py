"""The flow explorer: sliders for d' and layer over a `FlowSession`, drawing the `viz.flow` and
`viz.spectra` figures of its reports (a report per (basis, d') is cached, so revisiting costs nothing)."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as W

from ..flow.session import FlowReport, FlowSession
from ..flow.tables import spectrum_table
from ..viz import flow as vf
from ..viz.spectra import layer_spectra_figure
from .base import Explorer, counted, default_width, live, redraw, slider


class ReportCache:
    """FlowSession reports by (basis, d', extra options), so revisiting a slider position costs nothing."""

    def __init__(self, session: FlowSession, **kwargs: Any):
        self.session, self.kwargs = session, kwargs
        self.reports: dict[tuple, FlowReport] = {}

    def get(self, dim: int, basis: str, **kwargs: Any) -> FlowReport:
        opts = {**self.kwargs, **kwargs}
        key = (basis, dim, tuple(sorted(opts.items())))
        if key not in self.reports:
            if basis == "interleaved":  # one interleaved calibration is held at a time: keep its reports few
                self.reports = {k: v for k, v in self.reports.items() if k[0] == "dense"}
            self.reports[key] = self.session.report(dim, basis, **opts)
        return self.reports[key]


LAYER_KEYS = ("rel_error", "cosine", "lens_kl", "retained_eval")


def flow_explorer(session: FlowSession, dim: int | None = None, layer: int | None = None,
                  basis: str = "dense", attribution: bool = False, nodes: int = 2) -> Explorer:
    """Sliders for d' and layer over a `flow.FlowSession`: the layer's eigen-spectra with the cut, and along
    depth the energy discarded, the residual stream's relative error and cosine, the logit-lens KL and loss,
    and — while the "prediction decomposition" box is ticked (`attribution`; gradient passes with `nodes`
    Gauss-Legendre nodes, several times slower) — each site's share of the loss increase. A d' move costs one
    emulated forward pass with dense bases (no recalibration); "interleaved" recalibrates per d'. Moving the
    layer is instant."""
    D, L = session.D, session.L
    dim, layer = dim or default_width(D), L // 2 if layer is None else layer
    cache = ReportCache(session, maps=False)
    spectra_t = spectrum_table(session.pcas)
    dim_s = slider(dim, 8, D, "d'", step=8)
    layer_s = slider(min(layer, L - 1), 0, L - 1, "layer")
    basis_s = W.ToggleButtons(options=["dense", "interleaved"], value=basis, description="bases",
                              tooltips=["dense PCA: no recalibration per d'",
                                        "SliceGPT: one calibration per d'"])
    attr_box = W.Checkbox(value=attribution, description="prediction decomposition (slower)", indent=False)
    status = W.HTML()
    names = ("spectra", "energy", "error", "kl", "attribution")
    figures = {k: live() for k in names}  # drawn by the first draw_dim below
    ex = Explorer(box=W.VBox([dim_s, layer_s, W.HBox([basis_s, attr_box]), status, *figures.values()]),
                  controls={"dim": dim_s, "layer": layer_s, "basis": basis_s, "attribution": attr_box},
                  figures=figures, outputs={"status": status})

    def draw_layer(_: Any = None) -> None:
        i, d, rep = layer_s.value, ex.state["dim"], ex.state["report"]
        t = rep.table
        redraw(figures["spectra"], layer_spectra_figure(spectra_t, i, d))
        redraw(figures["energy"], vf.energy_figure(t, d, i))
        redraw(figures["error"], vf.error_figure(t, d, i))
        redraw(figures["kl"], vf.lens_figure(t, d, i))
        summary = rep.summary if attr_box.value else None
        redraw(figures["attribution"], vf.attribution_figure(t, d, summary, i))
        row = rep.per_layer().set_index("layer").loc[i]
        shown = {k: float(row[k]) for k in LAYER_KEYS if k in row}
        ex.state["layer_row"] = shown
        status.value = (ex.state["summary_html"] + f"<br>layer {i} (its MLP site): "
                        + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))

    def draw_dim(_: Any = None) -> None:
        d, b = int(dim_s.value), basis_s.value
        status.value = f"<i>computing d' = {d} ({b} bases)…</i>"
        t0 = time.perf_counter()
        rep = cache.get(d, b, attribution=nodes if attr_box.value else None)
        sm = rep.summary
        ex.state.update(report=rep, dim=d, basis=b, seconds=time.perf_counter() - t0, **sm)
        ex.state["summary_html"] = (
            f"<b>d' = {d}</b>, {b} bases: PPL {sm['ppl_dense']:.3f} → <b>{sm['ppl_sliced']:.3f}</b>, top-1 "
            f"{sm['accuracy_dense']:.4f} → {sm['accuracy_sliced']:.4f}, KL {sm['kl']:.4f} nats "
            f"({ex.state['seconds']:.1f} s)")
        draw_layer()

    dim_cb = counted(ex, draw_dim)
    for c in (dim_s, basis_s, attr_box):
        c.observe(dim_cb, names="value")
    layer_s.observe(counted(ex, draw_layer), names="value")
    draw_dim()
    return ex
