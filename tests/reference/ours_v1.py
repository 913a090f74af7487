"""`ours` v1 as frozen (experiments/results/ours_frozen.md, the commit whose message starts "FREEZE ours:"):
the reference implementation the package's `ours` is checked against
(tests/unit/predict/test_ours_reference.py), kept apart from the package so that refactoring it cannot move
the reference.

Frozen as they were: the settings (`OURS_V1`), the dense moments (float64 products, batches of 4 windows),
the semi-interleaved bases (the chain and damped PCA of the package at 1e8c26c), the increment δ_s, the
linearisation by forward-mode AD (the primal is the dense model; only the tangent carries δ_s), the exact
cross-entropy increase with the true next tokens, the closed form, its v1 interval (additive in log PPL,
σ_β = 0.10, no anchor model error) and the v1 anchored mode. The dense forward is the package's plain
replay (`core.replay.run_sites`, itself checked against transformers), run with eager attention.
"""

from __future__ import annotations

import math

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn as nn
from einops import rearrange
from torch import Tensor

from slicedim_lab.core.replay import run_sites

OURS_V1 = {
    "anchor_dim": 512,  # d'_J: the mild cut where first-order theory is trusted (of D = 576)
    "beta": 1.44,  # fitted on python-docs measured points
    "jvp_windows": "eval",
    "batch_size": 2,
    "interval_z": 1.6449,  # 90% two-sided normal
    "sigma_beta": 0.10,
    "bootstrap": 2000,
    "seed": 0,
}


@torch.no_grad()
def dense_moments(model: nn.Module, cal_ids: Tensor,
                  batch_size: int = 4) -> tuple[list[Tensor], list[Tensor]]:
    """H_s = Σ x_sᵀx_s (float64) for every site and C_s = Σ x_sᵀx_{s−1} for s ≥ 1."""
    H = C = None
    for ids in torch.split(cal_ids, batch_size):
        sites, _ = run_sites(model, ids, logits=False)
        flat = [rearrange(x.double(), "b p d -> (b p) d") for x in sites]
        h = [f.T @ f for f in flat]
        c = [flat[s].T @ flat[s - 1] for s in range(1, len(flat))]
        H = h if H is None else [a + b for a, b in zip(H, h)]
        C = c if C is None else [a + b for a, b in zip(C, c)]
    return H, C


def pca_vectors(h: Tensor, damp: float = 0.01) -> Tensor:
    """Eigenvectors of H + damp·mean(diag H)·I, descending."""
    h = h.double()
    shift = damp * torch.diagonal(h).mean()
    _, vecs = torch.linalg.eigh(h + shift * torch.eye(h.shape[0], dtype=h.dtype))
    return vecs.flip(1)


def semi_bases(H: list[Tensor], C: list[Tensor], dim: int, charged: int) -> list[Tensor]:
    """Top-`dim` PCA of u_s = x_s − (I−P̃_{s−1})x_{s−1}, from H and C only."""
    eye = torch.eye(H[0].shape[0], dtype=torch.float64)
    out, proj = [], None
    for s in range(charged):
        if s == 0:
            h = H[0]
        else:
            r = eye - proj
            h = H[s] - C[s - 1] @ r - r @ C[s - 1].T + r @ H[s - 1] @ r
        b = pca_vectors(h)[:, :dim]
        out.append(b)
        proj = b @ b.T
    return out


def increment(x: Tensor, x_prev: Tensor | None, b: Tensor, b_prev: Tensor | None) -> Tensor:
    """δ = −(I−P)(x − (I−P_prev) x_prev) with P = b bᵀ (x_prev None: site 0)."""
    u = x if x_prev is None else x - x_prev + (x_prev @ b_prev) @ b_prev.T
    return -(u - (u @ b) @ b.T)


def jvp_logits(model: nn.Module, ids: Tensor, bases: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Dense logits z and Δz = Σ_s J_s δ_s from ONE forward-mode pass with every charged site's increment
    added to the tangent."""
    charged, prev = len(bases), {}

    def inject(s: int, x: Tensor) -> Tensor:
        p, t = fwAD.unpack_dual(x)
        if s >= charged:
            return x
        d = increment(p, prev.get(s - 1), bases[s].to(p), bases[s - 1].to(p) if s else None)
        prev[s] = p
        return fwAD.make_dual(p, d if t is None else t + d)

    old = model.config._attn_implementation
    model.set_attn_implementation("eager")  # SDPA has no forward-mode derivative on the CPU
    try:
        with torch.no_grad(), fwAD.dual_level():
            _, logits = run_sites(model, ids, project=inject)
            z, dz = (t.clone() for t in fwAD.unpack_dual(logits))
    finally:
        model.set_attn_implementation(old)
    return z, dz


def ce_increase(z: Tensor, dz: Tensor, ids: Tensor) -> Tensor:
    """Per predicted token [b, p−1]: CE(z + Δz, y) − CE(z, y) with the true next tokens y."""
    z, dz, y = z[:, :-1].float(), dz[:, :-1].float(), ids[:, 1:]
    ce0 = -z.log_softmax(-1).gather(-1, y[..., None])[..., 0]
    return -(z + dz).log_softmax(-1).gather(-1, y[..., None])[..., 0] - ce0


def ours_anchor(model: nn.Module, cal_ids: Tensor, eval_ids: Tensor, settings: dict | None = None) -> dict:
    """The dense-only statistics of v1: moments, semi-interleaved bases at d'_J, one JVP over the eval
    windows; the per-window mean CE increase."""
    st = {**OURS_V1, **(settings or {})}
    charged = 2 * model.config.num_hidden_layers  # the last site keeps D (the LM head reads it)
    H, C = dense_moments(model, cal_ids)
    bases = [b.float() for b in semi_bases(H, C, st["anchor_dim"], charged)]
    per = []
    for ids in torch.split(eval_ids, st["batch_size"]):
        z, dz = jvp_logits(model, ids, bases)
        per += ce_increase(z, dz, ids).double().mean(1).tolist()
    return {"hidden": model.config.hidden_size, "window_dl": per, "settings": st}


def _boot_rel_se(per: list[float], n_boot: int, seed: int) -> float:
    w = torch.tensor(per, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(per), (n_boot, len(per)), generator=g)
    return (w[idx].mean(1).std() / w.mean()).item()


def predict(anchor: dict, ppl0: float, dims: list[int]) -> list[dict]:
    """ΔL, PPL and the v1 90% interval at every width in `dims`."""
    st, D = anchor["settings"], anchor["hidden"]
    dl_j = sum(anchor["window_dl"]) / len(anchor["window_dl"])
    s_j = 1 - st["anchor_dim"] / D
    sig_j = _boot_rel_se(anchor["window_dl"], st["bootstrap"], st["seed"])
    out = []
    for d in dims:
        s = 1 - d / D
        if s <= 0:
            out.append({"dim": d, "dloss": 0.0, "ppl": ppl0, "ppl_lo": ppl0, "ppl_hi": ppl0})
            continue
        dl = dl_j * (s / s_j) ** st["beta"]
        sd = dl * math.hypot(sig_j, math.log(s / s_j) * st["sigma_beta"])
        z = st["interval_z"]
        out.append({"dim": d, "sparsity": s, "dloss": dl, "ppl": ppl0 * math.exp(dl),
                    "ppl_lo": ppl0 * math.exp(dl - z * sd), "ppl_hi": ppl0 * math.exp(dl + z * sd)})
    return out


def predict_anchored(measured_dim: int, measured_dl: float, hidden: int, ppl0: float, dims: list[int],
                     settings: dict | None = None) -> list[dict]:
    """Anchored mode: one measured width d'_m replaces the first-order anchor; same exponent β; the v1
    interval σ = ΔL·|ln(s/s_m)|·σ_β."""
    st = {**OURS_V1, **(settings or {})}
    s_m = 1 - measured_dim / hidden
    out = []
    for d in dims:
        s = 1 - d / hidden
        if s <= 0:
            out.append({"dim": d, "dloss": 0.0, "ppl": ppl0})
            continue
        dl = measured_dl * (s / s_m) ** st["beta"]
        sd, z = dl * abs(math.log(s / s_m)) * st["sigma_beta"], st["interval_z"]
        out.append({"dim": d, "sparsity": s, "dloss": dl, "ppl": ppl0 * math.exp(dl),
                    "ppl_lo": ppl0 * math.exp(dl - z * sd), "ppl_hi": ppl0 * math.exp(dl + z * sd)})
    return out
