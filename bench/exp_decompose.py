"""Split the error of the Fisher predictors into basis error and functional-form error (issue 12's lead).

    .venv/bin/python bench/exp_decompose.py CORPUS [--jvp-windows 8] [--threads 1]

Needs runs/lab/CORPUS/point_<d>.json and bases_<d>.pt (bench/exp_measure.py). For every width d:
- Fisher sums (sampled labels, 16 held-out gradient windows) of the increments in the SEMI-interleaved bases
  (what `fisher_semi` models) and in the TRUE interleaved bases of the measured slice;
- JVP of the dense model with all increments injected (both basis kinds): exact CE increase with the true
  next tokens, KL(dense || linearised), and the Gauss-Newton quadratic, on the first `--jvp-windows` of the
  gradient windows (spread), per window.
The true bases are diagnostics only: a predictor never sees them. Writes runs/lab/CORPUS/decompose.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from lab_common import DIMS, folder, load, need
from ours_lab import dense_moments, fisher_pass, jvp_logits, semi_bases, token_losses_at


def cached_moments(out, model, cal_ids):
    f = out / "moments.pt"
    if f.exists():
        return torch.load(f)
    t0 = time.perf_counter()
    H, C = dense_moments(model, cal_ids)
    torch.save((H, C, time.perf_counter() - t0), f)
    return H, C, time.perf_counter() - t0


def cached_semi(out, H, C, d, charged):
    f = out / f"semi_{d}.pt"
    if f.exists():
        return torch.load(f)
    t0 = time.perf_counter()
    b = [x.float() for x in semi_bases(H, C, d, charged)]
    torch.save((b, time.perf_counter() - t0), f)
    return b, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--jvp-windows", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-fisher", action="store_true")
    ap.add_argument("--order", default=None, help="comma-separated set names to run first (e.g. semi_288)")
    args = ap.parse_args()
    out = folder(args.corpus)
    inp, cfg = load(args.corpus, threads=args.threads)
    model = inp.model
    L = model.config.num_hidden_layers
    charged = 2 * L  # the last site keeps D
    H, C, t_mom = cached_moments(out, model, inp.cal_ids)
    print(f"moments {t_mom:.0f}s", flush=True)
    dense = json.loads((out / "dense_eval.json").read_text())
    res_file = out / "decompose.json"
    res = json.loads(res_file.read_text()) if res_file.exists() else {}
    sets = {}
    for d in DIMS:
        b, t = cached_semi(out, H, C, d, charged)
        sets[f"semi_{d}"] = b
        tb = out / f"bases_{d}.pt"
        if tb.exists():
            sets[f"true_{d}"] = torch.load(tb)
    del H, C
    todo = {k: v for k, v in sets.items() if k not in res.get("fisher", {})}
    if not args.skip_fisher and todo:
        t0 = time.perf_counter()
        fp = fisher_pass(model, inp.grad_ids, todo, charged)
        res.setdefault("fisher", {}).update({k: {"inc": v[0], "coh": v[1]} for k, v in fp.items()})
        res["fisher_seconds"] = time.perf_counter() - t0
        res_file.write_text(json.dumps(res, indent=1))
        print(f"fisher pass {res['fisher_seconds']:.0f}s", flush=True)
    spread = need("spread")
    pick = spread(inp.grad_ids.shape[0], args.jvp_windows)
    ids_all = inp.grad_ids[pick]
    res.setdefault("jvp", {})
    first = args.order.split(",") if args.order else []
    names = [n for n in first if n in sets] + [n for n in sets if n not in first]
    for name in names:
        b = sets[name]
        if name in res["jvp"]:
            continue
        t0 = time.perf_counter()
        per = {"ce": [], "kl": [], "quad": [], "ce_half": [], "kl_half": []}
        for ids in torch.split(ids_all, 2):
            z, dz = jvp_logits(model, ids, b, charged)
            r = token_losses_at(z, dz, ids, scales=(1.0, 0.5))
            for k in ("ce", "kl", "quad"):
                per[k] += r[1.0][k].double().mean(1).tolist()
            per["ce_half"] += r[0.5]["ce"].double().mean(1).tolist()
            per["kl_half"] += r[0.5]["kl"].double().mean(1).tolist()
            del z, dz
        per["seconds"] = time.perf_counter() - t0
        res["jvp"][name] = per
        res_file.write_text(json.dumps(res, indent=1))
        d = int(name.split("_")[1])
        pt = out / f"point_{d}.json"
        meas = math.log(json.loads(pt.read_text())["ppl"] / dense["ppl"]) if pt.exists() else float("nan")
        m = {k: sum(v) / len(v) for k, v in per.items() if k != "seconds"}
        fs = res.get("fisher", {}).get(name, {})
        print(
            f"{name}: measured dL {meas:.3f} | fisher inc {fs.get('inc', float('nan')):.3f} coh "
            f"{fs.get('coh', float('nan')):.3f} | jvp ce {m['ce']:.3f} kl {m['kl']:.3f} quad {m['quad']:.3f}"
            f" [{per['seconds']:.0f}s]",
            flush=True,
        )


if __name__ == "__main__":
    main()
