"""Peak host memory of `slicedim slice` and `slicedim sweep` on real-shaped random-weight checkpoints.

A checkpoint of a real model's shapes at reduced depth (`slicedim_lab.testing.SHAPES`: Llama-3-8B, 4096 wide,
vocabulary 128256, 5.9 GB at 2 layers; Phi-3-mini, 3072 wide, 1.7 GB) is written shard by shard in one
subprocess; the command runs in a fresh one, whose peak resident set (the kernel's, via wait4) is compared
with the targets of issue 15: slice <= 1.5x the model's bytes + 1.5 GB, sweep <= 2x + 1.5 GB. A run that
passes its bound by 2 GB is stopped. Tiny calibration (2 windows x 64 tokens): the memory is the weights'.

    python bench/bench_memory.py [--shapes llama3-8b,phi3-mini] [--what slice,sweep] [--layers 2] [--dir D]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from slicedim_lab.core.memory import run_measured
from slicedim_lab.testing import checkpoint_bytes

GB = 1e9
SMALL = ["--device", "cpu", "--cal-samples", "2", "--cal-seqlen", "64", "--eval-seqlen", "64",
         "--max-eval-windows", "1", "--batch-size", "2", "--no-progress"]
FACTOR = {"slice": 1.5, "sweep": 2.0}  # peak <= FACTOR x model bytes + 1.5 GB
SLACK = 1.5 * GB
STOP_ABOVE = 2 * GB  # past the bound by this much, the run is stopped


def build(shape: str, folder: Path, layers: int = 2) -> int:
    """Write the random checkpoint (with a byte-level tokenizer) in a subprocess; its bytes."""
    code = ("import sys; from slicedim_lab import testing as m; m.write_random_checkpoint(sys.argv[1], "
            "m.shape_config(sys.argv[2], int(sys.argv[3])), m.byte_tokenizer())")
    subprocess.run([sys.executable, "-c", code, str(folder), shape, str(layers)], check=True)
    return checkpoint_bytes(folder)


def bound(what: str, model_bytes: int) -> float:
    return FACTOR[what] * model_bytes + SLACK


def command(what: str, folder: Path, out: Path) -> list[str]:
    """`slicedim slice` at s = 0.25, or `slicedim sweep` at two widths (s = 0.25, 0.5), tiny calibration."""
    cli = [sys.executable, "-m", "slicedim_lab.cli"]
    if what == "slice":
        return [*cli, "slice", "--model", str(folder), "--sparsity", "0.25", *SMALL, "--json", "-"]
    return [*cli, "sweep", "--model", str(folder), "--sparsities", "0.25,0.5", "--grad-windows", "2",
            "--tasks", "none", "--no-report", "--out", str(out), *SMALL]


@dataclass
class Row:
    shape: str
    what: str
    model_gb: float
    bound_gb: float
    peak_gb: float
    seconds: float
    ok: bool
    reported_gb: float | None = None  # what `slicedim slice --json` says its peak was

    def line(self) -> str:
        rep = "" if self.reported_gb is None else f"  (--json: {self.reported_gb:.2f})"
        return (f"{self.shape:10s} {self.what:5s}  model {self.model_gb:5.2f} GB  "
                f"bound {self.bound_gb:5.2f}  peak {self.peak_gb:5.2f} "
                f"({self.peak_gb / self.bound_gb:4.0%} of bound)  "
                f"{self.seconds:5.0f} s  {'ok' if self.ok else 'OVER'}{rep}")


def measure(shape: str, what: str, folder: Path, model_bytes: int) -> Row:
    """Run one command in a fresh process and compare its peak RSS with its bound."""
    limit = bound(what, model_bytes)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        r = run_measured(command(what, folder, Path(out) / "sweep"), kill_above=int(limit + STOP_ABOVE))
        seconds = time.perf_counter() - t0
    if r.returncode != 0 and not r.killed:
        raise RuntimeError(f"{what} on {shape} failed ({r.returncode}):\n{r.stderr[-4000:]}")
    reported = json.loads(r.stdout)["peak_rss_mb"] * 2**20 / GB if what == "slice" and not r.killed else None
    return Row(shape, what, model_bytes / GB, limit / GB, r.peak_rss / GB, seconds,
               not r.killed and r.peak_rss <= limit, reported)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="llama3-8b,phi3-mini")
    p.add_argument("--what", default="slice,sweep", help="slice and/or sweep (the sweep on the first shape)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dir", default=None, help="where the checkpoints go (default: a temporary folder)")
    args = p.parse_args(argv)
    what = args.what.split(",")
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_memory_"))
    rows = []
    try:
        for i, shape in enumerate(args.shapes.split(",")):
            folder = root / shape
            t0 = time.perf_counter()
            model_bytes = build(shape, folder, args.layers)
            built = time.perf_counter() - t0
            print(f"{shape}: {model_bytes / GB:.2f} GB written in {built:.0f} s", flush=True)
            for w in what:
                if w == "slice" or i == 0:
                    rows.append(measure(shape, w, folder, model_bytes))
                    print(rows[-1].line(), flush=True)
            shutil.rmtree(folder)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
