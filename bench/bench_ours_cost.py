"""What the whole `ours` curve costs against ONE measured point, side by side in one run (issue 12, item 3).

    .venv/bin/python bench/bench_ours_cost.py [--corpus python-docs] [--dim 400] [--rounds 1] [--json F]

`ours` (everything beyond the dense eval metrics): one dense pass over the calibration windows for the
moments (no head), the semi-interleaved bases at the anchor width, the linearisation over the eval windows.
After it, every d' is a closed form. One measured point: SliceGPT's interleaved calibration + slicing at d'
and the sliced model's eval (perplexity, top-1, corpus-mc items), exactly what `slicedim sweep` does per
point. Settings of `make demo` (32 x 512 calibration, 16 eval windows x 512, 32 MC items). The two are
timed alternately (`--rounds` times each) so that a change of the machine's load hits both; the ratio uses
the medians. Also prints ΔL_J, to check against the frozen definition's value on python-docs (0.192).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from slicedim_lab.core.widths import model_site_dims
from slicedim_lab.predict.jvp import jvp_tables
from slicedim_lab.predict.moments import dense_moments
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.inputs import load_inputs, measure
from slicedim_lab.sweep.point import slice_and_measure


def time_ours(inp, batch_size: int) -> tuple[float, dict, float]:
    t0 = time.perf_counter()
    moments = dense_moments(inp.model, inp.cal_ids, batch_size, logits=False, progress=False)
    t_moments = time.perf_counter() - t0
    tables = jvp_tables(inp.model, inp.eval_ids, moments, progress=False)
    total = time.perf_counter() - t0
    return total, {"moments": t_moments, **tables.timing}, tables.dloss_anchor


def time_point(inp, cfg: SweepConfig, dim: int, batch_size: int) -> tuple[float, dict, float]:
    t0 = time.perf_counter()
    done = slice_and_measure(inp.model, inp.cal_ids, model_site_dims(inp.model, dim=dim),
                             lambda m: measure(m, inp, cfg, batch_size, progress=False),
                             batch_size=batch_size, progress=False)
    total, t_slice = time.perf_counter() - t0, done.seconds_slice
    return total, {"calibrate_slice": t_slice, "eval": total - t_slice}, done.measured["ppl"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="python-docs")
    ap.add_argument("--dim", type=int, default=400, help="width of the measured point (default 400)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate ours / point this many times")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = SweepConfig(corpus=args.corpus, cal_samples=32, cal_seqlen=512, eval_seqlen=512,
                      max_eval_windows=16, grad_windows=16, mc_items=32)
    inp = load_inputs(cfg, device="cpu")
    ours_s, point_s, rows = [], [], []
    for r in range(args.rounds):
        t, parts, dl = time_ours(inp, args.batch_size)
        ours_s.append(t)
        rows.append({"round": r, "what": "ours", "seconds": t, **parts, "dloss_anchor": dl})
        print(f"round {r}: ours {t:.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in parts.items())}); "
              f"ΔL_J = {dl:.4f}", flush=True)
        t, parts, ppl = time_point(inp, cfg, args.dim, args.batch_size)
        point_s.append(t)
        rows.append({"round": r, "what": f"point d'={args.dim}", "seconds": t, **parts, "ppl": ppl})
        print(f"round {r}: one measured point d'={args.dim} {t:.1f} s "
              f"({', '.join(f'{k} {v:.1f}' for k, v in parts.items())}); PPL {ppl:.3f}", flush=True)
    ratio = statistics.median(ours_s) / statistics.median(point_s)
    print(f"ours (the whole curve) / one measured point = {ratio:.2f} (target <= 1; medians of "
          f"{args.rounds} round(s), {args.threads} threads)")
    if args.json:
        res = {"rows": rows, "ratio": ratio, "corpus": args.corpus}
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
