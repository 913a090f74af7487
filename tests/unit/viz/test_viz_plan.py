"""The plan figures from hand-made tables (no model), and the plan explorer's budget slider over a tiny
model's planner (a move re-plans and redraws)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from tiny_fixtures import tiny64, token_ids

from slicedim_lab import schema
from slicedim_lab.core.size import count_params
from slicedim_lab.predict.registry import DenseMetrics
from slicedim_lab.sweep.planned import make_planner
from slicedim_lab.viz.plan import plan_figure, plan_sweep_figure, plan_table_html, planned_rows
from slicedim_lab.widgets.plan import plan_explorer, plan_table


def site_table() -> pd.DataFrame:
    return pd.DataFrame({"site": [0, 1, 2], "label": ["embed", "L0 attn", "L0 mlp"], "dim": [64, 40, 64],
                         "dim_uniform": [48, 48, 64], "dloss": [0.0, 0.02, 0.0],
                         "dloss_uniform": [0.01, 0.015, 0.0], "params_per_dim": [300, 500, 200],
                         "price": [math.nan, 1e-6, math.nan], "energy_kept": [1.0, 0.97, 1.0]})


def sweep_rows() -> list[dict]:
    def row(dim: int, params: int, ppl: float, planned: float | None) -> dict:
        r = {"dim": dim, "params": params, schema.measured("ppl"): ppl, schema.measured("acc"): 0.4}
        if planned is not None:
            r.update({schema.planned("params"): params - 100, schema.planned("dims"): "64,40,64",
                      schema.planned(schema.measured("ppl")): planned,
                      schema.planned("ppl_pred"): planned * 1.1,
                      schema.planned("ppl_pred_uniform"): ppl * 1.1,
                      schema.planned(schema.measured("acc")): 0.42})
        return r

    return [row(576, 1000, 13.0, None), row(400, 800, 25.0, 21.0), row(288, 600, 48.0, 40.0)]


def test_plan_figure_draws_widths_and_charges() -> None:
    fig = plan_figure(site_table())
    names = [t.name for t in fig.data]
    assert names == ["uniform width", "planned width", "ΔL charged, uniform", "ΔL charged, planned"]
    assert list(fig.data[1].y) == [64, 40, 64] and list(fig.data[3].y) == [0.0, 0.02, 0.0]


def test_plan_sweep_figure_and_table() -> None:
    rows = sweep_rows()
    assert [r["dim"] for r in planned_rows(rows)] == [288, 400]
    fig = plan_sweep_figure(rows)
    measured = {t.name: (list(t.x), list(t.y)) for t in fig.data if t.name.startswith("measured")}
    assert measured["measured: uniform"] == ([600, 800], [48.0, 25.0])
    assert measured["measured: planned"] == ([500, 700], [40.0, 21.0])
    text = plan_table_html(rows)
    assert "Planned widths vs uniform slicing" in text and "-16.0%" in text and "64,40,64" in text
    assert plan_table_html(rows[:1]) == ""


@pytest.fixture(scope="module")
def planner():
    model = tiny64("llama", tied=True)
    dense = DenseMetrics(ppl=200.0, acc=0.1, hidden=64)
    inp = type("Inp", (), {"cal_ids": token_ids(4, 16, 1), "grad_ids": token_ids(2, 16, 2)})()
    return make_planner(model, inp, dense, progress=False), count_params(model)


def test_plan_explorer_replans_on_a_budget_move(planner) -> None:
    p, dense_params = planner
    table, summary = plan_table(p, 0.95)
    assert list(table["dim"]) == summary["dims"] and summary["params"] <= 0.95 * dense_params
    ex = plan_explorer(p, fraction=0.95, lo=0.05, hi=1.0)
    first = list(ex.figures["plan"].data[1].y)
    ex.controls["budget"].value = 0.7
    assert ex.calls == 1 and ex.state["params"] <= 0.7 * dense_params
    assert list(ex.figures["plan"].data[1].y) != first and sum(ex.figures["plan"].data[1].y) < sum(first)
    ex.controls["budget"].value = 0.05  # below the smallest schedule: said in the status line, figure kept
    assert "below the smallest schedule" in ex.outputs["status"].value
