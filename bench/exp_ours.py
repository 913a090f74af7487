"""Run the frozen `ours` (bench/ours.py) on one corpus and tabulate it against the cached measured points.

    .venv/bin/python bench/exp_ours.py CORPUS [--threads 1]

Writes runs/lab/CORPUS/ours.json (anchor statistics, timing, predictions at every d' = 8 … 576 and at the
measured widths, errors of paper / fisher_semi (where computed) / ours / ours anchored at d'=400).
Measured points: runs/lab/CORPUS/point_<d>.json from bench/exp_measure.py (same windows, same settings).
"""

from __future__ import annotations

import argparse
import json
import math

from lab_common import DIMS, folder, load
from ours import OURS_SETTINGS, ours_anchor, predict, predict_anchored


def paper_ppl(ppl0, D, d):
    return math.exp(D / d * math.log(ppl0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out = folder(args.corpus)
    f = out / "ours_anchor.json"
    if f.exists():
        anchor = json.loads(f.read_text())
    else:
        inp, cfg = load(args.corpus, threads=args.threads)
        anchor = ours_anchor(inp.model, inp.cal_ids, inp.eval_ids)
        f.write_text(json.dumps(anchor, indent=1))
    if not (out / "dense_eval.json").exists():
        print("no measured dense eval yet (bench/exp_measure.py): anchor saved, table later")
        return
    dense = json.loads((out / "dense_eval.json").read_text())
    D = anchor["hidden"]
    ppl0 = dense["ppl"]
    every = predict(anchor, ppl0, list(range(8, D + 1, 8)))
    meas = {}
    for d in DIMS:
        p = out / f"point_{d}.json"
        if p.exists():
            meas[d] = json.loads(p.read_text())
    rows = []
    pred = {r["dim"]: r for r in predict(anchor, ppl0, list(meas))}
    anch = None
    if 400 in meas:
        anch = {
            r["dim"]: r for r in predict_anchored(400, math.log(meas[400]["ppl"] / ppl0), D, ppl0, list(meas))
        }
    dec = out / "decompose.json"
    fsemi = {}
    if dec.exists():
        fs = json.loads(dec.read_text()).get("fisher", {})
        fsemi = {
            int(k.split("_")[1]): ppl0 * math.exp(v["inc"]) for k, v in fs.items() if k.startswith("semi_")
        }
    for d in sorted(meas, reverse=True):
        m = meas[d]["ppl"]
        r = {
            "dim": d,
            "ppl_measured": m,
            "paper_err": 100 * (paper_ppl(ppl0, D, d) / m - 1),
            "ours": pred[d]["ppl"],
            "ours_err": 100 * (pred[d]["ppl"] / m - 1),
            "ours_lo": pred[d]["ppl_lo"],
            "ours_hi": pred[d]["ppl_hi"],
            "covered": pred[d]["ppl_lo"] <= m <= pred[d]["ppl_hi"],
        }
        if d in fsemi:
            r["fisher_semi_err"] = 100 * (fsemi[d] / m - 1)
        if anch is not None and d != 400:
            r["anchored_err"] = 100 * (anch[d]["ppl"] / m - 1)
            r["anchored_covered"] = anch[d]["ppl_lo"] <= m <= anch[d]["ppl_hi"]
        rows.append(r)
    errs = [abs(r["ours_err"]) for r in rows]
    res = {
        "corpus": args.corpus,
        "dense_ppl": ppl0,
        "settings": OURS_SETTINGS,
        "timing": anchor["timing"],
        "anchor_dl": sum(anchor["window_dl"]) / len(anchor["window_dl"]),
        "rows": rows,
        "ours_mean_abs": sum(errs) / len(errs) if errs else None,
        "ours_max_abs": max(errs) if errs else None,
        "every_dim": every,
        "point_seconds": {d: meas[d]["slice_seconds"] + meas[d]["eval_seconds"] for d in meas},
    }
    (out / "ours.json").write_text(json.dumps(res, indent=1))
    print(
        f"{args.corpus}: dense PPL {ppl0:.3f}; anchor dL(512) {res['anchor_dl']:.4f}; "
        f"timing {anchor['timing']}"
    )
    print(
        f"{'d':>4} {'measured':>9} {'paper%':>8} {'fsemi%':>8} {'ours':>8} {'ours%':>7} "
        f"{'90% interval':>18} {'anch400%':>9}"
    )
    for r in rows:
        print(
            f"{r['dim']:>4} {r['ppl_measured']:>9.3f} {r['paper_err']:>+8.1f} "
            f"{r.get('fisher_semi_err', float('nan')):>+8.1f} "
            f"{r['ours']:>8.3f} {r['ours_err']:>+7.1f} [{r['ours_lo']:>7.2f},{r['ours_hi']:>7.2f}]"
            f"{'*' if r['covered'] else ' '} {r.get('anchored_err', float('nan')):>+9.1f}"
        )
    if errs:
        print(
            f"ours mean |err| {res['ours_mean_abs']:.1f}%, max {res['ours_max_abs']:.1f}%  "
            "(* = measured inside "
            "the 90% interval)"
        )


if __name__ == "__main__":
    main()
