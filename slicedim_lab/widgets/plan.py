"""The plan explorer: a parameter-budget slider over a `Planner` (dense-only tables, made once); each move
re-plans (milliseconds) and redraws the widths along depth with the per-site costs that chose them
(`viz.plan.plan_figure`), beside uniform slicing at the same count. `notebook_planner` makes the planner
of a notebook's setup, its tables kept in the notebooks' cache."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import ipywidgets as W
import pandas as pd

from ..cache import token_fingerprint
from ..errors import UsageError
from ..predict.plan import PlanTables, plan_tables, site_rows, uniform_dims
from ..predict.registry import DenseMetrics
from ..sweep.planned import Planner, make_planner
from ..viz.plan import plan_figure
from .base import Explorer, counted, live, redraw
from .setup import NotebookSetup


def notebook_planner(setup: NotebookSetup, batch_size: int = 4) -> Planner:
    """The planner of a notebook's model and windows: its dense metrics on the eval windows and the plan
    tables on the calibration and held-out gradient windows (both cached in the setup's store)."""
    if setup.grad is None:
        raise UsageError("planning needs gradient windows: notebook_setup(..., grad_windows=N)")
    ev = setup.dense_metrics(batch_size)
    dense = DenseMetrics(ppl=ev.ppl, acc=ev.accuracy, hidden=setup.hidden)
    model = setup.lm.model
    key = {"cal": token_fingerprint(setup.cal), "grad": token_fingerprint(setup.grad)}
    tables = setup.store.memo("plan-tables", key, lambda: plan_tables(model, setup.cal, setup.grad), asdict,
                              lambda p: PlanTables(**p))
    return make_planner(model, None, dense, tables=tables)


def plan_table(planner: Planner, fraction: float) -> tuple[pd.DataFrame, dict]:
    """The site table of the plan for `fraction` of the dense parameters, and a summary of the comparison."""
    c = planner.compare(int(fraction * planner.dense_params))
    uniform = uniform_dims(planner.n_sites, planner.tables.hidden, c.uniform_dim) if c.uniform_dim else None
    summary = {"budget": c.budget, "params": c.plan.params, "ppl_plan": c.plan_ppl,
               "uniform_dim": c.uniform_dim, "uniform_params": c.uniform_params, "ppl_uniform": c.uniform_ppl,
               "dims": c.plan.dims}
    return pd.DataFrame(site_rows(planner.tables, planner.cost, c.plan, uniform)), summary


def plan_explorer(planner: Planner, fraction: float = 0.84, lo: float = 0.5, hi: float = 1.0) -> Explorer:
    """A budget slider (fraction of the dense parameter count, `lo`…`hi`) over the planned widths."""
    budget = W.FloatSlider(value=fraction, min=lo, max=hi, step=0.005, description="params",
                           readout_format=".1%", continuous_update=False, layout=W.Layout(width="70%"))
    fig = live()
    status = W.HTML()
    ex = Explorer(box=W.VBox([budget, status, fig]), controls={"budget": budget}, figures={"plan": fig},
                  outputs={"status": status})

    def update(_: Any = None) -> None:
        try:
            table, s = plan_table(planner, budget.value)
        except UsageError as e:  # a budget no schedule meets: say so, keep the last figure
            status.value = f"<i>{e}</i>"
            return
        ex.state.update(s)
        uni = ("no uniform width fits" if s["uniform_dim"] is None else
               f"uniform d' = {s['uniform_dim']}: {s['uniform_params']:,} parameters, predicted PPL "
               f"{s['ppl_uniform']:.2f}")
        status.value = (f"planned: <b>{s['params']:,}</b> parameters, predicted PPL "
                        f"<b>{s['ppl_plan']:.2f}</b> &nbsp;|&nbsp; {uni} (dense-only predictions; "
                        "measure with <code>slicedim sweep --plan</code>)")
        redraw(fig, plan_figure(table, f"planned widths at {budget.value:.1%} of the dense parameters"))

    budget.observe(counted(ex, update), names="value")
    update()
    return ex
