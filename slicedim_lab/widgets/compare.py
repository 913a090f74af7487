"""Two models side by side: each model's tables from its notebook setup (dense PCA spectra, perplexity
measured at a few widths in dense bases, and — where asked — predicted curves), and a sparsity slider over
`viz.compare.two_models_figure`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import pandas as pd

from ..core.sites import model_sites
from ..core.widths import dim_for_sparsity
from ..flow.tables import spectrum_table
from ..predict import curves
from ..predict.registry import DenseMetrics
from ..viz import compare as vc
from ..viz.tables import curve_table
from .base import Explorer, counted, live, redraw
from .setup import NotebookSetup


@dataclass
class ModelTables:
    """One model's tables for the comparison (`viz.compare`): its name and width, spectra, measured and
    predicted rows."""

    name: str
    hidden: int
    spectra: pd.DataFrame
    measured: pd.DataFrame
    predicted: pd.DataFrame


def model_tables(setup: NotebookSetup, sparsities: Sequence[float], predictors: Sequence[str] = (),
                 batch_size: int = 4, name: str | None = None) -> ModelTables:
    """The comparison tables of the model of `setup` (all from its cache once made): the dense PCA's spectra,
    perplexity measured with dense bases at the widths of `sparsities`, and the curves of `predictors` (none:
    no predictor runs; they need `setup.grad`, the Fisher gradient windows, for the Fisher family)."""
    name = name or setup.lm.name
    D, model = setup.hidden, setup.lm.model
    pcas = setup.dense_pcas(batch_size)
    spectra = spectrum_table(pcas, "dense", model_sites(model)).assign(model=name)
    dense = setup.dense_metrics(batch_size)
    rows = []
    for s in sparsities:
        d = setup.width(s)
        rows.append([name, d, 1 - d / D, setup.projected_metrics(d, pcas, batch_size).ppl, dense.ppl])
    measured = pd.DataFrame(rows, columns=vc.MEASURED_COLUMNS)
    predicted = pd.DataFrame(columns=vc.PREDICTED_COLUMNS)
    if predictors:
        tables = setup.fisher_tables(pcas)
        dm = DenseMetrics(ppl=dense.ppl, acc=dense.accuracy, hidden=D, cal_nll=tables.cal_nll)
        cv = curve_table(curves(dm, {"fisher": tables}, max(8, D // 4)))
        predicted = vc.predicted_rows(cv, name, D, dense.ppl, predictors)
    return ModelTables(name, D, spectra, measured, predicted)


def comparison_table(models: Sequence[ModelTables], sparsity: float) -> pd.DataFrame:
    """Per model at `sparsity`: width, d', mean and largest fraction of energy the sites discard, and the
    measured perplexity ratio nearest that sparsity."""
    rows = []
    for m in models:
        d = dim_for_sparsity(sparsity, m.hidden)
        lost = vc.discarded_along_depth(m.spectra, d)["discarded"]
        me = m.measured.iloc[(m.measured["sparsity"] - sparsity).abs().argsort()[:1]]
        ratio = float((me["ppl"] / me["ppl_dense"]).iloc[0]) if len(me) else float("nan")
        rows.append({"model": m.name, "D": m.hidden, "d'": d, "discarded_mean": float(lost.mean()),
                     "discarded_max": float(lost.max()), "measured s": float(me["sparsity"].iloc[0])
                     if len(me) else float("nan"), "PPL / dense": ratio})
    return pd.DataFrame(rows)


def two_models_explorer(models: Sequence[ModelTables], sparsity: float = 0.25) -> Explorer:
    """A sparsity slider over `viz.compare.two_models_figure`: each model's spectrum at mid-depth, the energy
    its sites discard at its width of s, and perplexity (measured, predicted) against s. Moves redraw from the
    tables: instant."""
    spectra = pd.concat([m.spectra for m in models], ignore_index=True)
    measured = pd.concat([m.measured for m in models], ignore_index=True)
    predicted = pd.concat([m.predicted for m in models if len(m.predicted)] or [models[0].predicted],
                          ignore_index=True)
    s_slider = W.FloatSlider(value=sparsity, min=0.05, max=0.75, step=0.05, description="s",
                             continuous_update=False, readout_format=".2f", layout=W.Layout(width="70%"))
    fig, table = live(), W.HTML()
    ex = Explorer(box=W.VBox([s_slider, table, fig]), controls={"sparsity": s_slider},
                  figures={"models": fig}, outputs={"table": table})

    def update(_: Any = None) -> None:
        s = float(s_slider.value)
        dims = {m.name: dim_for_sparsity(s, m.hidden) for m in models}
        ex.state.update(sparsity=s, dims=dims, table=comparison_table(models, s))
        table.value = ex.state["table"].round(4).to_html(index=False)
        redraw(fig, vc.two_models_figure(spectra, measured, predicted, dims, s))

    s_slider.observe(counted(ex, update), names="value")
    update()
    return ex
