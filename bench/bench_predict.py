"""Benchmark the predictors on the default model: mean and max |% error| over s = 0.1 … 0.5 against measured
perplexity (and accuracy), and the cost of predicting against the cost of measuring.

    .venv/bin/python bench/bench_predict.py [--corpus python-docs|stdlib-moddocs|stdlib-funcdocs|NAME|FILE]
        [--basis interleaved|dense] [--cal-samples 32] [--max-eval-windows 32] [--out runs/bench_predict]

Every point is a real `slicedim sweep` point (resumable: a rerun reuses DIR's finished points). `--corpus`
takes any corpus `slicedim sweep` does, the named validation corpora of `slicedim_lab.load.sources` among
them (e.g. `stdlib-moddocs`: the module docstrings of this Python's standard library).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slicedim_lab.predict.registry import predictor_names
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.folder import load_stats
from slicedim_lab.sweep.runner import run_sweep

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = [0, 0.1, 0.2, 0.3, 0.4, 0.5]


def summarise(rows: list[dict], dense: dict, tables, ours=None) -> dict:
    pts = [r for r in rows if 0.1 - 1e-9 <= r["sparsity"] <= 0.5 + 1e-9]
    table = {}
    for p in predictor_names():
        if any(r.get(f"ppl_err_{p}") is None for r in pts):
            continue  # e.g. `ours` on a dense-basis sweep
        e = [abs(r[f"ppl_err_{p}"]) for r in pts]
        a = [abs(r[f"acc_pred_{p}"] - r["acc_measured"]) for r in pts]
        m = [abs(r[f"mc_acc_pred_{p}"] - r["mc_acc_measured"]) for r in pts
             if r.get("mc_acc_measured") is not None]
        table[p] = {"ppl_mean_abs_pct": sum(e) / len(e), "ppl_max_abs_pct": max(e),
                    "ppl_signed_pct": [r[f"ppl_err_{p}"] for r in pts],
                    "acc_mean_abs_pts": 100 * sum(a) / len(a), "acc_max_abs_pts": 100 * max(a)}
        if m:
            table[p].update(mc_mean_abs_pts=100 * sum(m) / len(m), mc_max_abs_pts=100 * max(m))
    free = [r for r in pts if r.get("ppl_err_ours_anchored") is not None and not r.get("anchor")]
    if free:  # the anchored headline, at the widths that were not its anchors
        e = [abs(r["ppl_err_ours_anchored"]) for r in free]
        table["ours_anchored"] = {"ppl_mean_abs_pct": sum(e) / len(e), "ppl_max_abs_pct": max(e),
                                  "ppl_signed_pct": [r["ppl_err_ours_anchored"] for r in free]}
    for est in ("calibration", "cal_ratio"):
        e = [abs(r[f"ppl_err_est_{est}"]) for r in pts if r.get(f"ppl_err_est_{est}") is not None]
        if e:
            table[f"est:{est}"] = {"ppl_mean_abs_pct": sum(e) / len(e), "ppl_max_abs_pct": max(e)}
    # cost: both need the dense metrics; prediction adds the tables, measurement one slice + eval per point
    t = tables.settings.get("timing_s", {})
    semi_s = t.get("semi_bases", 0.0) + t.get("semi_tables", 0.0)
    fisher_s = tables.seconds - semi_s
    measure_s = sum(r["seconds"] for r in pts)
    dense_s = dense.get("seconds", 0.0)
    ours_s = sum(ours.timing.values()) if ours is not None else float("nan")
    return {"errors": table, "points": len(pts), "dims": [r["dim"] for r in pts], "dense": dense,
            "grad_heldout": tables.settings.get("grad_heldout", False),
            "cost": {"dense_eval_seconds": dense_s, "fisher_tables_seconds": fisher_s,
                     "semi_tables_seconds": semi_s, "semi_widths": len(tables.semi_dims),
                     "measure_seconds": measure_s, "measure_seconds_per_point": measure_s / max(len(pts), 1),
                     "ratio_fisher_over_measure": (dense_s + fisher_s) / (dense_s + measure_s),
                     "ratio_all_predictors_over_measure": (dense_s + tables.seconds) / (dense_s + measure_s),
                     "ours_seconds": ours_s,
                     "ratio_ours_over_one_point": ours_s / (measure_s / max(len(pts), 1))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="python-docs")
    ap.add_argument("--basis", default="interleaved", choices=("interleaved", "dense"))
    ap.add_argument("--cal-samples", type=int, default=32)
    ap.add_argument("--grad-windows", type=int, default=None)
    ap.add_argument("--grad-in-sample", action="store_true",
                    help="Fisher gradients on the PCA's own windows (default: held-out calibration windows)")
    ap.add_argument("--max-eval-windows", type=int, default=32)
    ap.add_argument("--mc-items", type=int, default=48)
    ap.add_argument("--anchor-dims", default="", help="comma-separated anchor widths (e.g. 400)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_predict"))
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    cfg = SweepConfig(corpus=args.corpus, basis=args.basis, cal_samples=args.cal_samples, cal_seqlen=512,
                      eval_seqlen=512, max_eval_windows=args.max_eval_windows, grad_windows=args.grad_windows,
                      grad_heldout=not args.grad_in_sample, mc_items=args.mc_items,
                      anchor_dims=[int(d) for d in args.anchor_dims.split(",") if d.strip()])
    grads = args.grad_windows or args.cal_samples
    grads = f"{grads}i" if args.grad_in_sample else grads
    tag = f"{Path(args.corpus).stem}-{args.basis}-c{args.cal_samples}-g{grads}"
    folder = out / f"{tag}-e{args.max_eval_windows}-m{args.mc_items}"
    rows = run_sweep(cfg, folder, sparsities=SPARSITIES, device="cpu", progress=False)
    stats = load_stats(folder)
    dense = json.loads((folder / "dense.json").read_text())
    res = summarise(rows, dense, stats["fisher"], stats.get("jvp"))
    res.update(corpus=args.corpus, basis=args.basis, folder=str(folder))
    (folder / "bench.json").write_text(json.dumps(res, indent=1))
    print(f"\n{args.corpus} ({args.basis} slicing), dense PPL {dense['ppl']:.3f}, acc {dense['acc']:.4f}; "
          f"over s = 0.1 … 0.5 ({res['points']} points)")
    print(f"{'predictor':<18}{'mean |%err| PPL':>16}{'max':>8}{'mean |Δacc| pts':>17}{'max':>7}"
          f"{'mean |Δmc| pts':>16}")
    for name, t in res["errors"].items():
        acc = f"{t['acc_mean_abs_pts']:>17.2f}{t['acc_max_abs_pts']:>7.2f}" if "acc_mean_abs_pts" in t else ""
        mc = f"{t['mc_mean_abs_pts']:>16.2f}" if "mc_mean_abs_pts" in t else ""
        print(f"{name:<18}{t['ppl_mean_abs_pct']:>16.1f}{t['ppl_max_abs_pct']:>8.1f}{acc}{mc}")
    print("signed % error per point, d' = " + ", ".join(str(d) for d in res["dims"]))
    for name, t in res["errors"].items():
        if "ppl_signed_pct" in t:
            print(f"  {name:<18}" + " ".join(f"{e:+7.1f}" for e in t["ppl_signed_pct"]))
    c = res["cost"]
    print(f"cost: dense metrics {c['dense_eval_seconds']:.0f}s (both); "
          f"Fisher tables {c['fisher_tables_seconds']:.0f}s (every d' then a lookup); "
          f"semi-interleaved tables {c['semi_tables_seconds']:.0f}s for "
          f"{c['semi_widths']} widths; measuring {res['points']} points {c['measure_seconds']:.0f}s "
          f"({c['measure_seconds_per_point']:.0f}s each)")
    print(f"ratio predict/measure: fisher {c['ratio_fisher_over_measure']:.2f}, all predictors "
          f"{c['ratio_all_predictors_over_measure']:.2f}")
    print(f"ours (the whole curve, beyond the dense metrics) {c['ours_seconds']:.0f}s vs one measured point "
          f"{c['measure_seconds_per_point']:.0f}s: ratio {c['ratio_ours_over_one_point']:.2f} (target <= 1)")


if __name__ == "__main__":
    main()
