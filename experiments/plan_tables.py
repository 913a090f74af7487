"""Make (once) and cache the plan's dense-only tables of one corpus at the validation's settings.

    .venv/bin/python experiments/plan_tables.py CORPUS [--threads 2]

runs/lab/CORPUS/plan_tables.pt (`predict.plan.PlanTables`) and dense_plan.json (the dense model's eval PPL
and top-1 accuracy on the validation's 16 eval windows, the planning's wall time).
"""

from __future__ import annotations

import argparse
import json
import time

from lab import folder, load

from slicedim_lab.eval.metrics import evaluate
from slicedim_lab.predict.plan import PlanTables, plan_tables


def tables(corpus: str, threads: int = 2) -> tuple[PlanTables, dict]:
    """The cached tables and dense record of `corpus`, made on first use."""
    out = folder(corpus)
    f, g = out / "plan_tables.pt", out / "dense_plan.json"
    if f.exists() and g.exists():
        return PlanTables.load(f), json.loads(g.read_text())
    inp = load(corpus, threads)
    t0 = time.perf_counter()
    t = plan_tables(inp.model, inp.cal_ids, inp.grad_ids)
    t.save(f)
    dense = evaluate(inp.model, inp.eval_ids, progress=False)
    rec = {"ppl": dense.ppl, "acc": dense.accuracy, "seconds_tables": t.seconds,
           "seconds_total": time.perf_counter() - t0, "tokens": t.tokens}
    g.write_text(json.dumps(rec, indent=1))
    return t, rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t, rec = tables(args.corpus, args.threads)
    print(f"{args.corpus}: tables {rec['seconds_tables']:.0f}s, with dense eval {rec['seconds_total']:.0f}s")


if __name__ == "__main__":
    main()
