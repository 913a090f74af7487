"""The sweep explorer: predicted against measured perplexity and accuracy along d' over a live
`SweepRunner`; the slider moves the predictions (table lookups), "Measure d'" measures for real, and a
target box finds the narrowest width meeting a target in a few measured widths (`sweep.target`)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import pandas as pd

from .. import schema
from ..errors import UsageError
from ..predict import curves, predict_point
from ..predict.registry import headline, predictor_names
from ..sweep.runner import SweepRunner
from ..sweep.target import parse_target, search_width, target_lines
from ..viz.figures import error_figure, prediction_figure
from ..viz.tables import curve_table, error_summary, measured_table
from .base import Explorer, counted, live, redraw, slider
from .theory import prediction_html


def sweep_table(runner: SweepRunner) -> pd.DataFrame:
    """The measured rows (widest first): measured and predicted PPL with signed % errors, then the measured
    accuracies beside the paper's and the headline predictor's."""
    cols = ["dim", "sparsity", schema.measured("ppl")]
    cols += [c for p in predictor_names() for c in (schema.pred("ppl", p), schema.err(p))]
    cols += [schema.measured("acc")] + [schema.pred("acc", p)
                                        for p in dict.fromkeys(["paper", headline(runner.cfg.basis)])]
    cols += [schema.measured("mc_acc"), "seconds"]
    df = pd.DataFrame(runner.rows, columns=None if runner.rows else cols)
    df = df[[c for c in cols if c in df.columns]]
    return df.sort_values("dim", ascending=False).reset_index(drop=True)


class SweepBench(SweepRunner):
    """The notebook's name for a `SweepRunner`, with `table()` (`sweep_table`) for its points; open one with
    `SweepBench.open(cfg, out, widths=..., executor=...)`.

    Its "Measure d'" clicks go to its executor: with `executor=RayExecutor(address="HOST:PORT",
    gpus_per_point=1)` (`sweep/executors.py`) a slider session on a laptop measures each point as a task on
    the cluster's GPUs, while the predictions and the rows stay here (docs/ray.md)."""

    def table(self) -> pd.DataFrame:
        return sweep_table(self)


def sweep_explorer(bench: SweepRunner, dim: int = 432, min_dim: int | None = None) -> Explorer:
    """Predicted vs measured perplexity and accuracy against d'. The slider moves the predictions instantly
    (table lookups); "Measure d'" measures the slider's d' for real (`SweepRunner.measure`) and adds the
    point; the error of every predictor at the measured points is shown below (`viz.tables.error_summary`)."""
    D = bench.hidden
    min_dim = min_dim or max(8, D // 4)
    metrics = ["ppl", "acc"] + (["mc_acc"] if bench.dense.mc_acc is not None else [])
    dim_s = slider(dim, min_dim, D, "d'", step=8 if D >= 64 else 1, continuous=True)
    button = W.Button(description="Measure d'", button_style="warning", icon="flask",
                      tooltip=f"slice to the slider's d' ({bench.cfg.basis} bases) and evaluate")
    target_box = W.Text(value="ppl<=1.25x", description="target", layout=W.Layout(width="220px"),
                        tooltip="ppl<=1.25x, ppl<=20, acc>=0.4 or mc_acc>=0.8")
    find = W.Button(description="Find width", icon="bullseye",
                    tooltip="the narrowest width meeting the target, measuring at most three widths")
    answer = W.HTML()
    log = W.Output(layout=W.Layout(max_height="120px", overflow="auto"))
    table = W.HTML()
    ex = Explorer(box=W.VBox([]), controls={"dim": dim_s, "measure": button, "target": target_box,
                                            "find": find}, figures={},
                  outputs={"table": table, "log": log, "answer": answer})

    memo: dict[tuple, pd.DataFrame] = {}

    def where() -> str:
        """Where a measurement ran, when not in this process (a Ray cluster)."""
        ex = getattr(bench, "executor", None)
        return f", {ex.where()}" if ex is not None and ex.remote else ""

    def curve_rows() -> pd.DataFrame:
        """Made again after a measurement: measuring a width can add it to a statistic's widths."""
        key = (tuple(id(v) for v in bench.stats.values()), tuple(sorted(bench.measured())))
        if key not in memo:
            memo.clear()
            memo[key] = curve_table(curves(bench.dense, bench.stats, min_dim, measured=bench.measured()))
        return memo[key]

    def figures(at: dict | None = None) -> dict:
        mt, cv = measured_table(bench.rows), curve_rows()
        out = {m: prediction_figure(cv, m, mt, at=at) for m in metrics}
        out["error"] = error_figure(mt)
        return out

    ex.figures.update({k: live(f) for k, f in figures().items()})
    ex.box.children = [W.HBox([dim_s, button]), W.HBox([target_box, find]), answer, table, log,
                       *ex.figures.values()]

    def update(_: Any = None) -> None:
        d = int(dim_s.value)
        meas = bench.measured()
        pred = predict_point(bench.dense, d, bench.stats, measured=meas.get(d))
        ex.state.update(dim=d, **pred)
        for k, f in figures({"dim": d, **pred}).items():
            redraw(ex.figures[k], f)
        names = predictor_names()
        errs = [e for e in error_summary(list(meas.values())) if e["name"] in names]
        summary = "" if not errs else ("<br>mean |PPL error| over the measured points: " + ", ".join(
            f"{e['name']} {e['mean_abs_err']:.1f}% ({e['points']})" for e in errs))
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

    def find_now(_: Any = None) -> None:
        """Parse the target (a malformed one is one line in the box), search, print the curve around the
        answer and move the slider to it."""
        find.disabled = True
        try:
            with log:
                res = search_width(bench, parse_target(target_box.value), log=print)
        except UsageError as e:
            answer.value = f"<b>{html.escape(str(e))}</b>"
            return
        finally:
            find.disabled = False
        answer.value = "<pre>" + html.escape("\n".join(target_lines(res)), quote=False) + "</pre>"
        ex.state["target_answer"] = res.answer
        if res.answer is not None and res.answer != dim_s.value:
            dim_s.value = res.answer  # redraws through the slider
        else:
            update()

    dim_s.observe(counted(ex, update), names="value")
    button.on_click(counted(ex, measure_now))
    find.on_click(counted(ex, find_now))
    update()
    return ex
