"""The weight transforms of slicing: fold a norm into the maps that read it, emit a site's coordinates from
the maps that write it, keep a LayerNorm model's stream mean-free.

Readers are rotated on their input side (W ← W diag(g) B, the norm's bias joining theirs), writers on their
output side (W ← Bᵀ W, centred first when the stream must be mean-free); all in float64.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from ..adapters import Adapter


def assign(lin: nn.Module, weight: Tensor, bias: Tensor | None, like: nn.Module) -> None:
    dt, dev = like.weight.dtype, like.weight.device
    lin.weight = nn.Parameter(weight.to(dev, dt).contiguous(), requires_grad=False)
    if bias is not None:
        lin.bias = nn.Parameter(bias.to(dev, dt).contiguous(), requires_grad=False)


def weight_out_in(lin: nn.Module, transposed: bool) -> Tensor:
    """A linear map's weight as out x in float64 (a transposed Conv1D stores in x out)."""
    w = lin.weight.double()
    return w.T if transposed else w


def norm_fold(norm: nn.Module, adapter: Adapter) -> tuple[Tensor, Tensor | None]:
    """The scale (norm_offset + weight) and the bias (LayerNorm's, else None) a norm hands to its readers."""
    w = getattr(norm, "weight", None)
    w = torch.ones(norm.normalized_shape) if w is None else w.detach()
    scale = w + adapter.norm_offset if adapter.norm_offset else w
    b = getattr(norm, "bias", None)
    return scale, None if b is None else b.detach()


def fold_reader(lin: nn.Module, fold: tuple[Tensor, Tensor | None], basis: Tensor,
                 transposed: bool = False) -> tuple[Tensor, Tensor | None]:
    """Reader of a normalised residual: absorb the norm's scale (and bias: W b joins the reader's bias), then
    read in the site's basis."""
    scale, shift = fold
    w0 = weight_out_in(lin, transposed)
    w = w0 * scale.double().to(w0.device)[None, :]
    bias = lin.bias
    if shift is not None:
        extra = w0 @ shift.double().to(w0.device)
        bias = extra if bias is None else bias.double() + extra
    return w @ basis.to(w.device), bias


def centre(w: Tensor, centred: bool) -> Tensor:
    """A writer's output made mean-free along the residual (its first dim) when the stream must be."""
    return w - w.mean(0, keepdim=True) if centred else w


def rotate_writer(lin: nn.Module, basis: Tensor, centred: bool = False,
                   transposed: bool = False) -> tuple[Tensor, Tensor | None]:
    """Writer into the residual: emit coordinates in the site's basis (mean-free first, for LayerNorm)."""
    b = basis.to(lin.weight.device)
    w = centre(weight_out_in(lin, transposed), centred)
    bias = None if lin.bias is None else centre(lin.bias.double()[:, None], centred)[:, 0]
    return b.T @ w, None if bias is None else bias @ b


def mean_free_basis(basis: Tensor) -> Tensor:
    """A kept basis (d < D) made exactly orthogonal to the all-ones direction, which a mean-free stream never
    uses: PCA puts it last, but rounding or a rank-deficient calibration can mix it into kept columns, and a
    LayerNorm model's emulation needs P 1 = 0. The columns change by rounding only when already orthogonal."""
    D, d = basis.shape
    if d == D:
        return basis
    b = basis - basis.mean(0, keepdim=True)
    q, r = torch.linalg.qr(b)
    return q * torch.sign(torch.diagonal(r))[None, :]
