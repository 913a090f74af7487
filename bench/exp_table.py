"""Per-corpus table of the frozen predictors against the cached measured points (no model is run).

    .venv/bin/python bench/exp_table.py python-docs stdlib-moddocs perldiag stdlib-funcdocs

paper, ours (dense-only; only where bench/exp_ours.py left runs/lab/C/ours_anchor.json), ours anchored at
d'_m = 400 (frozen β), each as signed % error of PPL, mean/max |%| over the measured widths, and whether the
measured value lies inside the 90 % interval. Also: the measurement's own sampling error (1 s.e. of PPL over
the eval windows) and the exponent β a power-law fit of THIS corpus's measured points would give.
"""

from __future__ import annotations

import json
import math
import statistics as st
import sys

from lab_common import DIMS, LAB
from ours import OURS_SETTINGS, predict, predict_anchored


def main(corpora):
    summary = {}
    for c in corpora:
        out = LAB / c
        dense = json.loads((out / "dense_eval.json").read_text())
        ppl0, D = dense["ppl"], 576
        meas = {
            d: json.loads((out / f"point_{d}.json").read_text())
            for d in DIMS
            if (out / f"point_{d}.json").exists()
        }
        anchor = (
            json.loads((out / "ours_anchor.json").read_text())
            if (out / "ours_anchor.json").exists()
            else None
        )
        ours = {r["dim"]: r for r in predict(anchor, ppl0, list(meas))} if anchor else {}
        anch = (
            {
                r["dim"]: r
                for r in predict_anchored(400, math.log(meas[400]["ppl"] / ppl0), D, ppl0, list(meas))
            }
            if 400 in meas
            else {}
        )
        print(
            f"\n{c}: dense PPL {ppl0:.3f} (16 eval windows x 512)"
            + (
                f"; ours anchor dL(512) = {sum(anchor['window_dl']) / len(anchor['window_dl']):.4f}"
                if anchor
                else ""
            )
        )
        print(
            f"{'d':>4} {'measured':>9} {'±se%':>6} {'paper%':>8} {'ours%':>8} {'in90':>5} "
            f"{'anch400%':>9} {'in90':>5}"
        )
        rows = []
        for d in sorted(meas, reverse=True):
            m = meas[d]["ppl"]
            x = [a - b for a, b in zip(meas[d]["window_nll"], dense["window_nll"])]
            se = 100 * st.stdev(x) / math.sqrt(len(x))
            r = {
                "dim": d,
                "measured": m,
                "se_pct": se,
                "paper": 100 * (math.exp(D / d * math.log(ppl0)) / m - 1),
            }
            if d in ours:
                r["ours"] = 100 * (ours[d]["ppl"] / m - 1)
                r["ours_in90"] = ours[d]["ppl_lo"] <= m <= ours[d]["ppl_hi"]
            if d in anch and d != 400:
                r["anchored"] = 100 * (anch[d]["ppl"] / m - 1)
                r["anchored_in90"] = anch[d]["ppl_lo"] <= m <= anch[d]["ppl_hi"]
            rows.append(r)
            def f(k, r=r):
                return f"{r[k]:+8.1f}" if k in r else f"{'—':>8}"

            def g(k, r=r):
                return f"{('yes' if r[k] else 'no'):>5}" if k in r else f"{'':>5}"

            print(
                f"{d:>4} {m:>9.3f} {se:>6.1f} {f('paper')} {f('ours')} {g('ours_in90')} "
                f"{f('anchored'):>9} {g('anchored_in90')}"
            )
        res = {"rows": rows}
        for k in ("paper", "ours", "anchored"):
            e = [abs(r[k]) for r in rows if k in r]
            if e:
                res[k] = {"mean": sum(e) / len(e), "max": max(e), "n": len(e)}
                print(
                    f"  {k:<9} mean |err| {res[k]['mean']:.1f}%  max {res[k]['max']:.1f}%  "
                    f"over {len(e)} widths"
                )
        if len(meas) >= 2:
            xs = [math.log(1 - d / D) for d in meas]
            ys = [math.log(math.log(meas[d]["ppl"] / ppl0)) for d in meas]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            beta = sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)
            res["beta_fit_this_corpus"] = beta
            print(
                f"  a power-law fit of this corpus's measured points would give beta = {beta:.3f} "
                f"(frozen: {OURS_SETTINGS['beta']})"
            )
        summary[c] = res
    (LAB / "table.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
