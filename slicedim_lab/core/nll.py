"""Next-token cross-entropy and top-1 hits from logits: the one primitive behind every loss in the package
(evaluation, the calibration loss of slicing, the flow tables and the Fisher passes).

A window of n tokens predicts its tokens 1..n−1 from their prefixes: position t's logits are scored against
token t+1, and the last position predicts nothing inside the window. Losses are computed in float32 (float64
for float64 logits; half-precision logits are upcast first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor


def _wide(logits: Tensor) -> Tensor:
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def next_token_ce(
    logits: Float[Tensor, "b pos vocab"],
    ids: Int[Tensor, "b pos"],
    targets: Int[Tensor, "b pos_1"] | None = None,
) -> Float[Tensor, "b pos_1"]:
    """Cross-entropy of every predicted token: entry [i, t] scores logits[i, t] against ids[i, t+1] (or
    against `targets[i, t]`, e.g. labels sampled from the model itself)."""
    b = logits.shape[0]
    tgt = ids[:, 1:] if targets is None else targets
    flat = rearrange(_wide(logits[:, :-1]), "b p v -> (b p) v")
    ce = F.cross_entropy(flat, rearrange(tgt.to(flat.device), "b p -> (b p)"), reduction="none")
    return rearrange(ce, "(b p) -> b p", b=b)


def next_token_hits(
    logits: Float[Tensor, "b pos vocab"], ids: Int[Tensor, "b pos"]
) -> Bool[Tensor, "b pos_1"]:
    """Whether the argmax prediction at position t is token t+1."""
    return logits[:, :-1].argmax(dim=-1) == ids[:, 1:].to(logits.device)


def next_token_stats(
    logits: Float[Tensor, "b pos vocab"], ids: Int[Tensor, "b pos"]
) -> tuple[Float[Tensor, "b pos_1"], Bool[Tensor, "b pos_1"]]:
    """(cross-entropy, top-1 hit) of every predicted token."""
    return next_token_ce(logits, ids), next_token_hits(logits, ids)
