"""`ours` against measured points (experiments/results/ours_v2.md): dense-only, anchored at one width, at two.

    .venv/bin/python experiments/exp_table.py CORPUS [CORPUS ...]    # lab folders runs/lab/CORPUS
    .venv/bin/python experiments/exp_table.py --seen                 # the six corpora of the first validation

A lab folder holds dense_eval.json and point_<d>.json (experiments/exp_measure.py) and ours_anchor.json
(experiments/exp_anchor.py: the dense-only anchor ΔL_J per eval window). `--seen` reads the measured
perplexities and anchors recorded in experiments/results/lab_measured.json (runs/lab of those runs is not
kept; σ_J is not recorded there and is taken as 0: it is ≤ 0.1 beside σ_A = 0.70). Prints one markdown table
per corpus: signed % error of perplexity and whether the measured value is inside the 90 % interval; writes
runs/lab/v2_table.json (or v2_table_seen.json).
"""

from __future__ import annotations

import argparse
import json
import math

from lab import LAB, RESULTS

from slicedim_lab.predict.anchor import anchored_ppl, make_anchors
from slicedim_lab.predict.jvp import JVP_SETTINGS, JvpTables, interval

D = 576
ANCHORINGS = ([400], [400, 288], [456, 344])


def from_lab(corpus: str) -> tuple[float, dict[int, float], JvpTables]:
    f = LAB / corpus
    ppl0 = json.loads((f / "dense_eval.json").read_text())["ppl"]
    measured = {int(p.stem.split("_")[1]): json.loads(p.read_text())["ppl"] for p in f.glob("point_*.json")}
    a = json.loads((f / "ours_anchor.json").read_text())
    t = JvpTables(hidden=a["hidden"], anchor_dim=a["settings"]["anchor_dim"], window_dl=a["window_dl"],
                   settings=dict(JVP_SETTINGS))
    return ppl0, measured, t


def from_record(corpus: str, rec: dict) -> tuple[float, dict[int, float], JvpTables]:
    measured = {int(d): v for d, v in rec["ppl"][corpus].items()}
    ppl0 = rec["ppl0"][corpus]
    dl_j = math.log(measured[512] * (1 + rec["ours_err_at_512_pct"][corpus] / 100) / ppl0)
    t = JvpTables(hidden=D, anchor_dim=512, window_dl=[dl_j], settings=dict(JVP_SETTINGS))
    return ppl0, measured, t


def table(corpus: str, ppl0: float, measured: dict[int, float], t: JvpTables) -> dict:
    """Rows of errors and coverage; returns the summary numbers."""
    dims = sorted(measured, reverse=True)
    pred = {d: t.dloss(d) for d in dims}
    out = {"corpus": corpus, "ppl0": ppl0, "dense_only": {}, "anchored": {}}
    print(f"\n### {corpus} (dense PPL {ppl0:.3f}; ΔL_J {t.dloss_anchor:.4f})\n")
    head = "| d' | measured | ours | in90 | " + " | ".join(f"anch {','.join(map(str, a))} | in90"
                                                      for a in ANCHORINGS) + " |"
    print(head)
    print("|" + "---|" * (4 + 2 * len(ANCHORINGS)))
    anchor_sets = {tuple(a): make_anchors({d: measured[d] for d in a}, pred, ppl0)
                   for a in ANCHORINGS if all(d in measured for d in a)}
    for d in dims:
        m = measured[d]
        p = ppl0 * math.exp(pred[d])
        lo, hi = interval(ppl0, pred[d], t.rel_sigma(d))
        out["dense_only"][d] = (100 * (p / m - 1), lo <= m <= hi)
        cells = [f"{d}", f"{m:.3f}", f"{100 * (p / m - 1):+.1f}", "yes" if lo <= m <= hi else "no"]
        for anchor_dims in ANCHORINGS:
            key = ",".join(map(str, anchor_dims))
            anchors = anchor_sets.get(tuple(anchor_dims))
            if anchors is None:
                cells += ["—", ""]
                continue
            if d in anchor_dims:
                cells += ["(anchor)", ""]
                continue
            pa = anchored_ppl(ppl0, pred[d], d, anchors, D)
            alo, ahi = interval(ppl0, math.log(pa / ppl0), t.anchored_rel_sigma(d, anchors))
            out["anchored"].setdefault(key, {})[d] = (100 * (pa / m - 1), alo <= m <= ahi)
            cells += [f"{100 * (pa / m - 1):+.2f}", "yes" if alo <= m <= ahi else "no"]
        print("| " + " | ".join(cells) + " |")

    def summary(errs: dict) -> str:
        e = [abs(v[0]) for v in errs.values()]
        return f"{sum(e) / len(e):.2f} / {max(e):.2f} (in90 {sum(v[1] for v in errs.values())}/{len(e)})"

    print(f"\nmean / max |%|: ours {summary(out['dense_only'])}; "
          + "; ".join(f"anchored {k} {summary(v)}" for k, v in out["anchored"].items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="*")
    ap.add_argument("--seen", action="store_true")
    args = ap.parse_args()
    results = []
    if args.seen:
        rec = json.loads((RESULTS / "lab_measured.json").read_text())
        for c in rec["ppl"]:
            results.append(table(c, *from_record(c, rec)))
    for c in args.corpora:
        results.append(table(c, *from_lab(c)))
    LAB.mkdir(parents=True, exist_ok=True)
    name = "v2_table_seen.json" if args.seen else "v2_table.json"
    (LAB / name).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
