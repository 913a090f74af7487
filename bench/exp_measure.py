"""Measure the interleaved SliceGPT points of one corpus ONCE and cache them (resumable, one width a file).

    .venv/bin/python bench/exp_measure.py CORPUS [--dims 512,456,...] [--no-bases]

runs/lab/CORPUS/dense_eval.json: dense eval PPL/acc and per-window NLL (16 windows x 512);
runs/lab/CORPUS/point_<d>.json: measured PPL, acc, per-window NLL, seconds of calibration+slicing and of eval;
runs/lab/CORPUS/bases_<d>.pt: the true interleaved bases (float32; for the basis-error diagnostics only).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from lab_common import DIMS, folder, load, need


def window_nll(model, ids, batch_size=4):
    batch_token_stats = need("batch_token_stats")

    nll, hits = [], []
    for ce, hit in batch_token_stats(model, ids, batch_size, progress=False):
        nll += ce.double().mean(1).tolist()
        hits += hit.double().mean(1).tolist()
    return nll, hits


def summary(nll, hits):
    import math

    m = sum(nll) / len(nll)
    return {"ppl": math.exp(m), "nll": m, "acc": sum(hits) / len(hits), "window_nll": nll, "window_acc": hits}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--dims", default=",".join(map(str, DIMS)))
    ap.add_argument("--no-bases", action="store_true")
    ap.add_argument("--blind", action="store_true",
                    help="print no measured number (held-out corpora are measured before ours is frozen)")
    args = ap.parse_args()
    out = folder(args.corpus)
    inp, cfg = load(args.corpus)
    site_dims, slice_model = need("site_dims"), need("slice_model")

    model = inp.model
    D, L = model.config.hidden_size, model.config.num_hidden_layers
    f = out / "dense_eval.json"
    if not f.exists():
        t0 = time.perf_counter()
        res = summary(*window_nll(model, inp.eval_ids))
        res["seconds"] = time.perf_counter() - t0
        res["eval_windows"] = int(inp.eval_ids.shape[0])
        res["cal_windows"] = int(inp.cal_ids.shape[0])
        res["grad_windows"] = int(inp.grad_ids.shape[0])
        res["grad_heldout"] = inp.grad_heldout
        f.write_text(json.dumps(res, indent=1))
        if not args.blind:
            print(f"dense ppl {res['ppl']:.3f} acc {res['acc']:.4f} [{res['seconds']:.0f}s]", flush=True)
    for d in [int(x) for x in args.dims.split(",")]:
        f = out / f"point_{d}.json"
        if f.exists():
            continue
        t0 = time.perf_counter()
        sl = slice_model(model, inp.cal_ids, site_dims(L, D, dim=d), batch_size=4, progress=False)
        t1 = time.perf_counter()
        res = summary(*window_nll(sl.model, inp.eval_ids))
        t2 = time.perf_counter()
        res.update(dim=d, slice_seconds=t1 - t0, eval_seconds=t2 - t1, cal_loss=sl.cal_loss)
        if not args.no_bases:
            torch.save([b.float() for b in sl.bases], out / f"bases_{d}.pt")
        f.write_text(json.dumps(res, indent=1))
        what = "" if args.blind else f"ppl {res['ppl']:.3f} acc {res['acc']:.4f} "
        print(f"d'={d} {what}slice {t1 - t0:.0f}s eval {t2 - t1:.0f}s", flush=True)
        del sl


if __name__ == "__main__":
    main()
