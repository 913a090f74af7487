"""Slicing cost and what it buys, measured side by side in one run.

For the default model (or --model): calibration+slicing wall time and peak RSS at s = 0.25 (32 x 512
calibration by default), then for each sparsity the parameters (tied head kept tied, and the reference's
untied variant), the exported folder's size, multiply-accumulates per token, and tokens/s of the sliced model
against the dense one on the same windows (interleaved repetitions, best of N), printed as ratios.

    python bench/bench_slice.py [--sparsities 0.1,0.2,0.25,0.3,0.4,0.5] [--cal-samples 32] [--device cuda]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from slicedim_lab.core.export import save_sliced
from slicedim_lab.core.size import count_params, macs_per_token
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import site_dims
from slicedim_lab.load.corpus import load_windows
from slicedim_lab.load.models import load_model


@torch.no_grad()
def tokens_per_s(models: dict, ids: torch.Tensor, reps: int, batch_size: int) -> dict[str, float]:
    """Best-of-`reps` forward throughput of each model, repetitions interleaved so load hits all alike."""
    best = {k: 0.0 for k in models}
    for _ in range(reps):
        for name, m in models.items():
            dev = next(m.parameters()).device
            t = time.perf_counter()
            for b in torch.split(ids, batch_size):
                m(b.to(dev), use_cache=False)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best[name] = max(best[name], ids.numel() / (time.perf_counter() - t))
    return best


def folder_mb(model) -> float:
    with tempfile.TemporaryDirectory() as d:
        out = save_sliced(model, Path(d) / "m")
        return sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--sparsities", default="0.1,0.2,0.25,0.3,0.4,0.5")
    ap.add_argument("--cal-samples", type=int, default=32)
    ap.add_argument("--cal-seqlen", type=int, default=512)
    ap.add_argument("--speed-windows", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()

    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    cfg = lm.model.config
    cal = load_windows(lm.tokenizer, "python-docs", "calibration", args.cal_seqlen, args.cal_samples)
    ids = load_windows(lm.tokenizer, "python-docs", "eval", args.cal_seqlen, args.speed_windows)
    dense_params, dense_macs = count_params(lm.model), macs_per_token(lm.model, args.cal_seqlen)["total"]
    dense_mb = sum(p.numel() * p.element_size() for p in lm.model.parameters()) / 2**20
    print(f"model {args.model}: D={cfg.hidden_size}, L={cfg.num_hidden_layers}, "
          f"{dense_params / 1e6:.1f}M params, device {lm.device}, "
          f"calibration {args.cal_samples}x{args.cal_seqlen}")

    print(f"\n{'s':>5} {'d`':>5} {'cal+slice s':>11} {'peak RSS MB':>11} {'params':>7} {'untied':>7} "
          f"{'file':>6} {'MACs':>6} {'tok/s':>6} {'dense tok/s':>11} {'sliced tok/s':>12}", flush=True)
    for s in [float(x) for x in args.sparsities.split(",")]:
        dims = site_dims(cfg.num_hidden_layers, cfg.hidden_size, sparsity=s)
        t = time.perf_counter()
        res = slice_model(lm.model, cal, dims, batch_size=args.batch_size, progress=False)
        secs = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        untied = slice_model(lm.model, cal[:1, :16], dims, untie_head=True, progress=False).model
        speed = tokens_per_s({"dense": lm.model, "sliced": res.model}, ids, args.reps, args.batch_size)
        r = dict(
            params=count_params(res.model) / dense_params, params_untied=count_params(untied) / dense_params,
            file=folder_mb(res.model) / dense_mb,
            macs=macs_per_token(res.model, args.cal_seqlen)["total"] / dense_macs,
            speed=speed["sliced"] / speed["dense"],
        )
        print(f"{s:>5.2f} {dims[0]:>5} {secs:>11.1f} {rss:>11.0f} {r['params']:>7.3f} "
              f"{r['params_untied']:>7.3f} {r['file']:>6.3f} {r['macs']:>6.3f} {r['speed']:>6.3f} "
              f"{speed['dense']:>11.0f} {speed['sliced']:>12.0f}", flush=True)
        del res, untied
    print("\nratios are sliced / dense; 'untied' = the reference's untied head; file = safetensors size; "
          "tok/s = forward throughput on the same windows, best of interleaved repetitions")


if __name__ == "__main__":
    main()
