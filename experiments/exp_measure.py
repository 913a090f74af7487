"""Measure the interleaved SliceGPT points of one corpus once and cache them (resumable, one width a file).

    .venv/bin/python experiments/exp_measure.py CORPUS [--dims 512,456,...] [--blind] [--threads 2]

runs/lab/CORPUS/dense_eval.json: dense eval PPL/acc and per-window NLL (16 windows × 512);
runs/lab/CORPUS/point_<d>.json: measured PPL, acc, per-window NLL, seconds of calibration+slicing and of eval.
`--blind` prints no measured number (held-out corpora are measured before a predictor is frozen).
"""

from __future__ import annotations

import argparse
import json
import math
import time

from lab import DIMS, folder, load

from slicedim_lab.core.widths import model_site_dims
from slicedim_lab.eval.metrics import batch_token_stats
from slicedim_lab.sweep.point import slice_and_measure


def window_metrics(model, ids, batch_size: int = 4) -> dict:
    """PPL, NLL and top-1 accuracy over `ids`, with the per-window NLL and accuracy."""
    nll, hits = [], []
    for ce, hit in batch_token_stats(model, ids, batch_size, progress=False):
        nll += ce.double().mean(1).tolist()
        hits += hit.double().mean(1).tolist()
    m = sum(nll) / len(nll)
    return {"ppl": math.exp(m), "nll": m, "acc": sum(hits) / len(hits), "window_nll": nll, "window_acc": hits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--dims", default=",".join(map(str, DIMS)))
    ap.add_argument("--blind", action="store_true", help="print no measured number")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    out, inp = folder(args.corpus), load(args.corpus, args.threads)
    model = inp.model
    f = out / "dense_eval.json"
    if not f.exists():
        t0 = time.perf_counter()
        res = window_metrics(model, inp.eval_ids)
        res.update(seconds=time.perf_counter() - t0, eval_windows=int(inp.eval_ids.shape[0]),
                   cal_windows=int(inp.cal_ids.shape[0]), grad_windows=int(inp.grad_ids.shape[0]),
                   grad_heldout=inp.grad_heldout)
        f.write_text(json.dumps(res, indent=1))
        if not args.blind:
            print(f"dense ppl {res['ppl']:.3f} acc {res['acc']:.4f} [{res['seconds']:.0f}s]", flush=True)
    for d in [int(x) for x in args.dims.split(",")]:
        f = out / f"point_{d}.json"
        if f.exists():
            continue
        t0 = time.perf_counter()
        done = slice_and_measure(model, inp.cal_ids, model_site_dims(model, dim=d),
                                 lambda m: window_metrics(m, inp.eval_ids), batch_size=4, progress=False)
        res, total = done.measured, time.perf_counter() - t0
        res.update(dim=d, slice_seconds=done.seconds_slice, eval_seconds=total - done.seconds_slice,
                   cal_loss=done.result.cal_loss)
        f.write_text(json.dumps(res, indent=1))
        what = "" if args.blind else f"ppl {res['ppl']:.3f} acc {res['acc']:.4f} "
        print(f"d'={d} {what}slice {done.seconds_slice:.0f}s eval {res['eval_seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
