"""The whole predicted curve against ONE measured point, as a user meets them, side by side in one run
(issue 25, item 1).

    .venv/bin/python bench/bench_predict_curve.py [--model smollm2-135m-instruct] [--corpus python-docs]
        [--dim 400] [--rounds 1] [--predictors NAMES|all] [--json F]

Curve: `slicedim predict` at every multiple of 8 below the hidden width (71 widths on SmolLM2), with its
default predictors unless `--predictors` is given. Point: `slicedim slice --dim 400` (calibration, slicing,
the sliced model's eval). Both run as fresh processes with the settings of issue 25's table (32 × 512
calibration windows, 16 gradient windows, 16 eval windows × 512); the two alternate `--rounds` times, so a
change of the machine's load hits both, and the ratio uses the medians (target: ≤ 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from slicedim_lab.load import models

SETTINGS = ["--cal-samples", "32", "--cal-seqlen", "512", "--eval-seqlen", "512", "--max-eval-windows", "16"]


def timed(argv: list[str]) -> float:
    """Seconds one `slicedim` command takes in a fresh process (it must succeed)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slicedim_lab.cli", *argv, "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=models.DEFAULT_MODEL)
    ap.add_argument("--corpus", default="python-docs")
    ap.add_argument("--dim", type=int, default=400, help="the measured point's width")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--predictors", default=None, help="passed to `slicedim predict` (default: its own)")
    ap.add_argument("--json", default=None, help="also write the timings here")
    args = ap.parse_args()

    config = models.local_config(args.model)
    if config is None:
        sys.exit(f"error: {args.model} is not at hand yet: load it once first (e.g. `slicedim eval --model "
                 f"{args.model}`)")
    hidden = config.hidden_size
    dims = list(range(8, hidden, 8))
    common = ["--model", args.model, "--corpus", args.corpus, "--device", "cpu", *SETTINGS]
    curve = ["predict", *common, "--grad-windows", "16", "--dims", ",".join(map(str, dims))]
    if args.predictors:
        curve += ["--predictors", args.predictors]
    point = ["slice", *common, "--dim", str(args.dim)]
    t_curve, t_point = [], []
    for r in range(args.rounds):
        t_curve.append(timed(curve))
        t_point.append(timed(point))
        print(f"round {r + 1}: whole curve ({len(dims)} widths) {t_curve[-1]:.0f} s, "
              f"one point (d'={args.dim}) {t_point[-1]:.0f} s", flush=True)
    c, p = statistics.median(t_curve), statistics.median(t_point)
    print(f"whole predicted curve / one measured point = {c:.0f} s / {p:.0f} s = {c / p:.2f}  (target ≤ 1)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "corpus": args.corpus, "widths": len(dims), "dim": args.dim,
                       "predictors": args.predictors or "default", "curve_s": t_curve, "point_s": t_point,
                       "ratio": c / p}, f, indent=1)


if __name__ == "__main__":
    main()
