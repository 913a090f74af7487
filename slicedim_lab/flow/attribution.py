"""The prediction decomposition: how much each site's write moves the correct-token logit and the loss.

The sliced run equals the dense model with the writes e_s = P y~ − y~ ADDED at every site; along the path
alpha -> dense + alpha * e (alpha in [0, 1]) the change of z (summed correct-token logit or loss) is
sum_s integral <dz/dx_s(alpha), e_s> d alpha. Per site: attr_{logit,loss}_first (gradient at alpha = 0),
_integrated (Gauss-Legendre nodes), _direct (<dz/dx_final(0), e_s>: as if each write went straight to the
head); the summary's remainders (change − sum) make each decomposition exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.bridge import bridge_sites
from ..core.emulate import emulation_hooks, injection_hooks
from ..core.nll import next_token_ce
from ..core.replay import Basis
from ..core.sites import Site
from .lens import wide
from .tables import COLUMNS, site_row

ATTR_KINDS = ("first", "integrated", "direct")
TARGETS = ("logit", "loss")


def gauss_legendre(steps: int) -> list[tuple[float, float]]:
    """(alpha, weight) nodes of the Gauss-Legendre rule with `steps` points on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(steps)
    return [(float((xi + 1) / 2), float(wi / 2)) for xi, wi in zip(x, w)]


def correct_logits(
    logits: Float[Tensor, "b seq vocab"], ids: Int[Tensor, "b seq"]
) -> Float[Tensor, "b seq_1"]:
    """The logit of the next token at every predicted position (at least float32)."""
    lg = wide(logits[:, :-1])
    return lg.gather(-1, ids[:, 1:].to(lg.device)[..., None])[..., 0]


def logit_loss_sums(
    logits: Float[Tensor, "b seq vocab"],
    ids: Int[Tensor, "b seq"],
    ce: Float[Tensor, "b seq_1"] | None = None,
) -> tuple[Tensor, Tensor]:
    """Summed correct-token logit and summed next-token cross-entropy (`core.nll.next_token_ce`, or `ce` when
    the caller already has it) over the predicted positions, summed in float64; differentiable."""
    ce = next_token_ce(logits, ids) if ce is None else ce
    return correct_logits(logits, ids).double().sum(), ce.double().sum()


def site_position_dots(
    grads: Sequence[Float[Tensor, "b seq d_model"]], writes: Sequence[Float[Tensor, "b seq d_model"]]
) -> Float[Tensor, "site b seq"]:
    """<g_s, e_s> at every site and position (float64, on the CPU)."""
    return torch.stack([(g.double() * e.double()).sum(-1).cpu() for g, e in zip(grads, writes)])


def attribute_batch(
    bridge,
    ids: Int[Tensor, "b seq"],
    writes: Sequence[Float[Tensor, "b seq d_model"]],
    steps: int = 4,
    positions: bool = False,
) -> dict[str, np.ndarray | float]:
    """Gradient attribution of one batch's summed correct-token logit and loss to the sites' writes.

    Returns per-site sums: `first` (gradient at alpha = 0: the dense model's linearisation), `integrated`
    (Gauss-Legendre with `steps` nodes; 0 skips it), `direct` (<dz/dx_final(0), e_s>: as if each write went
    straight to the head), and the dense values z0 (summed over tokens). With `positions`, also
    `{first,integrated}_{logit,loss}_pos`: the same attributions before the sum over positions, [site, b, seq]
    (the write at a position also moves the later positions' predictions: that is counted at the write)."""
    S = len(writes)
    out: dict[str, np.ndarray | float] = {f"{k}_{z}": np.zeros(S) for k in ATTR_KINDS for z in TARGETS}
    nodes = [(0.0, 1.0, "first")]
    if steps:
        nodes += [(a, w, "integrated") for a, w in gauss_legendre(steps)]
    for alpha, weight, key in nodes:
        eps = [(alpha * e).detach().requires_grad_(True) for e in writes]
        with torch.enable_grad(), bridge.hooks(fwd_hooks=injection_hooks(eps, bridge_sites(bridge))):
            logits = bridge(ids)
            z_logit, z_loss = logit_loss_sums(logits, ids)
            g_logit = torch.autograd.grad(z_logit, eps, retain_graph=True)
            g_loss = torch.autograd.grad(z_loss, eps)
        for z, g in (("logit", g_logit), ("loss", g_loss)):
            pos = site_position_dots(g, writes)
            out[f"{key}_{z}"] += weight * pos.sum((1, 2)).numpy()
            if positions:
                name = f"{key}_{z}_pos"
                out[name] = out.get(name, 0.0) + weight * pos.numpy()
            if key == "first":
                final = g[-1].double()
                out[f"direct_{z}"] += np.array([float((final * e.double()).sum()) for e in writes])
        if key == "first":
            out["z0_logit"], out["z0_loss"] = float(z_logit.detach()), float(z_loss.detach())
        del logits, g_logit, g_loss
    return out


def add_attributions(acc: dict, part: dict) -> dict:
    """The sums of two `attribute_batch` results (`acc` may be empty)."""
    return part if not acc else {k: acc[k] + part[k] for k in part}


def decomposition_summary(attr: dict, z_sliced: dict, tokens: int) -> dict[str, float]:
    """Means per predicted token: dense and sliced values, the change, each attribution's sum and the
    remainder (change - sum: the nonlinear / interaction term that makes the decomposition exact)."""
    summary: dict[str, float] = {"tokens": tokens}
    for z in TARGETS:
        z0, z1 = attr[f"z0_{z}"] / tokens, z_sliced[z] / tokens
        summary[f"{z}_dense"], summary[f"{z}_sliced"], summary[f"{z}_change"] = z0, z1, z1 - z0
        for k in ATTR_KINDS:
            total = float(np.sum(attr[f"{k}_{z}"])) / tokens
            summary[f"{z}_{k}_sum"] = total
            summary[f"{z}_{k}_remainder"] = (z1 - z0) - total
    return summary


def attribution_rows(
    acc: dict, tokens: int, n_sites: int, basis: str, dim: int | None, sites: Sequence[Site] | None = None
) -> list[dict]:
    """Tidy rows attr_{logit,loss}_{first,integrated,direct} per site: the per-token mean attributions
    (`sites`: the model's site list for the row labels; None: sequential layers)."""
    rows = []
    for z in TARGETS:
        for k in ATTR_KINDS:
            for s in range(n_sites):
                where = site_row(s if sites is None else sites[s])
                rows.append({"basis": basis, "dim": dim, **where, "map": "", "role": "",
                             "metric": f"attr_{z}_{k}", "value": float(acc[f"{k}_{z}"][s]) / tokens})
    return rows


def prediction_decomposition(
    bridge,
    ids: Int[Tensor, "n seq"],
    bases: Sequence[Basis],
    steps: int = 4,
    batch_size: int = 4,
    basis: str = "",
    dim: int | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Standalone prediction decomposition: per-site attributions (tidy rows) of the change of the mean
    correct-token logit and of the mean loss from the dense to the emulated sliced model, and a summary with
    the remainders. dense value + sum of a site attribution column + its remainder = sliced value, exactly."""
    S = len(bases)
    acc: dict = {}
    z_sliced = {"logit": 0.0, "loss": 0.0}
    tokens = 0
    for b in torch.split(ids, batch_size):
        writes: dict[int, Tensor] = {}
        with torch.no_grad(), bridge.hooks(fwd_hooks=emulation_hooks(bases, writes, bridge_sites(bridge))):
            logits = bridge(b)
        zl, zs = logit_loss_sums(logits, b)
        z_sliced["logit"] += float(zl)
        z_sliced["loss"] += float(zs)
        acc = add_attributions(acc, attribute_batch(bridge, b, [writes[s] for s in range(S)], steps))
        tokens += b.shape[0] * (b.shape[1] - 1)
    rows = attribution_rows(acc, tokens, S, basis, dim, bridge_sites(bridge))
    return pd.DataFrame(rows, columns=COLUMNS), decomposition_summary(acc, z_sliced, tokens)
