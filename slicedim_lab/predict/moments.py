"""The dense pass the statistics share: per-site second moments, neighbour cross moments and the calibration
loss of the dense model, in one forward over the calibration windows.

`BATCH_SIZE` is a setting of every statistic's dense passes (these moments, the Fisher gradients, the `ours`
linearisation): each batch's Gram products are taken in float32 (float64 models: float64) and summed in
float64, so the moments — and every number made from them — depend on it; two windows also bound the memory
of the backward passes. It is deliberately not the sweep's `--batch-size` (which only batches evaluation).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..adapters import adapter_for
from ..core.nll import next_token_ce
from ..core.replay import run_sites

BATCH_SIZE = 2  # windows per batch of the statistics' dense passes (see the module docstring)


@dataclass
class DenseMoments:
    """One dense pass over calibration windows: per-site second moments H_s = Σ x_sᵀx_s, neighbour cross
    moments C_s = Σ x_sᵀx_{s−1} (s ≥ 1; the semi-interleaved bases need them), summed in float64, the
    summed next-token loss over `tokens` predicted tokens (NaN when the pass skipped the head) and the
    seconds the pass took."""

    second: list[Float[Tensor, "d d"]] | None
    cross: list[Float[Tensor, "d d"]] | None
    nll_sum: float
    tokens: int
    seconds: float = 0.0

    @property
    def cal_nll(self) -> float:
        """The dense model's mean next-token loss on the calibration windows (nats)."""
        return self.nll_sum / self.tokens


def _gram(a: Float[Tensor, "b p d"], b: Float[Tensor, "b p d"]) -> Float[Tensor, "d d"]:
    """Σ aᵀb over one batch's tokens: the product in the compute precision (float32 at least, float64 for a
    float64 model), returned in float64 for the sum over batches (a batch sums ≤ a few thousand tokens, so
    float32 products keep ~1e-6 relative; half the time of float64 ones on a CPU)."""
    dt = torch.promote_types(a.dtype, torch.float32)
    fa, fb = (rearrange(t.to(dt), "b p d -> (b p) d") for t in (a, b))
    return (fa.T @ fb).double()


def _add(acc: list[Tensor] | None, new: list[Tensor]) -> list[Tensor]:
    return new if acc is None else [a + b for a, b in zip(acc, new)]


@torch.no_grad()
def dense_moments(model: nn.Module, cal_ids: Int[Tensor, "n pos"], batch_size: int = BATCH_SIZE, *,
                  second: bool = True, cross: bool = True, logits: bool = True,
                  progress: bool = True) -> DenseMoments:
    """`DenseMoments` of `model` on `cal_ids` (the moments only if asked for; the loss unless `logits` is
    False — `ours` needs only the moments, and the head is a tenth of the pass)."""
    t0 = time.perf_counter()
    adapter = adapter_for(model)
    dev = next(model.parameters()).device
    nll, count = 0.0, 0
    moments: list[Tensor] | None = None
    crosses: list[Tensor] | None = None
    for ids in tqdm(torch.split(cal_ids, batch_size), desc="dense PCA", disable=not progress):
        ids = ids.to(dev)
        sites, out = run_sites(model, ids, adapter, logits=logits)
        nll += next_token_ce(out, ids).double().sum().item() if logits else math.nan
        count += ids[:, 1:].numel()
        if second:
            moments = _add(moments, [_gram(x, x) for x in sites])
        if cross:
            crosses = _add(crosses, [_gram(sites[s], sites[s - 1]) for s in range(1, len(sites))])
        del sites, out
    return DenseMoments(moments, crosses, nll, count, time.perf_counter() - t0)
