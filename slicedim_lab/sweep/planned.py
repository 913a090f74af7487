"""Planned widths beside uniform ones: the planner behind `slicedim plan` and `slicedim sweep --plan`.

A `Planner` holds what planning reads — the dense model's metrics on the eval windows, the plan tables
(`predict.plan.plan_tables`: dense passes over the calibration and held-out gradient windows only) and the
exact parameter cost of a schedule (`core.size.width_cost`) — and answers any budget at once
(`Planner.compare`: the planned schedule and uniform slicing at the same count, both predicted by the same
statistic). `slicedim sweep --plan` (`run_planned_sweep`) measures, at each point of the sweep, uniform
slicing (the usual row) and the schedule planned for uniform's exact parameter count (the `plan_*` columns
of that row, `schema.planned`): the same calibration and eval windows, the same multiple-choice items.
The tables live in the sweep folder as `plan.pt`, the schedules in `plan.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import torch.nn as nn

from .. import schema
from ..core.sites import model_sites
from ..core.size import WidthCost, count_params, width_cost
from ..errors import UsageError
from ..files import write_json
from ..load.models import LoadedModel
from ..predict.plan import (
    RULE,
    Plan,
    PlanRule,
    PlanTables,
    plan_tables,
    plan_widths,
    uniform_at,
    uniform_dims,
    windows_digest,
)
from ..predict.registry import DenseMetrics, from_dloss
from . import point
from .config import SweepConfig
from .executors import Executor, PointsFailed, error_line
from .inputs import Inputs
from .runner import OpenSweep, SweepRunner, measured_row, open_sweep

PLAN_TABLES = "plan.pt"
PLAN_FILE = "plan.json"
Log = Callable[[str], None]


@dataclass
class Comparison:
    """A budget answered: the plan, and uniform slicing's widest width within the same count (None if no
    uniform width fits), each with its exact parameter count and predicted ΔL / perplexity."""

    budget: int
    plan: Plan
    uniform_dim: int | None
    uniform_params: int | None
    uniform_dloss: float | None
    plan_ppl: float
    uniform_ppl: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Planner:
    """Planning state made once from the dense model: its metrics, the plan tables and the width cost."""

    dense: DenseMetrics
    dense_params: int
    tables: PlanTables
    cost: WidthCost
    rule: PlanRule = RULE

    @property
    def n_sites(self) -> int:
        return self.tables.n_sites

    def uniform(self, dim: int) -> list[int]:
        return uniform_dims(self.n_sites, self.tables.hidden, dim)

    def plan(self, budget: int) -> Plan:
        return plan_widths(self.tables, self.cost, budget, self.rule)

    def compare(self, budget: int) -> Comparison:
        """The plan for `budget` and uniform slicing at (at most) the same count, predicted alike (a budget
        above the dense count is refused where it is asked for as a fraction, `predict.plan.budget_for`:
        uniform slicing at mild sparsity can itself hold more parameters than the dense model)."""
        plan = self.plan(budget)
        d = uniform_at(self.cost, budget)
        u_dl = self.tables.delta_loss(self.uniform(d)) if d is not None else None
        return Comparison(budget, plan, d, None if d is None else self.cost.count(self.uniform(d)), u_dl,
                          from_dloss(self.dense, plan.dloss).ppl,
                          None if u_dl is None else from_dloss(self.dense, u_dl).ppl)


def make_planner(model: nn.Module, inp: Inputs | None, dense: DenseMetrics, *, seed: int = 0,
                 tables: PlanTables | None = None, rule: PlanRule = RULE, progress: bool = True) -> Planner:
    """A planner for `model` from its windows (`inputs.load_inputs`): the tables made unless given."""
    if tables is None:
        tables = plan_tables(model, inp.cal_ids, inp.grad_ids, seed=seed, progress=progress)
    return Planner(dense, count_params(model), tables, width_cost(model), rule)


def tables_file(path: Path, model: nn.Module, inp: Inputs, seed: int, progress: bool, log: Log) -> PlanTables:
    """Plan tables kept in `path`: read back when they were made on these very windows (their digest) with
    this seed, for a model of this width and depth, else made from the dense model and saved."""
    want = {"windows": windows_digest(inp.cal_ids, inp.grad_ids), "seed": seed}
    if path.exists():
        t = PlanTables.load(path)
        same = t.hidden == model.config.hidden_size and len(t.labels) == len(model_sites(model))
        if {k: t.settings.get(k) for k in want} == want and same:
            return t
        log(f"{path}: made with other settings, made again")
    t = plan_tables(model, inp.cal_ids, inp.grad_ids, seed=seed, progress=progress)
    t.save(path)
    return t


def schedule_payload(c: Comparison, planner: Planner, model: str, corpus: str) -> dict:
    """What a schedule file holds: `site_dims` (what `--schedule` reads) and how they were chosen."""
    return {"site_dims": c.plan.dims, "model": model, "corpus": corpus, "labels": planner.tables.labels,
            "params": c.plan.params, "budget": c.budget, "dense_params": planner.dense_params,
            "predicted": {"dloss": c.plan.dloss, "ppl": c.plan_ppl, "dense_ppl": planner.dense.ppl},
            "uniform": {"dim": c.uniform_dim, "params": c.uniform_params, "dloss": c.uniform_dloss,
                        "ppl": c.uniform_ppl},
            "site_dloss": c.plan.site_dloss, "rule": c.plan.settings,
            "statistic": planner.tables.settings}


# ----------------------------------------------------------------------------- sweep --plan


def plan_columns(m: point.Measured, c: Comparison) -> dict:
    """A planned point's columns (`schema.planned` of the measured ones, and the plan's own)."""
    row = measured_row(m, 0.0)
    keep = {k: v for k, v in row.items() if k not in ("dim", "sparsity")}
    out = {schema.planned(k): v for k, v in keep.items()}
    out[schema.planned("dims")] = ",".join(map(str, c.plan.dims))
    out[schema.planned("budget")] = c.budget
    out[schema.planned("dloss_pred")] = c.plan.dloss
    out[schema.planned("ppl_pred")] = c.plan_ppl
    out[schema.planned("dloss_pred_uniform")] = c.uniform_dloss
    out[schema.planned("ppl_pred_uniform")] = c.uniform_ppl
    return out


def plan_points(runner: SweepRunner, planner: Planner, dims: list[int]) -> dict[int, Comparison]:
    """For every uniform width of the sweep (below D), the plan at uniform's exact parameter count."""
    return {d: planner.compare(planner.cost.count(planner.uniform(d))) for d in dims if d < runner.hidden}


def measure_plans(runner: SweepRunner, plans: dict[int, Comparison], log: Log) -> dict[int, str]:
    """Measure every plan whose row has no planned columns yet (the executor runs
    `point.measure_planned`), merging them into the uniform rows as they finish; returns the failures."""
    have = {int(r["dim"]) for r in runner.rows if r.get(schema.planned(schema.measured("ppl"))) is not None}
    todo = [d for d in plans if d not in have]
    failed: dict[int, str] = {}
    if not todo:
        return failed
    with closing(runner.map_points(point.measure_planned, todo)) as outcomes:
        for done in outcomes:
            if done.error is not None:
                failed[done.dim] = error_line(done.error)
                log(f"plan at d'={done.dim:4d} failed: {failed[done.dim]}")
                continue
            cols = plan_columns(done.result, plans[done.dim])
            runner.merge(done.dim, cols)
            log(plan_line(runner.measured()[done.dim]))
    return failed


def plan_line(row: dict) -> str:
    """One log line: uniform and planned perplexity at the same parameter count."""
    u, p = row[schema.measured("ppl")], row[schema.planned(schema.measured("ppl"))]
    return (f"d'={row['dim']:4d} uniform ppl {u:.3f} ({row['params']:,} params)  planned ppl {p:.3f} "
            f"({row[schema.planned('params')]:,} params)  {100 * (p / u - 1):+.1f}%")


def run_planned_sweep(cfg: SweepConfig, out: str | Path, *, sparsities: list[float] | None = None,
                      dims: list[int] | None = None, fresh: bool = False, batch_size: int = 4,
                      device: str = "auto", progress: bool = True, report: bool = True, log: Log = print,
                      executor: Executor | None = None, lm: LoadedModel | None = None,
                      rule: PlanRule = RULE) -> list[dict]:
    """`slicedim sweep --plan`: the sweep (uniform points), the plans for their parameter counts (dense-only,
    made before anything is sliced), then the planned points measured and set beside them; the report."""
    sweep: OpenSweep = open_sweep(cfg, out, lm=lm, device=device, batch_size=batch_size, fresh=fresh,
                                  progress=progress, log=log, executor=executor)
    try:
        points = sweep.with_anchors(sweep.points(sparsities, dims))
        runner = SweepRunner(sweep, [d for d, _ in points])
        model = sweep.inp.model
        tables = tables_file(Path(out) / PLAN_TABLES, model, sweep.inp, cfg.seed, progress, log)
        planner = make_planner(model, sweep.inp, runner.dense, tables=tables, rule=rule)
        plans = plan_points(runner, planner, [d for d, _ in points])
        write_json(Path(out) / PLAN_FILE, {str(d): schedule_payload(c, planner, cfg.model, cfg.corpus)
                                           for d, c in plans.items()})
        runner.schedules = {d: c.plan.dims for d, c in plans.items()}
        runner.run(points, report=False)
        failed = measure_plans(runner, plans, log)
        if failed:
            raise PointsFailed(failed, runner.out)
        return runner.run(points, report=report)  # nothing left to measure: predictions refreshed, report
    finally:
        sweep.executor.close()


def read_plans(out: str | Path) -> dict[int, dict]:
    """DIR/plan.json: the schedule planned at each uniform width, with its predictions."""
    f = Path(out) / PLAN_FILE
    if not f.exists():
        raise UsageError(f"{out} holds no plan ({PLAN_FILE}); run slicedim sweep --plan")
    return {int(k): v for k, v in json.loads(f.read_text()).items()}
