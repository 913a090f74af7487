"""Measure planned schedules (and uniform slicing at the same parameter count) on one corpus, cached.

    .venv/bin/python experiments/plan_measure.py CORPUS --sparsities 0.3 [--rule min_dim=8,keep_last=0]
        [--tag NAME] [--uniform] [--blind] [--threads 2]

For each sparsity s: the budget is uniform slicing's exact parameter count at s; the plan for it (the tables
of `plan_tables.py`, the rule given) is sliced (interleaved SliceGPT, the validation's 32 × 512 calibration
windows) and measured on the 16 eval windows: runs/lab/CORPUS/plan_<tag>_s<s>.json (widths, parameters,
predicted and measured PPL, top-1, per-window NLL). `--uniform` also measures uniform slicing at s
(point_<d>.json, as exp_measure.py writes it). `--blind` prints no measured number.
"""

from __future__ import annotations

import argparse
import json
import time

from exp_measure import window_metrics
from lab import folder, load
from plan_tables import tables

from slicedim_lab.core.size import count_params, width_cost
from slicedim_lab.core.widths import dim_for_sparsity
from slicedim_lab.predict.plan import PlanRule, budget_for, plan_widths, uniform_dims
from slicedim_lab.sweep.point import slice_and_measure


def parse_rule(text: str) -> PlanRule:
    """`min_dim=8,keep_last=0` → PlanRule (unnamed settings keep their defaults)."""
    kw: dict = {}
    for part in filter(None, text.split(",")):
        k, v = part.split("=")
        kw[k] = bool(int(v)) if k == "keep_last" else int(v)
    return PlanRule(**kw)


def measure(model, inp, dims: list[int]) -> tuple[dict, float, float, int]:
    t0 = time.perf_counter()
    done = slice_and_measure(model, inp.cal_ids, dims, lambda m: window_metrics(m, inp.eval_ids),
                             batch_size=4, progress=False)
    return done.measured, done.seconds_slice, time.perf_counter() - t0, count_params(done.result.model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--sparsities", default="0.3")
    ap.add_argument("--rule", default="")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--uniform", action="store_true")
    ap.add_argument("--blind", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    out = folder(args.corpus)
    t, dense = tables(args.corpus, args.threads)
    inp = load(args.corpus, args.threads)
    model = inp.model
    cost, rule = width_cost(model), parse_rule(args.rule)
    S, D = t.n_sites, t.hidden
    for s in [float(x) for x in args.sparsities.split(",")]:
        d = dim_for_sparsity(s, D)
        budget = budget_for(cost, count_params(model), sparsity=s)
        if args.uniform and not (out / f"point_{d}.json").exists():
            res, sl, tot, params = measure(model, inp, uniform_dims(S, D, d))
            res.update(dim=d, params=params, slice_seconds=sl, eval_seconds=tot - sl)
            (out / f"point_{d}.json").write_text(json.dumps(res, indent=1))
            print(f"uniform d'={d}" + ("" if args.blind else f" ppl {res['ppl']:.3f}") + f" [{tot:.0f}s]",
                  flush=True)
        f = out / f"plan_{args.tag}_s{s}.json"
        if f.exists():
            continue
        plan = plan_widths(t, cost, budget, rule)
        res, sl, tot, params = measure(model, inp, plan.dims)
        u_dl = t.delta_loss(uniform_dims(S, D, d))
        res.update(sparsity=s, uniform_dim=d, budget=budget, params=params, params_counted=plan.params,
                   dims=plan.dims, dloss_pred=plan.dloss, dloss_pred_uniform=u_dl,
                   rule=rule.to_dict(), dense_ppl=dense["ppl"], slice_seconds=sl, eval_seconds=tot - sl)
        f.write_text(json.dumps(res, indent=1))
        print(f"plan {args.tag} s={s}: {params:,} params (budget {budget:,})"
              + ("" if args.blind else f" ppl {res['ppl']:.3f}") + f" [{tot:.0f}s]", flush=True)


if __name__ == "__main__":
    main()
