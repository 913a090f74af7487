"""Numeric checks the theory and flow notebooks run live: does a model (or an emulation of it) give the
same logits as another, and does RMSNorm commute with an orthogonal rotation of the residual (the identity
slicing rests on)? Each returns a small dict of maxima, so a notebook prints it and a test asserts on it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor

from ..core.modeling_sliced import DimRMSNorm
from ..core.pca import random_rotation


def rmsnorm_invariance(x: Float[Tensor, "... d"], eps: float = 1e-5, seed: int = 0) -> dict[str, float]:
    """Check RMSNorm(xQ) = RMSNorm(x)Q for a seeded random orthogonal Q on real residuals `x` (float64):
    the max |difference| next to the max |RMSNorm(x)|, and ‖QᵀQ − I‖_max."""
    x = x.detach().double()
    D = x.shape[-1]
    q = random_rotation(D, seed)
    norm = DimRMSNorm(D, eps)
    lhs, rhs = norm(x @ q), norm(x) @ q
    return {
        "max_abs_diff": (lhs - rhs).abs().max().item(),
        "max_abs_value": rhs.abs().max().item(),
        "orthogonality_error": (q.T @ q - torch.eye(D, dtype=q.dtype)).abs().max().item(),
    }


@torch.no_grad()
def model_logits(model: nn.Module, ids: Int[Tensor, "n pos"]) -> Float[Tensor, "n pos vocab"]:
    """Logits of a transformers-style model on `ids` (no cache), on the CPU."""
    return model(input_ids=ids.to(next(model.parameters()).device), use_cache=False).logits.cpu()


def compare_logits(a: Float[Tensor, "*b vocab"], b: Float[Tensor, "*b vocab"]) -> dict[str, float]:
    """Max |a − b| next to max |a|, and the share of positions whose top-1 token agrees."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return {
        "max_abs_diff": (a - b).abs().max().item(),
        "max_abs_logit": a.abs().max().item(),
        "top1_agreement": (a.argmax(-1) == b.argmax(-1)).double().mean().item(),
    }
