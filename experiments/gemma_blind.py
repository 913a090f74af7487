"""Part 3 of results/ours_v3.md: every predictor on Gemma 3 270M against points measured blind before the
freeze.

    .venv/bin/python experiments/gemma_blind.py record      # measured points -> results/gemma3_measured.json
    .venv/bin/python experiments/gemma_blind.py predict     # slicedim predict on each corpus (dense only)
    .venv/bin/python experiments/gemma_blind.py fisher [CORPUS ...]  # every other predictor too (after)
    .venv/bin/python experiments/gemma_blind.py table       # errors, coverage, interval widths -> results/
    .venv/bin/python experiments/gemma_blind.py slicing     # the measured record as a markdown table

`record` gathers the blind measurement (runs/lab-gemma/<corpus>/{dense,point_<d>}.json, written by the
package's `sweep.point.slice_and_measure` at the validation's settings with 32 corpus-mc items) into the
committed record. `predict` runs `predict_only` (the frozen headline and every other predictor) with the
same settings and windows. `table` sets them side by side. Nothing here slices: the sliced numbers are the
recorded measurement.
"""

from __future__ import annotations

import argparse
import json
import math

from lab import LAB, RESULTS

from slicedim_lab import schema
from slicedim_lab.predict.anchor import anchored_ppl, make_anchors
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.runner import predict_only

MODEL = "gemma3-270m"
CORPORA = ["python-docs", "stdlib-moddocs", "git-relnotes", "cmake-help"]
DIMS = [576, 512, 448, 384, 320]  # s = 0.1 … 0.5 of D = 640
# the frozen headline (and what comes free with its statistic: jvp_power, paper); `fisher` adds every other
# registered predictor (the Fisher family, untouched since before Gemma 3 was measured) where time allowed
PREDICTORS = ["ours"]
ANCHORS = (448, 320)  # s = 0.3 and 0.5, as make demo's 400 and 288 of SmolLM2's 576
MEASURED = RESULTS / "gemma3_measured.json"
SOURCE = LAB.parent / "lab-gemma"  # runs/lab-gemma: the blind measurement's folders
PRED = LAB.parent / "lab-gemma-pred"


def config(corpus: str) -> SweepConfig:
    return SweepConfig(model=MODEL, corpus=corpus, cal_samples=32, cal_seqlen=512, eval_seqlen=512,
                       max_eval_windows=16, grad_windows=16, mc_items=32)


def record() -> None:
    keep = ("ppl", "acc", "mc_acc", "mc_acc_norm", "mc_chance", "window_nll", "params", "seconds",
            "slice_seconds")
    out = {"model": MODEL, "settings": {k: v for k, v in vars(config("x")).items() if k != "corpus"},
           "source": "experiments/gemma_blind.py record: runs/lab-gemma (measured blind, 2026-12-07)",
           "corpora": {}}
    for c in CORPORA:
        f = SOURCE / c
        if not (f / "dense.json").exists():
            print(f"{c}: not measured")
            continue
        rec = {"dense": {k: v for k, v in json.loads((f / "dense.json").read_text()).items() if k in keep}}
        for d in DIMS:
            p = f / f"point_{d}.json"
            if p.exists():
                rec[str(d)] = {k: v for k, v in json.loads(p.read_text()).items() if k in keep}
        out["corpora"][c] = rec
    MEASURED.write_text(json.dumps(out, indent=1))
    print(f"wrote {MEASURED}")


def predict(corpora: list[str] | None = None, predictors: list[str] | None = PREDICTORS,
            suffix: str = "") -> None:
    """`predict_only` on each corpus into runs/lab-gemma-pred/<corpus><suffix>.json (reusing its cache)."""
    PRED.mkdir(parents=True, exist_ok=True)
    for c in corpora or CORPORA:
        f = PRED / f"{c}{suffix}.json"
        if f.exists():
            continue
        res = predict_only(config(c), dims=DIMS, cache=PRED / f"cache-{c}", device="cpu", progress=False,
                           predictors=predictors)
        f.write_text(json.dumps(res, indent=1))
        print(f"{c}: predicted in {res['seconds']:.0f} s")


def fisher(corpora: list[str]) -> None:
    """Every registered predictor on `corpora` (the JVP reused from `predict`'s cache): <corpus>.all.json."""
    predict(corpora, predictors=None, suffix=".all")


def _predicted(c: str) -> dict:
    """The predictions of corpus `c`: every predictor's where `fisher` ran, else the headline's."""
    every = PRED / f"{c}.all.json"
    return json.loads((every if every.exists() else PRED / f"{c}.json").read_text())


def table() -> None:
    rec = json.loads(MEASURED.read_text())["corpora"]
    rows, summary = [], {}
    for c in CORPORA:
        if c not in rec or not (PRED / f"{c}.json").exists():
            print(f"{c}: not measured or not predicted; left out")
            continue
        res = _predicted(c)
        dense = rec[c]["dense"]
        if abs(res["dense"]["ppl"] / dense["ppl"] - 1) > 1e-4:
            raise SystemExit(f"{c}: dense PPL {res['dense']['ppl']} predicted, {dense['ppl']} measured")
        names = schema.predictors_in(res["predictions"][0])
        for r in res["predictions"]:
            m = rec[c].get(str(r["dim"]))
            if m is None:
                continue
            row = {"corpus": c, "dim": r["dim"], "s": r["sparsity"], "ppl": m["ppl"], "acc": m["acc"],
                   "mc_acc": m.get("mc_acc")}
            for n in names:
                row[n] = 100 * (r[schema.pred("ppl", n)] / m["ppl"] - 1)
                row[f"{n}:acc"] = 100 * (r[schema.pred("acc", n)] - m["acc"])
                if m.get("mc_acc") is not None and r.get(schema.pred("mc_acc", n)) is not None:
                    row[f"{n}:mc"] = 100 * (r[schema.pred("mc_acc", n)] - m["mc_acc"])
                lo, hi = r.get(schema.lo("ppl", n)), r.get(schema.hi("ppl", n))
                if lo is not None:
                    row[f"{n}:in"] = lo <= m["ppl"] <= hi
                    row[f"{n}:ratio"] = hi / lo
            rows.append(row)
        for n in names:
            e = [abs(x[n]) for x in rows if x["corpus"] == c]
            summary.setdefault(n, {})[c] = {"mean": sum(e) / len(e), "max": max(e)}
    out = {"rows": rows, "summary": summary}
    for n, per in summary.items():
        cells = (f"{c[:10]:>10} {v['mean']:6.1f}/{v['max']:6.1f}" for c, v in per.items())
        print(f"{n:<18} " + "  ".join(cells))
    for x in rows:
        mc = f"  Δmc {x['ours:mc']:+5.1f} pts" if "ours:mc" in x else ""
        acc = f"Δacc {x['ours:acc']:+5.1f} pts{mc}"
        print(f"{x['corpus']:<15} d'={x['dim']:>3}  PPL {x['ppl']:8.3f}  ours {x['ours']:+6.1f} %  "
              f"jvp_power {x['jvp_power']:+6.1f} %  paper {x['paper']:+7.1f} %  {acc}  in90 {x['ours:in']}")
    anchored = anchored_errors(rec)
    out["anchored"] = anchored
    (RESULTS / "gemma3_blind.json").write_text(json.dumps(out, indent=1))
    for c, errs in anchored.items():
        cells = ", ".join(f"d'={d} {e:+.2f} %" for d, e in errs.items())
        print(f"{c:<15} ours anchored at {ANCHORS}: {cells}")
    head = [x for x in rows if "ours:in" in x]
    if head:
        inside = sum(x["ours:in"] for x in head)
        ratios = sorted(x["ours:ratio"] for x in head if x["s"] <= 0.31)
        med = ratios[len(ratios) // 2] if ratios else math.nan
        print(f"ours: {inside}/{len(head)} inside the 90 % interval; median hi/lo at s <= 0.3: {med:.3f}")


def anchored_errors(rec: dict) -> dict[str, dict[int, float]]:
    """The headline anchored at two measured widths (`predict.anchor`, as `--anchor-dims` does), its signed
    % error at the other measured widths of each corpus."""
    out = {}
    for c in CORPORA:
        if c not in rec or not (PRED / f"{c}.json").exists():
            continue
        res = json.loads((PRED / f"{c}.json").read_text())
        ppl0 = res["dense"]["ppl"]
        dl = {r["dim"]: r[schema.dloss("ours")] for r in res["predictions"]}
        meas = {d: rec[c][str(d)]["ppl"] for d in DIMS if str(d) in rec[c]}
        if not all(a in meas for a in ANCHORS):
            continue
        anchors = make_anchors({a: meas[a] for a in ANCHORS}, dl, ppl0)
        out[c] = {d: 100 * (anchored_ppl(ppl0, dl[d], d, anchors, res["hidden"]) / v - 1)
                  for d, v in meas.items() if d not in ANCHORS}
    return out


def slicing() -> None:
    """The measured record as markdown: perplexity / top-1 per corpus and width, parameters per width."""
    rec = json.loads(MEASURED.read_text())["corpora"]
    print("| corpus | dense | " + " | ".join(f"d' = {d} (s = {1 - d / 640:.1f})" for d in DIMS) + " |")
    print("|---|---|" + "---|" * len(DIMS))
    for c, r in rec.items():
        cells = [f"{r[str(d)]['ppl']:.2f} / {r[str(d)]['acc']:.3f}" if str(d) in r else "—" for d in DIMS]
        print(f"| {c} | {r['dense']['ppl']:.2f} / {r['dense']['acc']:.3f} | " + " | ".join(cells) + " |")
    first = next(iter(rec.values()))
    params = [f"{first[str(d)]['params'] / 1e6:.1f}M" if str(d) in first else "—" for d in DIMS]
    print(f"| parameters | {first['dense']['params'] / 1e6:.1f}M | " + " | ".join(params) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("record", "predict", "fisher", "table", "slicing"))
    ap.add_argument("corpora", nargs="*", help="fisher: these corpora only (default: all four)")
    args = ap.parse_args()
    if args.step == "fisher":
        fisher(args.corpora)
    else:
        {"record": record, "predict": predict, "table": table, "slicing": slicing}[args.step]()


if __name__ == "__main__":
    main()
