"""The per-site increment δ_s: what cutting site s newly adds to the residual stream (PAPER.md), in one place.

With x_s the dense residual at site s and P_s = B_s B_sᵀ the projector on the kept directions of site s,

    u_s = x_s − (I − P_{s−1}) x_{s−1}   (u_0 = x_0): the stream at s once the upstream cut is carried over,
    δ_s = −(I − P_s) u_s:               the perturbation site s newly adds.

`fisher` weights it by sampled-label gradients (`increment_dot`; its d'-independent tables use the same
identity in each site's eigenbasis), `ours` adds it to the dense model's tangent (`increment`), and the
semi-interleaved bases P̃_s are the top PCA of u_s computed from dense moments alone (`semi_pcas`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from jaxtyping import Float
from torch import Tensor

from ..core.pca import SitePCA, pca


def upstream(x: Float[Tensor, "*n d"], x_prev: Float[Tensor, "*n d"] | None,
             b_prev: Float[Tensor, "d k"] | None) -> Float[Tensor, "*n d"]:
    """u_s = x_s − (I − P_{s−1}) x_{s−1} with P = b bᵀ (`x_prev` None: site 0, u_0 = x_0)."""
    return x if x_prev is None else x - x_prev + (x_prev @ b_prev) @ b_prev.T


def increment(x: Float[Tensor, "*n d"], x_prev: Float[Tensor, "*n d"] | None, b: Float[Tensor, "d k"],
              b_prev: Float[Tensor, "d k"] | None) -> Float[Tensor, "*n d"]:
    """δ_s = −(I − P_s) u_s."""
    u = upstream(x, x_prev, b_prev)
    return -(u - (u @ b) @ b.T)


def increment_dot(g: Float[Tensor, "n d"], x: Float[Tensor, "n d"], x_prev: Float[Tensor, "n d"] | None,
                  b: Float[Tensor, "d k"], b_prev: Float[Tensor, "d k"] | None) -> Float[Tensor, " n"]:
    """g·δ_s per token without forming δ_s: −(g·u_s − (gB_s)·(u_sB_s))."""
    u = upstream(x, x_prev, b_prev)
    return -((g * u).sum(-1) - ((g @ b) * (u @ b)).sum(-1))


def semi_pcas(
    moments: list[Float[Tensor, "d d"]], cross: list[Float[Tensor, "d d"]], dim: int, n_charged: int
) -> Iterator[SitePCA]:
    """The semi-interleaved chain at width `dim`, from dense moments only, one site at a time: site s's PCA is
    that of u_s (the dense stream after the cuts upstream, block outputs kept dense), whose second moment is
    H_s − C_s R − R C_sᵀ + R H_{s−1} R with R = I − P̃_{s−1}, C_s = Σ x_sᵀx_{s−1}, and P̃_s the projector on
    its top `dim` eigenvectors."""
    D = moments[0].shape[0]
    eye = torch.eye(D, dtype=torch.float64)
    proj = None
    for s in range(n_charged):
        if s == 0:
            h = moments[0]
        else:
            r = eye - proj
            h = moments[s] - cross[s - 1] @ r - r @ cross[s - 1].T + r @ moments[s - 1] @ r
        p = pca(h)
        yield p
        b = p.vectors[:, :dim]
        proj = b @ b.T


def semi_bases(
    moments: list[Float[Tensor, "d d"]], cross: list[Float[Tensor, "d d"]], dim: int, n_charged: int
) -> list[Float[Tensor, "d k"]]:
    """Semi-interleaved bases at width `dim` (the top `dim` eigenvectors of `semi_pcas`' chain)."""
    return [p.vectors[:, :dim] for p in semi_pcas(moments, cross, dim, n_charged)]
