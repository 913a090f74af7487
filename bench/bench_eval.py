"""Eval throughput of `slicedim_lab.eval.metrics.evaluate` vs a plain transformers forward loop, same windows.

Both measure the same thing (mean next-token loss over every window): the plain loop is what one would
write by hand, `model(input_ids=batch, labels=batch)` batch by batch under no_grad. Repetitions are
interleaved (plain, ours, plain, ours, ...) so that machine load drifts hit both alike; the ratio of the
median tokens/s is printed (target ≥ 0.95).

    python bench/bench_eval.py [--model M] [--windows 8] [--seqlen 512] [--batch-size 4] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from slicedim_lab.eval.metrics import evaluate
from slicedim_lab.load.corpus import load_windows
from slicedim_lab.load.models import DEFAULT_MODEL, load_model


def plain_loop(model: torch.nn.Module, windows: torch.Tensor, batch_size: int) -> float:
    """Mean of transformers' own per-batch loss (equal-length windows: every batch weighs by its size)."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, windows.shape[0], batch_size):
            ids = windows[start : start + batch_size]
            total += model(input_ids=ids, labels=ids).loss.item() * ids.shape[0]
    return total / windows.shape[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--corpus", default="python-docs")
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    lm = load_model(args.model, device=args.device)
    ids = load_windows(lm.tokenizer, args.corpus, "eval", args.seqlen, args.windows).to(lm.device)
    tokens = ids.shape[0] * (ids.shape[1] - 1)
    n, seq = ids.shape
    print(f"{args.model} on {lm.device}: {n} windows x {seq} tokens, batch {args.batch_size}")

    plain_loop(model := lm.model, ids[: args.batch_size], args.batch_size)  # warm-up (allocator, kernels)
    plain_tps, ours_tps = [], []
    for rep in range(args.reps):
        t0 = time.perf_counter()
        nll_plain = plain_loop(model, ids, args.batch_size)
        plain_tps.append(tokens / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        res = evaluate(model, ids, batch_size=args.batch_size, progress=False)
        ours_tps.append(tokens / (time.perf_counter() - t0))
        print(
            f"rep {rep}: plain {plain_tps[-1]:8.1f} tok/s (nll {nll_plain:.5f})   "
            f"evaluate {ours_tps[-1]:8.1f} tok/s (nll {res.nll:.5f})"
        )
    plain, ours = statistics.median(plain_tps), statistics.median(ours_tps)
    print(f"median tokens/s: plain {plain:.1f}, evaluate {ours:.1f}")
    print(f"ratio evaluate/plain = {ours / plain:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
