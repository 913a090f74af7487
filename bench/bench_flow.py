"""What a slider move costs: one dense-basis re-projection to a new d' vs one interleaved calibration.

A slider over d' with `dense` bases needs no new calibration: the bases are the top-d' eigenvectors of one
dense PCA, so a move is one emulated forward of the K eval windows (bases + hooks on the bridge). The
`interleaved` (SliceGPT-exact) bases need a `slice_model` calibration per d'. Both are timed at each d',
repetitions interleaved (slider, calibration, slider, ...) so that machine load drifts hit both alike; the
ratio of the medians is printed. The one-off costs (bridge boot, dense PCA, dense eval pass) are reported
beside, as is a full `FlowSession.report` (depth metrics + logit lens, no gradients) at the same d'.

    python bench/bench_flow.py [--model M] [--dims 432,288] [--cal-samples 16] [--cal-seqlen 256]
                               [--eval-windows 4] [--eval-seqlen 256] [--reps 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from slicedim_lab.core.emulate import emulated_logits
from slicedim_lab.core.replay import dense_bases
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import site_dims
from slicedim_lab.flow.session import FlowSession
from slicedim_lab.load.corpus import load_windows
from slicedim_lab.load.models import DEFAULT_MODEL, load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--corpus", default="python-docs")
    p.add_argument("--dims", default="432,288")
    p.add_argument("--cal-samples", type=int, default=16)
    p.add_argument("--cal-seqlen", type=int, default=256)
    p.add_argument("--eval-windows", type=int, default=4)
    p.add_argument("--eval-seqlen", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--lens", default="post")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    lm = load_model(args.model, device=args.device)
    cal = load_windows(lm.tokenizer, args.corpus, "calibration", args.cal_seqlen, args.cal_samples)
    ev = load_windows(lm.tokenizer, args.corpus, "eval", args.eval_seqlen, args.eval_windows)
    cfg = lm.model.config
    L, D = cfg.num_hidden_layers, cfg.hidden_size
    print(f"{args.model} on {lm.device}, {torch.get_num_threads()} threads: calibration {tuple(cal.shape)}, "
          f"eval {tuple(ev.shape)}")
    session = FlowSession(lm.model, cal, ev, tokenizer=lm.tokenizer, batch_size=args.batch_size,
                          lens=args.lens)
    _ = session.pcas  # the dense PCA is computed on first use: count it with the one-off costs
    print("one-off: " + ", ".join(f"{k} {v:.1f}s" for k, v in session.seconds.items()))

    def slider(dim: int) -> float:
        t0 = time.perf_counter()
        bases = dense_bases(session.pcas, site_dims(L, D, dim=dim))
        for b in torch.split(ev, args.batch_size):
            emulated_logits(session.bridge, b, bases)
        return time.perf_counter() - t0

    def calibration(dim: int) -> float:
        t0 = time.perf_counter()
        res = slice_model(lm.model, cal, site_dims(L, D, dim=dim), batch_size=args.batch_size, progress=False)
        del res
        return time.perf_counter() - t0

    slider(D)  # warm-up
    results = []
    for dim in [int(d) for d in args.dims.split(",")]:
        s_times, c_times = [], []
        for _ in range(args.reps):
            s_times.append(slider(dim))
            c_times.append(calibration(dim))
        t0 = time.perf_counter()
        session.report(dim, "dense", attribution=None, maps=False)
        report_s = time.perf_counter() - t0
        s, c = statistics.median(s_times), statistics.median(c_times)
        row = {"dim": dim, "slider_s": s, "calibration_s": c, "ratio_calibration_over_slider": c / s,
               "report_s": report_s, "slider_runs": s_times, "calibration_runs": c_times}
        results.append(row)
        print(f"d'={dim}: slider move {s:.2f}s (median of {args.reps}), interleaved calibration {c:.2f}s, "
              f"ratio {c / s:.1f}x; full dense-basis report (lens {args.lens}) {report_s:.2f}s")
    payload = {"model": args.model, "device": str(lm.device), "threads": torch.get_num_threads(),
               "cal_shape": list(cal.shape), "eval_shape": list(ev.shape), "one_off_s": session.seconds,
               "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)


if __name__ == "__main__":
    main()
