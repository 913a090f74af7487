"""Reference computations the tests compare the package against (plain transformers, no package code)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def plain_loop(model: torch.nn.Module, windows: torch.Tensor) -> tuple[float, float, float, torch.Tensor]:
    """Reference, one window at a time: ppl from transformers' own shifted loss (computed in float32 even
    for float64 models), ppl and per-token CE recomputed in the logits' dtype, and top-1 accuracy."""
    hf_losses, hits, per_token = [], 0, []
    with torch.no_grad():
        for w in windows:
            out = model(input_ids=w[None], labels=w[None])
            hf_losses.append(out.loss.double().item())
            hits += int((out.logits[0, :-1].argmax(-1) == w[1:]).sum())
            per_token.append(F.cross_entropy(out.logits[0, :-1], w[1:], reduction="none"))
    n_pred = windows.shape[0] * (windows.shape[1] - 1)
    ce = torch.stack(per_token)
    hf_ppl = math.exp(sum(hf_losses) / len(hf_losses))
    return hf_ppl, math.exp(ce.double().mean().item()), hits / n_pred, ce
