"""The linear maps that read or write the residual stream, and how a kept width splits them.

Per map (role reader: reads the normalised residual of `site`, with the norm's scale folded in as the sliced
model holds it; writer: adds to the residual forming `site`):
- act_kept / act_dropped: share of the map's output energy on dense eval activations carried by the kept /
  dropped directions (readers: ||W P n||^2 and ||W (I-P) n||^2 over ||W n||^2, which need not sum to 1;
  writers: ||B^T w||^2 / ||w||^2 and its complement); weight_kept: ||sliced W||_F^2 / ||W||_F^2;
  sigma1_ratio: top singular value of the sliced map over the full one (`svd=True`; spectra in `singular`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn as nn
from jaxtyping import Float
from torch import Tensor

from ..adapters import adapter_for
from ..core.replay import Basis
from ..core.sites import Site, is_parallel, layer_of_map, layers_of, model_sites
from .tables import site_row


def linear_maps(model: nn.Module) -> list[dict]:
    """Every linear map that reads or writes the residual stream, from the architecture adapter: `map` (its
    module path inside a decoder layer, or the root path of embed / lm_head), `role`, `site`, `layer` (the
    decoder layer the map belongs to, `core.sites.layer_of_map`: −1 for the embedding, L for the LM head),
    the `module`, the norm `scale` a reader's input carries (norm_offset + weight, folded in by `map_weight`,
    as in the sliced model) and `transposed` (the weight is stored in x out, GPT-2's Conv1D). A parallel
    layer's MLP readers read the layer's input site; a learned position embedding writes site 0 too. Where a
    block's output is normalised before the add (Gemma 3), its writer's `out_scale` is that norm's scale:
    the write is diag(scale)·W·h / rms(W·h), whose linear part (up to a per-token scalar) `map_weight`
    gives."""
    adapter = adapter_for(model)
    get = model.get_submodule
    sites = model_sites(model)
    par, last = is_parallel(sites), sites[-1].index  # the LM head reads the last site

    def scale_of(norm: nn.Module) -> Tensor:
        w = norm.weight
        return w + adapter.norm_offset if adapter.norm_offset else w

    def entry(path: str, role: str, site: int, module: nn.Module, scale: Tensor | None,
              transposed: bool = False, out_scale: Tensor | None = None) -> dict:
        return {"map": path, "role": role, "site": site, "layer": layer_of_map(role, site, par),
                "module": module, "scale": scale, "transposed": transposed, "out_scale": out_scale}

    def post_scale(layer: nn.Module, path: str | None) -> Tensor | None:
        return None if path is None else scale_of(layer.get_submodule(path))

    tr = adapter.transposed
    maps = [entry(adapter.embed, "writer", 0, get(adapter.embed), None)]
    if adapter.pos_embed:
        maps.append(entry(adapter.pos_embed, "writer", 0, get(adapter.pos_embed), None))
    for layer, ls in zip(get(adapter.layers), layers_of(sites)):
        attn_scale = scale_of(layer.get_submodule(adapter.attn_norm))
        mlp_scale = scale_of(layer.get_submodule(adapter.mlp_norm))
        maps += [entry(p, "reader", ls.inp, layer.get_submodule(p), attn_scale, tr) for p in adapter.attn_in]
        attn_out, mlp_out = layer.get_submodule(adapter.attn_out), layer.get_submodule(adapter.mlp_out)
        maps.append(entry(adapter.attn_out, "writer", ls.own[0], attn_out, None, tr,
                          post_scale(layer, adapter.attn_post_norm)))
        maps += [entry(p, "reader", ls.mlp_inp, layer.get_submodule(p), mlp_scale, tr)
                 for p in adapter.mlp_in]
        maps.append(entry(adapter.mlp_out, "writer", ls.out, mlp_out, None, tr,
                          post_scale(layer, adapter.mlp_post_norm)))
    head_scale = scale_of(get(adapter.final_norm))
    maps.append(entry(adapter.lm_head, "reader", last, get(adapter.lm_head), head_scale))
    return maps


@torch.no_grad()
def map_weight(m: dict) -> Float[Tensor, "out inp"]:
    """A map's weight as out x in float64 (embedding: D x vocab), a reader's norm scale folded in (and a
    post-normed writer's output scale)."""
    w = m["module"].weight.detach().double()
    if isinstance(m["module"], nn.Embedding):
        return w.T
    w = w.T if m.get("transposed") else w
    w = w if m.get("out_scale") is None else m["out_scale"].double()[:, None] * w
    return w if m["scale"] is None else w * m["scale"].double()[None, :]


def gram_singular_values(gram: Float[Tensor, "k k"], rank: int) -> Float[Tensor, " r"]:
    """Singular values (descending, the top `rank`) of a map from its D-side Gram matrix (float64): W^T W for
    a reader, W W^T for a writer; the sliced map's Gram is B^T G B. Accurate to ~1e-8 of the top one."""
    return torch.linalg.eigvalsh(gram).flip(0)[:rank].clamp_min(0).sqrt()


def rms_normalise(x: Float[Tensor, "*b d"], eps: float, centred: bool = False) -> Float[Tensor, "*b d"]:
    """Weightless RMS normalisation over the full width D (what the sliced model's norms compute), float64;
    `centred`: of the mean-free residual (a LayerNorm model's, as the sliced model holds it)."""
    xf = x.double()
    xf = xf - xf.mean(-1, keepdim=True) if centred else xf
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)


class MapDecomposition:
    """The linear-map rows of a flow report at any kept width, on cached dense activations (float32 matmuls
    for float32 models, float64 sums). Keeps, per map, its dense output energy and its D-side Gram (built on
    the first `svd=True`), so a later d' costs only the projected terms."""

    def __init__(self, maps: list[dict], d_model: int, eps: float, work_dtype: torch.dtype,
                 centred: bool = False, sites: Sequence[Site] | None = None):
        self.maps, self.D, self.eps, self.work_dtype = maps, d_model, eps, work_dtype
        self.centred = centred  # LayerNorm models: readers see the mean-free residual
        self.sites = sites  # the model's site list (labels of the rows); None: sequential layers
        self.gram: dict[int, tuple[Tensor, int]] = {}
        self.energy: dict[int, float] = {}

    @torch.no_grad()
    def stats(
        self,
        bases: Sequence[Basis],
        sites: Sequence[Float[Tensor, "n seq d_model"]],
        writes: Sequence[Float[Tensor, "n seq d_model"]],
    ) -> dict[int, tuple[float, float]]:
        """(act_kept, act_dropped) of every map, by its index in `maps`: the readers of a site share one
        projected input, so each site costs two matmuls whatever its readers."""
        by_site: dict[int, list[int]] = {}
        for k, m in enumerate(self.maps):
            by_site.setdefault(m["site"], []).append(k)
        stats: dict[int, tuple[float, float]] = {}
        for s, ks in by_site.items():
            B = bases[s].to(self.work_dtype)
            d = B.shape[1]
            readers = [k for k in ks if self.maps[k]["role"] == "reader"]
            for k in (k for k in ks if self.maps[k]["role"] == "writer"):
                w = writes[s].reshape(-1, self.D).to(self.work_dtype)
                total = float(w.double().pow(2).sum())
                kept = 1.0 if d == self.D else float((w @ B).double().pow(2).sum()) / total
                stats[k] = (kept, 1.0 - kept)
            if not readers:
                continue
            if d == self.D:
                stats.update({k: (1.0, 0.0) for k in readers})
                continue
            n = rms_normalise(sites[s].reshape(-1, self.D), self.eps, self.centred).to(self.work_dtype)
            pn = (n @ B) @ B.T
            for k in readers:
                W = map_weight(self.maps[k]).to(self.work_dtype)
                if k not in self.energy:
                    self.energy[k] = float((n @ W.T).double().pow(2).sum())
                total = self.energy[k]
                stats[k] = (float((pn @ W.T).double().pow(2).sum()) / total,
                            float(((n - pn) @ W.T).double().pow(2).sum()) / total)
        return stats

    @torch.no_grad()
    def singular(self, k: int, basis: Basis) -> tuple[Float[Tensor, " r"], Float[Tensor, " r_d"]]:
        """Singular values of map k at full width and sliced to `basis` (from the cached Gram)."""
        m = self.maps[k]
        if k not in self.gram:
            W = map_weight(m)
            self.gram[k] = (W.T @ W if m["role"] == "reader" else W @ W.T, min(W.shape))
        G, rank = self.gram[k]
        B = basis.double()
        d = B.shape[1]
        full = gram_singular_values(G, rank)
        sliced = full if d == self.D else gram_singular_values(B.T @ G @ B, min(rank, d))
        return full, sliced

    def rows(
        self,
        bases: Sequence[Basis],
        sites: Sequence[Float[Tensor, "n seq d_model"]],
        writes: Sequence[Float[Tensor, "n seq d_model"]],
        basis: str,
        dim: int,
        svd: bool,
    ) -> tuple[list[dict], pd.DataFrame | None]:
        """The tidy map rows (act_kept, act_dropped, and with `svd` weight_kept, sigma1_ratio) and, with
        `svd`, the singular-value table (one row per map x index)."""
        stats = self.stats(bases, sites, writes)
        rows: list[dict] = []
        sv_rows: list[dict] = []
        for k, m in enumerate(self.maps):
            s = m["site"]
            where = site_row(s if self.sites is None else self.sites[s])
            base = {"basis": basis, "dim": dim, **where, "map": m["map"], "role": m["role"]}
            rows += [{**base, "metric": "act_kept", "value": stats[k][0]},
                     {**base, "metric": "act_dropped", "value": stats[k][1]}]
            if not svd:
                continue
            full, sliced = self.singular(k, bases[s])
            kept_w = float(sliced.pow(2).sum() / full.pow(2).sum())
            rows += [{**base, "metric": "weight_kept", "value": kept_w},
                     {**base, "metric": "sigma1_ratio", "value": float(sliced[0] / full[0])}]
            sv_rows += [{**base, "index": i + 1, "sigma_full": float(full[i]),
                         "sigma_sliced": float(sliced[i]) if i < sliced.shape[0] else 0.0}
                        for i in range(full.shape[0])]
        return rows, (pd.DataFrame(sv_rows) if svd else None)
