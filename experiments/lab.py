"""What the predictor experiments share: the validation's settings and widths, and its folders.

Every script here runs the installed package as it is (no pinned copy, no path tricks) on the named corpora of
`slicedim_lab.load.corpus`, so `--corpus NAME` elsewhere (e.g. `slicedim sweep`) sees the same windows.
Intermediate files go to `runs/lab/<corpus>/` (not committed); what the docs quote is committed under
`experiments/results/`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.inputs import Inputs, load_inputs

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "runs" / "lab"
RESULTS = ROOT / "experiments" / "results"
DIMS = [512, 456, 400, 344, 288]  # the validation's widths of SmolLM2 (D = 576): s = 1/9 … 1/2
# the validation's settings (those of `make demo`): 32 × 512 calibration, 16 held-out gradient windows,
# 16 eval windows of 512 tokens, all spread over their split
SETTINGS = dict(cal_samples=32, cal_seqlen=512, eval_seqlen=512, max_eval_windows=16, grad_windows=16)


def config(corpus: str) -> SweepConfig:
    """The validation's settings on `corpus` (no multiple-choice items)."""
    return SweepConfig(corpus=corpus, tasks=[], **SETTINGS)


def load(corpus: str, threads: int = 2) -> Inputs:
    """The default model and the validation's windows of `corpus`, on the CPU with `threads` threads."""
    torch.set_num_threads(threads)
    return load_inputs(config(corpus), device="cpu")


def folder(corpus: str) -> Path:
    """`runs/lab/<corpus>/`, made if missing."""
    f = LAB / corpus
    f.mkdir(parents=True, exist_ok=True)
    return f
