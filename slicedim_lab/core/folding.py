"""The weight transforms of slicing: fold a norm into the maps that read it, emit a site's coordinates from
the maps that write it, keep a LayerNorm model's stream mean-free.

Readers are rotated on their input side (W ← W diag(g) B, the norm's bias joining theirs), writers on their
output side (W ← Bᵀ W, centred first when the stream must be mean-free); all in float64. A large row-local
transform (an embedding table, the LM head) runs in row blocks cast into one output (`map_rows`), so its
float64 temporaries stay one block big.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from jaxtyping import Float
from torch import Tensor

from ..adapters import Adapter
from .memory import release_pages


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
    bias = lin.bias
    if shift is not None:
        extra = w0 @ shift.double().to(w0.device)
        bias = extra if bias is None else bias.double() + extra
    w = w0 * scale.double().to(w0.device)[None, :]
    del w0  # one float64 copy of the map at a time
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


WHOLE = 1 << 26  # a map of up to this many elements is transformed in one piece
BLOCK = 1 << 24  # else in row blocks of about this many elements (128 MB in float64)


def row_blocks(rows: int, cols: int) -> list[slice]:
    """One block for a map of up to WHOLE elements; else blocks of about BLOCK elements, a whole multiple of
    1024 rows each (aligned blocks)."""
    if rows * cols <= WHOLE:
        return [slice(0, rows)]
    step = max(1024, BLOCK // cols // 1024 * 1024)
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]


RowFn = Callable[[slice], tuple[Float[Tensor, "block out"], Float[Tensor, "block"] | None]]  # noqa: F821
Rows = tuple[Float[Tensor, "rows out"], Float[Tensor, "rows"] | None]  # noqa: F821


def map_rows(fn: RowFn, rows: int, cols: int, dtype: torch.dtype, device: torch.device,
             consumed: Tensor | None = None) -> Rows:
    """A row-local transform `fn(rows) -> (float64 rows, float64 biases or None)` of a `rows x cols` map,
    block by block (`row_blocks`) into one output of `dtype`: the float64 temporaries never pass a block.
    `consumed`: the dense map, whose rows' pages are given back as each block is done (`release_pages`)."""
    w = b = None
    for sl in row_blocks(rows, cols):
        wb, bb = fn(sl)
        if consumed is not None:
            release_pages([consumed[sl]])
        if w is None:
            w = torch.empty(rows, wb.shape[1], dtype=dtype, device=device)
            b = None if bb is None else torch.empty(rows, dtype=dtype, device=device)
        w[sl] = wb
        if b is not None:
            b[sl] = bb
        del wb, bb
    return w, b
