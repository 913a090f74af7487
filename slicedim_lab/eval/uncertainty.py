"""How sure a number is: seeded bootstrap intervals over the windows a number was measured on.

Every window holds the same number of predicted tokens, so a mean over windows is the mean over tokens; the
windows (not the tokens, which are correlated inside a window) are the independent units resampled.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from jaxtyping import Float
from torch import Tensor

LEVEL = 0.9  # the nominal level of every interval in this package
Z = NormalDist().inv_cdf((1 + LEVEL) / 2)  # 1.645: the normal quantile of a two-sided LEVEL interval
N_BOOT = 2000


def bootstrap_means(
    values: Float[Tensor, "windows ..."], n_boot: int = N_BOOT, seed: int = 0
) -> Float[Tensor, "boot ..."]:
    """Means of `n_boot` resamples (with replacement) of the rows of `values`, seeded."""
    g = torch.Generator().manual_seed(seed)
    n = values.shape[0]
    idx = torch.randint(0, n, (n_boot, n), generator=g)
    return values.double()[idx].mean(1)


def quantiles(samples: Float[Tensor, "boot ..."], level: float = LEVEL) -> tuple[Tensor, Tensor]:
    """The central `level` interval of bootstrap samples along their first axis."""
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(samples.double(), q, dim=0)
    return lo, hi


def ppl_interval(window_nll: list[float], level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Perplexity interval from the mean loss of each window: exp of the bootstrap interval of the mean.
    A single window gives a zero-width interval (nothing to resample)."""
    v = torch.tensor(window_nll, dtype=torch.float64)
    if v.numel() < 2:
        m = math.exp(float(v.mean())) if v.numel() else float("nan")
        return m, m
    lo, hi = quantiles(bootstrap_means(v, seed=seed), level)
    return math.exp(float(lo)), math.exp(float(hi))
