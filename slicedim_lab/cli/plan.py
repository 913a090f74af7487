"""`slicedim plan`: per-site widths for a parameter budget, planned from the dense model alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..files import write_json as write_file
from ..load.corpus import CORPUS_HELP
from ..predict.plan import RULE, PlanTables, budget_for
from ..predict.registry import DenseMetrics
from ..sweep.config import SweepConfig
from ..sweep.inputs import load_inputs, measure
from ..sweep.planned import Comparison, Planner, make_planner, schedule_payload, tables_file
from .common import add_common_options, check_positive, write_json


def add_plan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="per-site widths for a parameter budget, from the dense model alone")
    add_common_options(p)
    p.add_argument("--corpus", default="python-docs", help=CORPUS_HELP)
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--params", type=float, help="budget: this fraction of the dense parameter count")
    budget.add_argument("--sparsity", type=float,
                        help="budget: as many parameters as uniform slicing at s (d' = int((1-s) D), rounded "
                             "down to a multiple of 8, the head's input full)")
    p.add_argument("--out", default="plan.json",
                   help="the schedule file to write (what slice --schedule reads; default plan.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--tables", default=None, metavar="PATH",
                   help="keep the plan tables in PATH: reused by a later plan with the same windows")
    p.add_argument("--cal-samples", type=int, default=32, help="calibration windows of the PCA (default 32)")
    p.add_argument("--cal-seqlen", type=int, default=512, help="calibration window length (default 512)")
    p.add_argument("--grad-windows", type=int, default=16,
                   help="held-out calibration windows of the gradient pass (default 16)")
    p.add_argument("--eval-seqlen", type=int, default=512, help="eval window length (default 512)")
    p.add_argument("--max-eval-windows", type=int, default=16,
                   help="eval windows of the dense perplexity the prediction scales (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled labels (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_plan)


def _check(args: argparse.Namespace) -> None:
    """Every bad option fails here, before anything is read."""
    for name in ("cal_samples", "cal_seqlen", "grad_windows", "eval_seqlen", "max_eval_windows"):
        check_positive(name.replace("_", "-"), getattr(args, name))
    if args.params is not None and not 0 < args.params <= 1:
        raise UsageError(f"--params is a fraction of the dense parameter count in (0, 1], got {args.params}")
    if args.sparsity is not None and not 0 <= args.sparsity < 1:
        raise UsageError(f"--sparsity must be in [0, 1), got {args.sparsity}")
    if Path(args.out).exists() and not args.overwrite:
        raise UsageError(f"{args.out} exists (use --overwrite)")


def plan_lines(c: Comparison, planner: Planner, out: str) -> list[str]:
    """The short report `slicedim plan` prints: the plan beside uniform slicing at the same count."""
    P = planner.dense_params
    lines = [f"budget {c.budget:,} parameters ({c.budget / P:.1%} of the dense {P:,}); dense ppl "
             f"{planner.dense.ppl:.3f}", f"{'':18}{'params':>14}{'ΔL pred':>10}{'ppl pred':>10}"]
    if c.uniform_dim is not None:
        lines.append(f"{'uniform d=' + str(c.uniform_dim):<18}{c.uniform_params:>14,}{c.uniform_dloss:>10.4f}"
                     f"{c.uniform_ppl:>10.3f}")
    gain = "" if c.uniform_ppl is None else f"  ({100 * (c.plan_ppl / c.uniform_ppl - 1):+.1f}% vs uniform)"
    lines.append(f"{'planned':<18}{c.plan.params:>14,}{c.plan.dloss:>10.4f}{c.plan_ppl:>10.3f}{gain}")
    d = c.plan.dims
    lines.append(f"widths {min(d)} … {max(d)} (mean {sum(d) / len(d):.0f}) over {len(d)} sites; "
                 f"written to {out} (slicedim slice --schedule {out})")
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    """Dense metrics and plan tables (no sliced model anywhere), then the plan for the budget, written as a
    schedule file."""
    _check(args)
    cfg = SweepConfig(model=args.model, corpus=args.corpus, cal_samples=args.cal_samples,
                      cal_seqlen=args.cal_seqlen, eval_seqlen=args.eval_seqlen,
                      max_eval_windows=args.max_eval_windows, grad_windows=args.grad_windows, tasks=[],
                      seed=args.seed, dtype=args.dtype)
    cfg.check()
    inp = load_inputs(cfg, device=args.device)
    progress, log = not args.no_progress, (lambda m: print(m, file=sys.stderr))
    dense = measure(inp.model, inp, cfg, 4, progress)
    metrics = DenseMetrics(ppl=dense["ppl"], acc=dense["acc"], hidden=inp.model.config.hidden_size)
    tables: PlanTables | None = None
    if args.tables:
        tables = tables_file(Path(args.tables), inp.model, inp, args.seed, progress, log)
    planner = make_planner(inp.model, inp, metrics, seed=args.seed, tables=tables, rule=RULE,
                           progress=progress)
    budget = budget_for(planner.cost, planner.dense_params, params=args.params, sparsity=args.sparsity)
    c = planner.compare(budget)
    payload = schedule_payload(c, planner, args.model, args.corpus)
    write_file(args.out, payload)
    for line in plan_lines(c, planner, args.out):
        print(line, file=sys.stderr if args.json == "-" else sys.stdout)
    write_json(args.json, {**payload, "seconds_tables": planner.tables.seconds})
    return 0
