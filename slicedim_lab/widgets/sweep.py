"""The sweep explorer: predicted against measured perplexity and accuracy along d' over a live
`SweepRunner`; the slider moves the predictions (table lookups), "Measure d'" measures for real."""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import pandas as pd

from .. import schema
from ..predict import predict_point
from ..predict.registry import ours, predictor_names
from ..sweep.runner import SweepRunner
from ..viz.figures import error_figure, prediction_figure
from ..viz.tables import default_curves, measured_table
from .base import Explorer, counted, live, redraw, slider
from .theory import prediction_html


def sweep_table(runner: SweepRunner) -> pd.DataFrame:
    """The measured rows (widest first): measured and predicted PPL with signed % errors, then the measured
    accuracies beside the paper's and the headline predictor's."""
    cols = ["dim", "sparsity", schema.measured("ppl")]
    cols += [c for p in predictor_names() for c in (schema.pred("ppl", p), schema.err(p))]
    cols += [schema.measured("acc")] + [schema.pred("acc", p) for p in dict.fromkeys(["paper",
                                                                                      ours(runner.cfg.basis)])]
    cols += [schema.measured("mc_acc"), "seconds"]
    df = pd.DataFrame(runner.rows, columns=None if runner.rows else cols)
    df = df[[c for c in cols if c in df.columns]]
    return df.sort_values("dim", ascending=False).reset_index(drop=True)


class SweepBench(SweepRunner):
    """The notebook's name for a `SweepRunner`, with `table()` (`sweep_table`) for its points.

    Its "Measure d'" clicks go to its executor: with `executor=RayExecutor(address="HOST:PORT",
    gpus_per_point=1)` (`sweep/executors.py`) a slider session on a laptop measures each point as a task on
    the cluster's GPUs, while the predictions and the rows stay here (docs/ray.md)."""

    def table(self) -> pd.DataFrame:
        return sweep_table(self)


def sweep_explorer(bench: SweepRunner, dim: int = 432, min_dim: int | None = None) -> Explorer:
    """Predicted vs measured perplexity and accuracy against d'. The slider moves the predictions instantly
    (table lookups); "Measure d'" measures the slider's d' for real (`SweepRunner.measure`) and adds the
    point; the error of every predictor at the measured points is shown below."""
    if bench.dense is None:
        bench.ensure_semi([])
    D = bench.hidden
    min_dim = min_dim or max(8, D // 4)
    metrics = ["ppl", "acc"] + (["mc_acc"] if bench.dense.mc_acc is not None else [])
    dim_s = slider(dim, min_dim, D, "d'", step=8 if D >= 64 else 1, continuous=True)
    button = W.Button(description="Measure d'", button_style="warning", icon="flask",
                      tooltip=f"slice to the slider's d' ({bench.cfg.basis} bases) and evaluate")
    log = W.Output(layout=W.Layout(max_height="120px", overflow="auto"))
    table = W.HTML()
    ex = Explorer(box=W.VBox([]), controls={"dim": dim_s, "measure": button}, figures={},
                  outputs={"table": table, "log": log})

    memo: dict[tuple, pd.DataFrame] = {}

    def where() -> str:
        """Where a measurement ran, when not in this process (a Ray cluster)."""
        ex = getattr(bench, "executor", None)
        return f", {ex.where()}" if ex is not None and ex.remote else ""

    def curves() -> pd.DataFrame:
        """Recomputed after a measurement: measuring a width adds it to the semi-interleaved tables."""
        key = (id(bench.tables), id(bench.ours), tuple(sorted(bench.measured())))
        if key not in memo:
            memo.clear()
            memo[key] = default_curves(bench.dense, bench.stats, min_dim, measured=bench.measured())
        return memo[key]

    def figures(d: int | None = None) -> dict:
        at = None if d is None else {"dim": d, **predict_point(bench.dense, d, bench.stats)}
        mt, cv = measured_table(bench.rows), curves()
        out = {m: prediction_figure(cv, m, mt, at=at) for m in metrics}
        out["error"] = error_figure(mt)
        return out

    ex.figures.update({k: live(f) for k, f in figures().items()})
    ex.box.children = [W.HBox([dim_s, button]), table, log, *ex.figures.values()]

    def update(_: Any = None) -> None:
        d = int(dim_s.value)
        pred = predict_point(bench.dense, d, bench.stats)
        ex.state.update(dim=d, **pred)
        for k, f in figures(d).items():
            redraw(ex.figures[k], f)
        meas = bench.measured()
        summary = ""
        if meas:
            errs = {p: [abs(r[schema.err(p)]) for r in meas.values() if r.get(schema.err(p)) is not None]
                    for p in predictor_names()}
            summary = ("<br>mean |PPL error| over the measured points: "
                       + ", ".join(f"{p} {sum(v) / len(v):.1f}% ({len(v)})" for p, v in errs.items() if v))
        table.value = prediction_html(d, D, pred, meas.get(d)) + summary

    def measure_now(_: Any = None) -> None:
        d = int(dim_s.value)
        button.disabled, button.description = True, f"measuring d'={d}…"
        failed: BaseException | None = None
        try:
            with log:  # progress bars show in the box; an Output context would swallow an exception
                try:
                    row = bench.measure(d)
                    ppl, acc = row[schema.measured("ppl")], row[schema.measured("acc")]
                    print(f"measured d'={d}: PPL {ppl:.3f}, top-1 {acc:.4f} ({row['seconds']:.0f} s, "
                          f"{bench.cfg.basis} bases{where()})")
                    ex.state["last_measured"] = row
                except Exception as e:  # shown in the box, then raised to the caller
                    print(f"measuring d'={d} failed: {type(e).__name__}: {e}")
                    failed = e
        finally:
            button.disabled, button.description = False, "Measure d'"
        if failed is not None:
            raise failed
        update()

    dim_s.observe(counted(ex, update), names="value")
    button.on_click(counted(ex, measure_now))
    update()
    return ex
