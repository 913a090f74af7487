"""The theory explorer: a d' slider over every predictor's perplexity (`viz.figures.prediction_figure`)
and where along depth the Fisher predictor charges the loss (`viz.figures.sites_figure`), plus the HTML
table of predictions at the slider that the sweep explorer shows too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import pandas as pd

from .. import schema
from ..predict import curves, predict_point
from ..predict.fisher import FisherTables
from ..predict.registry import DenseMetrics, predictor_names
from ..viz.figures import prediction_figure, sites_figure
from ..viz.style import TABLE_CSS
from ..viz.tables import curve_table, site_table
from .base import Explorer, counted, default_width, live, redraw, slider


def prediction_html(dim: int, hidden: int, pred: Mapping[str, float], row: Mapping[str, Any] | None) -> str:
    """HTML: each predictor's PPL (and accuracy) at d', with its signed error where `pred` holds one
    (`predict_point(..., measured=row)`: d' was measured; `row` holds `schema.measured("ppl")`, optionally
    the measured accuracy)."""
    head = f"<b>d' = {dim}</b> (s = {1 - dim / hidden:.3f})"
    cells = ["<tr><th>predictor</th><th>PPL</th><th>top-1 acc</th><th>PPL error</th></tr>"]
    meas = None if row is None else row[schema.measured("ppl")]
    for p in predictor_names():
        ppl, acc = pred.get(schema.pred("ppl", p)), pred.get(schema.pred("acc", p))
        if ppl is None:
            continue
        err = "" if pred.get(schema.err(p)) is None else f"{pred[schema.err(p)]:+.1f}%"
        acc_s = "" if acc is None else f"{acc:.4f}"
        cells.append(f"<tr><td>{p}</td><td>{ppl:.3f}</td><td>{acc_s}</td><td>{err}</td></tr>")
    if row is not None:
        acc = row.get(schema.measured("acc"))
        cells.append(f"<tr><td><b>measured</b></td><td><b>{meas:.3f}</b></td>"
                     f"<td>{'' if acc is None else f'{acc:.4f}'}</td><td></td></tr>")
    else:
        cells.append("<tr><td colspan=4><i>not measured at this d'</i></td></tr>")
    return f"{head}{TABLE_CSS}<table class='sdl-table'>{''.join(cells)}</table>"


def theory_explorer(dense: DenseMetrics, tables: FisherTables, measured: dict[int, float] | None = None,
                    dim: int | None = None, min_dim: int | None = None) -> Explorer:
    """A d' slider over the paper's law and the Fisher-increment predictions of perplexity, with measured
    points; below, where along depth the Fisher estimate charges the loss at that d' (½·mean_t (g_s·δ_s)²
    per site) next to the fraction of energy each site discards. Moves are table lookups, nothing else."""
    D = dense.hidden
    dim, min_dim = dim or default_width(D), min_dim or max(8, D // 4)
    measured, stats = dict(measured or {}), {"fisher": tables}
    cv = curve_table(curves(dense, stats, min_dim, measured=measured))
    mt = pd.DataFrame({"dim": list(measured), schema.measured("ppl"): list(measured.values())})
    mt = mt.sort_values("dim").reset_index(drop=True)
    dim_s = slider(dim, min_dim, D, "d'", step=8 if D >= 64 else 1, continuous=True)
    ppl, sites = live(prediction_figure(cv, "ppl", mt)), live(sites_figure(site_table(tables.site_rows([D]))))
    table = W.HTML()
    ex = Explorer(box=W.VBox([dim_s, table, ppl, sites]), controls={"dim": dim_s},
                  figures={"ppl": ppl, "sites": sites}, outputs={"table": table})

    def update(_: Any = None) -> None:
        d = int(dim_s.value)
        row = {schema.measured("ppl"): measured[d]} if d in measured else None
        pred = predict_point(dense, d, stats, measured=row)
        ex.state.update(dim=d, **pred)
        redraw(ppl, prediction_figure(cv, "ppl", mt, at={"dim": d, **pred}))
        redraw(sites, sites_figure(site_table(tables.site_rows([d]))))
        table.value = prediction_html(d, D, pred, row)

    dim_s.observe(counted(ex, update), names="value")
    update()
    return ex
