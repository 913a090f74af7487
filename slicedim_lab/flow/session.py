"""Activation flow under slicing: where along depth, and through which linear maps, a kept width d' hurts.

Everything is a tidy pandas table (one row per site x metric, plus per-map rows) with columns
`basis, dim, site, hook, layer, kind, map, role, metric, value`: `site` numbers the residual along depth
(0 = after the embeddings, 2i+1 = after layer i's attention block, 2i+2 = after its MLP block), `hook` is the
TransformerLens name of that residual, `layer` is -1 for the embeddings, `kind` is embed | attn | mlp.

`FlowSession` is built for a slider: one dense PCA of the calibration windows (on first use) and one dense
pass over the eval windows (site residuals, block writes and the dense logit-lens statistics are cached),
after which any d' with `dense` bases costs one emulated forward (plus the optional gradient passes of the
prediction decomposition); `interleaved` bases cost one SliceGPT calibration per d' (the last one is kept).

Metrics per site s (x = dense residual, x~ = sliced residual, y~ = sliced residual before the projection,
e = P y~ - y~ the site's write, B the site's D x d_s basis):
- d_site; retained_cal: sum_{i<=d_s} lambda_i / sum lambda_i of the PCA the bases came from;
  retained_eval_dense: sum ||B^T x||^2 / sum ||x||^2 on eval text; retained_eval: sum ||x~||^2 / sum ||y~||^2,
  what the projection keeps of the activations that actually reach it in the sliced model;
- rel_error: mean_t ||x~ - x|| / ||x||; cosine: mean_t cos(x~, x); norm_dense, norm_sliced: mean_t ||x||;
  norm_growth_dense / norm_growth_sliced: mean norm relative to the previous site's;
- lens_kl: mean_t KL(dense lens || sliced lens) of next-token distributions (final norm + unembedding applied
  to the residual at s); lens_loss_dense / lens_loss_sliced: their next-token cross-entropy;
- attr_{logit,loss}_{first,integrated,direct}: prediction decomposition (`prediction_decomposition`).
Per linear map (role reader: reads the normalised residual of `site`, with the norm's scale folded in as the
sliced model holds it; writer: adds to the residual forming `site`):
- act_kept / act_dropped: share of the map's output energy on dense eval activations carried by the kept /
  dropped directions (readers: ||W P n||^2 and ||W (I-P) n||^2 over ||W n||^2, which need not sum to 1;
  writers: ||B^T w||^2 / ||w||^2 and its complement); weight_kept: ||sliced W||_F^2 / ||W||_F^2;
  sigma1_ratio: top singular value of the sliced map over the full one (`svd=True`; spectra in `singular`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..adapters import adapter_for
from ..core.bridge import boot_bridge
from ..core.emulate import BASIS_KINDS, emulation_hooks, injection_hooks
from ..core.pca import SitePCA
from ..core.replay import Basis, dense_bases, dense_pcas
from ..core.sites import layer_sites, lens_sites, n_sites, site_at, site_hooks
from ..core.slicing import slice_model
from ..core.widths import site_dims
from ..errors import UsageError

COLUMNS = ["basis", "dim", "site", "hook", "layer", "kind", "map", "role", "metric", "value"]


# ----------------------------------------------------------------------------- small helpers


def site_row(site: int) -> dict:
    """The site columns of a table row (`core.sites.Site.row`)."""
    return site_at(site).row()


def retained_at(p: SitePCA | None, d: int) -> float:
    """Calibration energy kept by the top d eigenvectors (1 at full width, or when the site had no PCA)."""
    if p is None or d >= p.eigvals.shape[0]:
        return 1.0
    return float(p.retained_energy()[d - 1])


def _rms_normalise(x: Float[Tensor, "*b d"], eps: float) -> Float[Tensor, "*b d"]:
    """Weightless RMS normalisation over the full width D (what the sliced model's norms compute)."""
    xf = x.double()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)


def gauss_legendre(steps: int) -> list[tuple[float, float]]:
    """(alpha, weight) nodes of the Gauss-Legendre rule with `steps` points on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(steps)
    return [(float((xi + 1) / 2), float(wi / 2)) for xi, wi in zip(x, w)]


def spectrum_table(pcas: Sequence[SitePCA | None], basis: str = "dense") -> pd.DataFrame:
    """Eigen-spectrum of every site's second moment: one row per site x eigenvalue index (1-based), with the
    eigenvalue, its share of the trace and the cumulative retained energy at that width."""
    rows = []
    for s, p in enumerate(pcas):
        if p is None:
            continue
        lam = p.eigvals.clamp_min(0).double()
        share = lam / lam.sum()
        cum = share.cumsum(0)
        base = {"basis": basis, **site_row(s)}
        rows += [{**base, "index": i + 1, "eigval": float(lam[i]), "share": float(share[i]),
                  "retained": float(cum[i])} for i in range(lam.shape[0])]
    return pd.DataFrame(rows)


def per_layer(table: pd.DataFrame) -> pd.DataFrame:
    """One row per layer (-1 = embeddings): the site metrics at the layer's output (its MLP site), the two
    sites' summed attributions and the layer's least-kept map (lowest act_kept)."""
    t = table[table["map"] == ""]
    out_site = t.groupby("layer")["site"].max()
    at_out = t[t["site"].isin(out_site.values)].pivot_table(index="layer", columns="metric", values="value")
    attr = t[t["metric"].str.startswith("attr_")].pivot_table(index="layer", columns="metric", values="value",
                                                              aggfunc="sum")
    res = at_out.drop(columns=[c for c in at_out.columns if c.startswith("attr_")])
    if "retained_eval" in t["metric"].values:
        res["retained_eval_min"] = t[t["metric"] == "retained_eval"].groupby("layer")["value"].min()
    res = res.join(attr)
    maps = table[(table["map"] != "") & (table["metric"] == "act_kept")]
    if len(maps):
        worst = maps.loc[maps.groupby("layer")["value"].idxmin()].set_index("layer")
        res["worst_map"] = worst["map"]
        res["worst_map_act_kept"] = worst["value"]
    return res.reset_index()


# ----------------------------------------------------------------------------- the dense pass (computed once)


@dataclass
class LensCache:
    """Dense logit-lens statistics at one site, per predicted token: sum_v p log p, the expected unembedding
    m = U^T p (so KL(dense || sliced) needs only the sliced logsumexp) and the target's log-probability."""

    neg_entropy: Float[Tensor, "n pos"]
    expected_u: Float[Tensor, "n pos d_model"]
    target_logp: Float[Tensor, "n pos"]


@dataclass
class DenseEval:
    """The dense model on the eval windows: site residuals, block writes (hook_embed / hook_attn_out /
    hook_mlp_out), logit-lens caches, loss and accuracy."""

    ids: Int[Tensor, "n seq"]
    sites: list[Float[Tensor, "n seq d_model"]]
    writes: list[Float[Tensor, "n seq d_model"]]
    lens: dict[int, LensCache]
    nll: float
    accuracy: float


class Head:
    """Final norm + unembedding of the dense model, applied to any residual (the logit lens)."""

    def __init__(self, model: nn.Module):
        adapter = adapter_for(model)
        self.norm = model.get_submodule(adapter.final_norm)
        self.lm_head = model.get_submodule(adapter.lm_head)

    @torch.no_grad()
    def normed(self, x: Float[Tensor, "*b d_model"]) -> Float[Tensor, "*b d_model"]:
        return self.norm(x)

    @torch.no_grad()
    def logits(self, x: Float[Tensor, "*b d_model"]) -> Float[Tensor, "*b vocab"]:
        return _wide(self.lm_head(self.norm(x)))


# ----------------------------------------------------------------------------- prediction decomposition


def _wide(x: Tensor) -> Tensor:
    """At least float32 (float64 stays float64): logits and log-probabilities are reduced in this."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _targets_logit_loss(
    logits: Float[Tensor, "b seq vocab"], ids: Int[Tensor, "b seq"]
) -> tuple[Tensor, Tensor]:
    """Summed correct-token logit and summed next-token cross-entropy over the predicted positions."""
    lg = _wide(logits[:, :-1])
    tgt = ids[:, 1:].to(lg.device)
    logit = lg.gather(-1, tgt[..., None]).sum()
    loss = F.cross_entropy(rearrange(lg, "b s v -> (b s) v"), rearrange(tgt, "b s -> (b s)"), reduction="sum")
    return logit, loss


def attribute_batch(
    bridge,
    ids: Int[Tensor, "b seq"],
    writes: Sequence[Float[Tensor, "b seq d_model"]],
    steps: int = 4,
) -> dict[str, np.ndarray | float]:
    """Gradient attribution of one batch's summed correct-token logit and loss to the sites' writes.

    The sliced run equals the dense model with its writes e_s ADDED at every site; along the path
    alpha -> dense + alpha * e (alpha in [0, 1]) the change is sum_s integral <dz/dx_s(alpha), e_s> d alpha.
    Returns per-site sums: `first` (gradient at alpha = 0: the dense model's linearisation), `integrated`
    (Gauss-Legendre with `steps` nodes; 0 skips it), `direct` (<dz/dx_final(0), e_s>: as if each write went
    straight to the head), and the dense values z0 (summed over tokens)."""
    S = len(writes)
    out: dict[str, np.ndarray | float] = {f"{k}_{z}": np.zeros(S) for k in ("first", "integrated", "direct")
                                          for z in ("logit", "loss")}
    nodes = [(0.0, 1.0, "first")]
    if steps:
        nodes += [(a, w, "integrated") for a, w in gauss_legendre(steps)]
    for alpha, weight, key in nodes:
        eps = [(alpha * e).detach().requires_grad_(True) for e in writes]
        with torch.enable_grad(), bridge.hooks(fwd_hooks=injection_hooks(eps)):
            logits = bridge(ids)
            z_logit, z_loss = _targets_logit_loss(logits, ids)
            g_logit = torch.autograd.grad(z_logit, eps, retain_graph=True)
            g_loss = torch.autograd.grad(z_loss, eps)
        for z, g in (("logit", g_logit), ("loss", g_loss)):
            dots = np.array([float((gs.double() * e.double()).sum()) for gs, e in zip(g, writes)])
            out[f"{key}_{z}"] += weight * dots
            if key == "first":
                final = g[-1].double()
                out[f"direct_{z}"] += np.array([float((final * e.double()).sum()) for e in writes])
        if key == "first":
            out["z0_logit"], out["z0_loss"] = float(z_logit.detach()), float(z_loss.detach())
        del logits, g_logit, g_loss
    return out


def decomposition_summary(attr: dict, z_sliced: dict, tokens: int) -> dict[str, float]:
    """Means per predicted token: dense and sliced values, the change, each attribution's sum and the
    remainder (change - sum: the nonlinear / interaction term that makes the decomposition exact)."""
    summary: dict[str, float] = {"tokens": tokens}
    for z in ("logit", "loss"):
        z0, z1 = attr[f"z0_{z}"] / tokens, z_sliced[z] / tokens
        summary[f"{z}_dense"], summary[f"{z}_sliced"], summary[f"{z}_change"] = z0, z1, z1 - z0
        for k in ("first", "integrated", "direct"):
            total = float(np.sum(attr[f"{k}_{z}"])) / tokens
            summary[f"{z}_{k}_sum"] = total
            summary[f"{z}_{k}_remainder"] = (z1 - z0) - total
    return summary


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
        with torch.no_grad(), bridge.hooks(fwd_hooks=emulation_hooks(bases, writes)):
            logits = bridge(b)
        zl, zs = _targets_logit_loss(logits, b)
        z_sliced["logit"] += float(zl)
        z_sliced["loss"] += float(zs)
        part = attribute_batch(bridge, b, [writes[s] for s in range(S)], steps)
        acc = part if not acc else {k: acc[k] + part[k] for k in acc}
        tokens += b.shape[0] * (b.shape[1] - 1)
    rows = _attribution_rows(acc, tokens, S, basis, dim)
    return pd.DataFrame(rows, columns=COLUMNS), decomposition_summary(acc, z_sliced, tokens)


def _attribution_rows(acc: dict, tokens: int, S: int, basis: str, dim: int | None) -> list[dict]:
    rows = []
    for z in ("logit", "loss"):
        for k in ("first", "integrated", "direct"):
            for s in range(S):
                rows.append({"basis": basis, "dim": dim, **site_row(s), "map": "", "role": "",
                             "metric": f"attr_{z}_{k}", "value": float(acc[f"{k}_{z}"][s]) / tokens})
    return rows


# ----------------------------------------------------------------------------- linear maps


def linear_maps(model: nn.Module) -> list[dict]:
    """Every linear map that reads or writes the residual stream, from the architecture adapter: `map` (its
    module path inside a decoder layer, or the root path of embed / lm_head), `role`, `site`, `layer`, the
    `module` and the norm `scale` a reader's input carries (folded in by `map_weight`, as in the sliced
    model)."""
    adapter = adapter_for(model)
    get = model.get_submodule
    L = model.config.num_hidden_layers
    maps = [{"map": adapter.embed, "role": "writer", "site": 0, "module": get(adapter.embed), "scale": None}]
    for layer, ls in zip(get(adapter.layers), layer_sites(L)):
        norms = (layer.get_submodule(adapter.attn_norm).weight, layer.get_submodule(adapter.mlp_norm).weight)
        maps += [{"map": p, "role": "reader", "site": ls.inp, "module": layer.get_submodule(p),
                  "scale": norms[0]} for p in adapter.attn_in]
        maps.append({"map": adapter.attn_out, "role": "writer", "site": ls.mid,
                     "module": layer.get_submodule(adapter.attn_out), "scale": None})
        maps += [{"map": p, "role": "reader", "site": ls.mid, "module": layer.get_submodule(p),
                  "scale": norms[1]} for p in adapter.mlp_in]
        maps.append({"map": adapter.mlp_out, "role": "writer", "site": ls.out,
                     "module": layer.get_submodule(adapter.mlp_out), "scale": None})
    maps.append({"map": adapter.lm_head, "role": "reader", "site": n_sites(L) - 1,
                 "module": get(adapter.lm_head), "scale": get(adapter.final_norm).weight})
    return maps


@torch.no_grad()
def map_weight(m: dict) -> Float[Tensor, "out inp"]:
    """A map's weight as out x in float64 (embedding: D x vocab), a reader's norm scale folded in."""
    w = m["module"].weight.detach().double()
    if isinstance(m["module"], nn.Embedding):
        return w.T
    return w if m["scale"] is None else w * m["scale"].double()[None, :]


def _gram_singular_values(gram: Float[Tensor, "k k"], rank: int) -> Float[Tensor, " r"]:
    """Singular values (descending, the top `rank`) of a map from its D-side Gram matrix (float64): W^T W for
    a reader, W W^T for a writer; the sliced map's Gram is B^T G B. Accurate to ~1e-8 of the top one."""
    return torch.linalg.eigvalsh(gram).flip(0)[:rank].clamp_min(0).sqrt()


# ----------------------------------------------------------------------------- the session


@dataclass
class FlowReport:
    """The flow at one (basis, d'): tidy `table`, `singular` values of every map (if asked), and a `summary`
    (dense/sliced loss, ppl, accuracy, KL, and the prediction decomposition's totals and remainders)."""

    basis: str
    dim: int
    dims: list[int]
    table: pd.DataFrame
    summary: dict[str, float]
    singular: pd.DataFrame | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def per_layer(self) -> pd.DataFrame:
        return per_layer(self.table)


class FlowSession:
    """One dense calibration + one dense eval pass; then `report(d', basis)` for any d' (a slider).

    `model` is the dense transformers model (left untouched: the bridge runs on a copy); `cal_ids` feed the
    dense PCA (and interleaved calibrations), `eval_ids` are the text every metric is measured on."""

    def __init__(
        self,
        model: nn.Module,
        cal_ids: Int[Tensor, "n_cal seq_cal"],
        eval_ids: Int[Tensor, "n_eval seq"],
        *,
        tokenizer=None,
        pcas: Sequence[SitePCA] | None = None,
        batch_size: int = 4,
        lens: str | int | Sequence[int] = "post",
        progress: bool = False,
    ):
        if eval_ids.ndim != 2 or eval_ids.shape[1] < 2 or eval_ids.shape[0] < 1:
            raise UsageError(f"eval windows must be [n >= 1, seq >= 2], got {tuple(eval_ids.shape)}")
        self.model = model.eval()
        self.adapter = adapter_for(model)
        self.cal_ids, self.batch_size, self.progress = cal_ids, batch_size, progress
        self.L, self.D = model.config.num_hidden_layers, model.config.hidden_size
        self.S = n_sites(self.L)
        self.eps = float(getattr(model.config, self.adapter.norm_eps))
        dt = next(model.parameters()).dtype
        self.work_dtype = dt if dt == torch.float64 else torch.float32  # of the activation statistics
        self.seconds: dict[str, float] = {}
        t = time.perf_counter()
        self.bridge = boot_bridge(model, tokenizer)
        self.seconds["boot"] = time.perf_counter() - t
        self._pcas = list(pcas) if pcas is not None else None
        self.head = Head(model)
        self.lens_sites = sorted({*lens_sites(self.L, lens), self.S - 1})  # the final site gives the KL
        self.maps = linear_maps(model)
        self._gram: dict[int, tuple[Tensor, int]] = {}  # D-side Gram of each map, built on the first svd=True
        self._map_energy: dict[int, float] = {}
        self._interleaved: dict[tuple, tuple[list[Basis], list[SitePCA | None]]] = {}
        t = time.perf_counter()
        self.dense = self._dense_pass(eval_ids)
        self.seconds["dense_eval"] = time.perf_counter() - t

    # -- widths and bases

    @property
    def pcas(self) -> list[SitePCA]:
        """The dense model's per-site PCA on the calibration windows (computed on first use, then kept)."""
        if self._pcas is None:
            t = time.perf_counter()
            self._pcas = dense_pcas(self.model, self.cal_ids, self.batch_size, self.progress)
            self.seconds["dense_pca"] = time.perf_counter() - t
        return self._pcas

    def dims(self, dim: int, slice_head: bool = False) -> list[int]:
        return site_dims(self.L, self.D, dim=dim, slice_head=slice_head)

    def bases(self, dim: int, basis: str = "dense", slice_head: bool = False) -> tuple[list[Basis], list]:
        """(bases, the PCAs they came from) at kept width d' (the head's site stays full unless
        slice_head)."""
        if basis not in BASIS_KINDS:
            raise UsageError(f"basis must be one of {', '.join(BASIS_KINDS)}, got {basis!r}")
        dims = self.dims(dim, slice_head)
        if basis == "dense":
            return dense_bases(self.pcas, dims), self.pcas
        key = (dim, slice_head)
        if key not in self._interleaved:
            res = slice_model(self.model, self.cal_ids, dims, batch_size=self.batch_size,
                              progress=self.progress)
            self._interleaved = {key: (res.bases, res.pcas)}  # keep one: a slider revisits rarely
            del res
        return self._interleaved[key]

    # -- the dense pass

    @torch.no_grad()
    def _dense_pass(self, ids: Int[Tensor, "n seq"]) -> DenseEval:
        names = site_hooks(self.L) + [site_at(s).write_hook for s in range(1, self.S)]
        sites: list[list[Tensor]] = [[] for _ in range(self.S)]
        writes: list[list[Tensor]] = [[] for _ in range(self.S)]
        lens: dict[int, list[list[Tensor]]] = {s: [[], [], []] for s in self.lens_sites}
        nll, hits, count = 0.0, 0, 0
        U = self.head.lm_head.weight
        for b in tqdm(torch.split(ids, self.batch_size), desc="dense eval", disable=not self.progress):
            logits, cache = self.bridge.run_with_cache(b, names_filter=names)
            for s in range(self.S):
                sites[s].append(cache[site_at(s).hook].cpu())
                writes[s].append(cache[site_at(0).hook if s == 0 else site_at(s).write_hook].cpu())
            tgt = b[:, 1:]
            for s in self.lens_sites:
                lg = logits if s == self.S - 1 else self.head.logits(cache[site_at(s).hook])
                logp = _wide(lg[:, :-1]).log_softmax(-1)
                p = logp.exp()
                lens[s][0].append((p * logp).sum(-1).cpu())
                lens[s][1].append((p @ U.to(p.dtype)).cpu())
                lens[s][2].append(logp.gather(-1, tgt[..., None])[..., 0].cpu())
                del logp, p
            lp = _wide(logits[:, :-1]).log_softmax(-1)
            nll -= float(lp.gather(-1, tgt[..., None]).double().sum())
            hits += int((lp.argmax(-1) == tgt).sum())
            count += tgt.numel()
            del logits, cache, lp
        cat = [torch.cat(x) for x in sites]
        return DenseEval(
            ids=ids, sites=cat, writes=[torch.cat(x) for x in writes],
            lens={s: LensCache(*(torch.cat(v) for v in vs)) for s, vs in lens.items()},
            nll=nll / count, accuracy=hits / count,
        )

    # -- one d'

    def report(
        self,
        dim: int,
        basis: str = "dense",
        *,
        slice_head: bool = False,
        attribution: int | None = 4,
        maps: bool = True,
        svd: bool = False,
    ) -> FlowReport:
        """The flow at kept width `dim` with `basis` bases. `attribution`: Gauss-Legendre nodes of the
        integrated prediction decomposition (0: first order only; None: skip the gradient passes);
        `maps`: the linear-map decomposition; `svd`: singular values of every sliced vs full map."""
        import time

        if not 1 <= dim <= self.D:
            raise UsageError(f"dim must be in [1, {self.D}], got {dim}")
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        bases, pcas = self.bases(dim, basis, slice_head)
        seconds["bases"] = time.perf_counter() - t
        dims = [b.shape[1] for b in bases]
        t = time.perf_counter()
        acc = self._sliced_pass(bases, attribution)
        seconds["emulate"] = time.perf_counter() - t
        ntok, npred = acc["tokens"], acc["pred"]

        rows: list[dict] = []

        def put(site: int, metric: str, value: float, m: str = "", role: str = "") -> None:
            rows.append({"basis": basis, "dim": dim, **site_row(site), "map": m, "role": role,
                         "metric": metric, "value": float(value)})

        for s in range(self.S):
            put(s, "d_site", dims[s])
            put(s, "retained_cal", retained_at(pcas[s], dims[s]))
            full = dims[s] == self.D
            put(s, "retained_eval_dense", 1.0 if full else acc["kept_dense"][s] / acc["energy_dense"][s])
            put(s, "retained_eval", 1.0 if full else acc["energy_sliced"][s] / acc["energy_pre"][s])
            put(s, "rel_error", acc["rel"][s] / ntok)
            put(s, "cosine", acc["cos"][s] / ntok)
            put(s, "norm_dense", acc["norm_d"][s] / ntok)
            put(s, "norm_sliced", acc["norm_s"][s] / ntok)
            if s:
                put(s, "norm_growth_dense", acc["norm_d"][s] / acc["norm_d"][s - 1])
                put(s, "norm_growth_sliced", acc["norm_s"][s] / acc["norm_s"][s - 1])
            if s in self.lens_sites:
                put(s, "lens_kl", acc["kl"][s] / npred)
                put(s, "lens_loss_dense", -float(self.dense.lens[s].target_logp.double().sum()) / npred)
                put(s, "lens_loss_sliced", acc["lens_loss"][s] / npred)
        summary = {
            "nll_dense": self.dense.nll, "nll_sliced": acc["nll"] / npred,
            "ppl_dense": math.exp(self.dense.nll), "ppl_sliced": math.exp(acc["nll"] / npred),
            "accuracy_dense": self.dense.accuracy, "accuracy_sliced": acc["hits"] / npred,
            "kl": acc["kl"][self.S - 1] / npred, "tokens": npred,
        }
        if attribution is not None:
            t = time.perf_counter()
            rows += _attribution_rows(acc["attr"], npred, self.S, basis, dim)
            dec = decomposition_summary(acc["attr"], acc["z_sliced"], npred)
            summary.update({f"attr_{k}": v for k, v in dec.items() if k != "tokens"})
            seconds["attribution"] = acc["attr_seconds"]
        singular = None
        if maps:
            t = time.perf_counter()
            map_rows, singular = self._map_rows(bases, basis, dim, svd)
            rows += map_rows
            seconds["maps"] = time.perf_counter() - t
        return FlowReport(basis=basis, dim=dim, dims=dims, table=pd.DataFrame(rows, columns=COLUMNS),
                          summary=summary, singular=singular, seconds=seconds)

    @torch.no_grad()
    def _sliced_pass(self, bases: Sequence[Basis], attribution: int | None) -> dict:
        import time

        S, de = self.S, self.dense
        keys = ("rel", "cos", "norm_d", "norm_s", "kept_dense", "energy_dense", "energy_sliced", "energy_pre",
                "kl", "lens_loss")
        acc: dict = {k: np.zeros(S) for k in keys}
        acc.update(tokens=0, pred=0, nll=0.0, hits=0, attr={}, attr_seconds=0.0,
                   z_sliced={"logit": 0.0, "loss": 0.0})
        Bw = [b.to(self.work_dtype) for b in bases]
        start = 0
        for b in tqdm(torch.split(de.ids, self.batch_size), desc="emulate", disable=not self.progress):
            n = b.shape[0]
            sl = slice(start, start + n)
            start += n
            writes: dict[int, Tensor] = {}
            with self.bridge.hooks(fwd_hooks=emulation_hooks(bases, writes)):
                logits, cache = self.bridge.run_with_cache(b, names_filter=site_hooks(self.L))
            tgt = b[:, 1:]
            for s in range(S):
                x, xs = de.sites[s][sl].double(), cache[site_at(s).hook].double()
                nd, ns = x.norm(dim=-1), xs.norm(dim=-1)
                acc["rel"][s] += float(((xs - x).norm(dim=-1) / nd.clamp_min(1e-30)).sum())
                acc["cos"][s] += float(((xs * x).sum(-1) / (nd * ns).clamp_min(1e-30)).sum())
                acc["norm_d"][s] += float(nd.sum())
                acc["norm_s"][s] += float(ns.sum())
                acc["energy_dense"][s] += float(nd.pow(2).sum())
                if bases[s].shape[1] < self.D:
                    acc["kept_dense"][s] += float((_wide(de.sites[s][sl]) @ Bw[s]).double().pow(2).sum())
                acc["energy_sliced"][s] += float(ns.pow(2).sum())
                acc["energy_pre"][s] += float((xs - writes[s].double()).pow(2).sum())
                if s in self.lens_sites:
                    lc = de.lens[s]
                    lg = _wide((logits if s == S - 1 else self.head.logits(cache[site_at(s).hook]))[:, :-1])
                    lse = lg.logsumexp(-1).double()
                    normed = self.head.normed(cache[site_at(s).hook])[:, :-1].double()
                    cross = (lc.expected_u[sl].double() * normed).sum(-1)  # sum_v p_dense(v) sliced_logit(v)
                    if self.head.lm_head.bias is not None:
                        raise UsageError("logit lens with an unembedding bias is not supported")
                    acc["kl"][s] += float((lc.neg_entropy[sl].double() - cross + lse).sum())
                    acc["lens_loss"][s] += float((lse - lg.gather(-1, tgt[..., None])[..., 0].double()).sum())
            lp = _wide(logits[:, :-1]).log_softmax(-1)
            acc["nll"] -= float(lp.gather(-1, tgt[..., None]).double().sum())
            acc["hits"] += int((lp.argmax(-1) == tgt).sum())
            zl, zs = _targets_logit_loss(logits, b)
            acc["z_sliced"]["logit"] += float(zl)
            acc["z_sliced"]["loss"] += float(zs)
            acc["tokens"] += b.numel()
            acc["pred"] += tgt.numel()
            del logits, cache, lp
            if attribution is not None:
                t = time.perf_counter()
                part = attribute_batch(self.bridge, b, [writes[s] for s in range(S)], attribution)
                acc["attr"] = part if not acc["attr"] else {k: acc["attr"][k] + part[k] for k in part}
                acc["attr_seconds"] += time.perf_counter() - t
        return acc

    @torch.no_grad()
    def _map_rows(self, bases: Sequence[Basis], basis: str, dim: int, svd: bool):
        """Linear-map decomposition on the cached dense activations (float32 matmuls, float64 sums): the
        readers of a site share one projected input, so each site costs two matmuls whatever its readers."""
        rows: list[dict] = []
        sv_rows: list[dict] = []
        de = self.dense
        by_site: dict[int, list[int]] = {}
        for k, m in enumerate(self.maps):
            by_site.setdefault(m["site"], []).append(k)
        stats: dict[int, tuple[float, float]] = {}
        for s, ks in by_site.items():
            B = bases[s].to(self.work_dtype)
            d = B.shape[1]
            writers = [k for k in ks if self.maps[k]["role"] == "writer"]
            readers = [k for k in ks if self.maps[k]["role"] == "reader"]
            for k in writers:
                w = _wide(de.writes[s].reshape(-1, self.D))
                total = float(w.double().pow(2).sum())
                kept = 1.0 if d == self.D else float((w @ B).double().pow(2).sum()) / total
                stats[k] = (kept, 1.0 - kept)
            if not readers:
                continue
            if d == self.D:
                stats.update({k: (1.0, 0.0) for k in readers})
                continue
            n = _rms_normalise(de.sites[s].reshape(-1, self.D), self.eps).to(self.work_dtype)
            pn = (n @ B) @ B.T
            for k in readers:
                W = map_weight(self.maps[k]).to(self.work_dtype)
                if k not in self._map_energy:
                    self._map_energy[k] = float((n @ W.T).double().pow(2).sum())
                total = self._map_energy[k]
                stats[k] = (float((pn @ W.T).double().pow(2).sum()) / total,
                            float(((n - pn) @ W.T).double().pow(2).sum()) / total)
        for k, m in enumerate(self.maps):
            s = m["site"]
            base = {"basis": basis, "dim": dim, **site_row(s), "map": m["map"], "role": m["role"]}
            rows += [{**base, "metric": "act_kept", "value": stats[k][0]},
                     {**base, "metric": "act_dropped", "value": stats[k][1]}]
            if not svd:
                continue
            if k not in self._gram:
                W = map_weight(m)
                self._gram[k] = (W.T @ W if m["role"] == "reader" else W @ W.T, min(W.shape))
            G, rank = self._gram[k]
            B = bases[s].double()
            d = B.shape[1]
            full = _gram_singular_values(G, rank)
            sliced = full if d == self.D else _gram_singular_values(B.T @ G @ B, min(rank, d))
            kept_w = float(sliced.pow(2).sum() / full.pow(2).sum())
            rows += [{**base, "metric": "weight_kept", "value": kept_w},
                     {**base, "metric": "sigma1_ratio", "value": float(sliced[0] / full[0])}]
            sv_rows += [{**base, "index": i + 1, "sigma_full": float(full[i]),
                         "sigma_sliced": float(sliced[i]) if i < sliced.shape[0] else 0.0}
                        for i in range(full.shape[0])]
        return rows, (pd.DataFrame(sv_rows) if svd else None)

    # -- dense vs interleaved

    def compare(self, dim: int, slice_head: bool = False) -> pd.DataFrame:
        """Dense-basis vs interleaved emulation at d' on the eval windows: loss, PPL, accuracy, KL from the
        dense model, and (on the dense-basis row) the gap to interleaved: d_nll and the PPL ratio."""
        rows = [{"basis": "none (dense model)", "dim": self.D, "nll": self.dense.nll,
                 "ppl": math.exp(self.dense.nll), "accuracy": self.dense.accuracy, "kl": 0.0}]
        for kind in BASIS_KINDS:
            r = self.report(dim, kind, slice_head=slice_head, attribution=None, maps=False)
            rows.append({"basis": kind, "dim": dim, "nll": r.summary["nll_sliced"],
                         "ppl": r.summary["ppl_sliced"], "accuracy": r.summary["accuracy_sliced"],
                         "kl": r.summary["kl"]})
        df = pd.DataFrame(rows)
        inter = df.loc[df["basis"] == "interleaved", "nll"].item()
        df["d_nll_vs_interleaved"] = df["nll"] - inter
        df["ppl_ratio_vs_interleaved"] = np.exp(df["d_nll_vs_interleaved"])
        return df

    def spectrum(self, basis: str = "dense", dim: int | None = None) -> pd.DataFrame:
        """Eigen-spectra of the dense PCA, or of the interleaved calibration at `dim`."""
        if basis == "dense":
            return spectrum_table(self.pcas, "dense")
        if dim is None:
            raise UsageError("the interleaved spectrum depends on d': give dim")
        return spectrum_table(self.bases(dim, "interleaved")[1], "interleaved")


# ----------------------------------------------------------------------------- text output

LAYER_COLUMNS = [  # (per_layer column, header, format)
    ("d_site", "d", "{:.0f}"),
    ("retained_cal", "ret_cal", "{:.4f}"),
    ("retained_eval_min", "ret_eval", "{:.4f}"),
    ("rel_error", "rel_err", "{:.3f}"),
    ("cosine", "cos", "{:.3f}"),
    ("lens_kl", "lens_kl", "{:.3f}"),
    ("lens_dloss", "lens_dloss", "{:+.3f}"),
    ("attr_loss_integrated", "attr_loss", "{:+.4f}"),
    ("attr_loss_direct", "direct", "{:+.4f}"),
    ("worst_map", "least-kept map", "{}"),
    ("worst_map_act_kept", "kept", "{:.3f}"),
]


def format_layers(layers: pd.DataFrame) -> str:
    """The per-layer table as aligned text (layer -1 is printed as `embed`); absent metrics are skipped."""
    layers = layers.copy()
    if {"lens_loss_sliced", "lens_loss_dense"} <= set(layers.columns):
        layers["lens_dloss"] = layers["lens_loss_sliced"] - layers["lens_loss_dense"]
    cols = [c for c in LAYER_COLUMNS if c[0] in layers.columns]
    table = [["layer"] + [h for _, h, _ in cols]]
    for _, r in layers.iterrows():
        cells = ["embed" if r["layer"] == -1 else str(int(r["layer"]))]
        for c, _, f in cols:
            v = r[c]
            cells.append("" if (isinstance(v, float) and math.isnan(v)) else f.format(v))
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table)
