"""The two passes over the eval windows behind a flow report: the dense pass (run once per session: site
residuals, block writes, the dense lens caches, loss and accuracy) and the emulated sliced pass at one set of
bases (per-site sums of the residual-stream statistics, the sliced lens, loss, accuracy and, optionally, the
prediction decomposition's gradient passes).

Per site s (x = dense residual, x~ = sliced residual, y~ = sliced residual before the projection, e = P y~ −
y~ the site's write, B the site's D x d_s basis) the sliced pass sums over tokens: ||x~ − x|| / ||x||,
cos(x~, x), ||x||, ||x~||, ||B^T x||^2, ||x||^2, ||x~||^2 and ||y~||^2 (the session turns them into means and
ratios). Loss and accuracy come from `core.nll`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..core.bridge import bridge_centred
from ..core.emulate import emulation_hooks
from ..core.nll import next_token_stats
from ..core.replay import Basis
from ..core.sites import Site
from .attribution import add_attributions, attribute_batch, logit_loss_sums
from .lens import Head, LensCache, dense_lens, sliced_lens, wide

SITE_SUMS = ("rel", "cos", "norm_d", "norm_s", "kept_dense", "energy_dense", "energy_sliced", "energy_pre",
             "kl", "lens_loss")


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


def _write_hook(site: Site) -> str:
    """Where a site's write is read: its block output, or the residual itself for a site with no base (the
    embeddings are the whole residual at their site)."""
    return site.hook if site.base_hook is None else site.write_hook


def _write_hooks(site: Site) -> list[str]:
    """Every hook whose sum is a site's write (a parallel layer: its attention and its MLP output)."""
    return [_write_hook(site)] + ([site.attn_hook] if site.attn_hook else [])


def _mean_free(bridge) -> Callable[[Tensor], Tensor]:
    """LayerNorm families: residuals and writes compared mean-free (their norms ignore the mean, and the
    sliced model holds the centred stream); the identity otherwise."""
    if bridge_centred(bridge):
        return lambda x: x - x.mean(-1, keepdim=True)
    return lambda x: x


@torch.no_grad()
def dense_pass(
    bridge,
    head: Head,
    ids: Int[Tensor, "n seq"],
    sites: Sequence[Site],
    lens_sites: Sequence[int],
    batch_size: int = 4,
    progress: bool = False,
) -> DenseEval:
    """The dense model on `ids`: residuals and writes at every site (on the CPU), the dense lens caches at
    `lens_sites` (the last site's lens is the model's own head), mean next-token loss and top-1 accuracy."""
    S, last = len(sites), sites[-1].index
    names = list(dict.fromkeys([s.hook for s in sites] + [h for s in sites for h in _write_hooks(s)]))
    free = _mean_free(bridge)
    res: list[list[Tensor]] = [[] for _ in range(S)]
    writes: list[list[Tensor]] = [[] for _ in range(S)]
    lens: dict[int, list[LensCache]] = {s: [] for s in lens_sites}
    nll, hits, count = 0.0, 0, 0
    U, bias = head.lm_head.weight, head.lm_head.bias
    for b in tqdm(torch.split(ids, batch_size), desc="dense eval", disable=not progress):
        logits, cache = bridge.run_with_cache(b, names_filter=names)
        for site in sites:
            res[site.index].append(free(cache[site.hook]).cpu())
            writes[site.index].append(free(sum(cache[h] for h in _write_hooks(site))).cpu())
        for s in lens_sites:
            lg = logits if s == last else head.logits(cache[sites[s].hook])
            lens[s].append(dense_lens(lg, U, b, bias))
        ce, hit = next_token_stats(logits, b)
        nll += float(ce.double().sum())
        hits += int(hit.sum())
        count += ce.numel()
        del logits, cache, ce, hit
    return DenseEval(
        ids=ids, sites=[torch.cat(x) for x in res], writes=[torch.cat(x) for x in writes],
        lens={s: LensCache.cat(v) for s, v in lens.items()}, nll=nll / count, accuracy=hits / count,
    )


@torch.no_grad()
def sliced_pass(
    bridge,
    head: Head,
    dense: DenseEval,
    bases: Sequence[Basis],
    sites: Sequence[Site],
    lens_sites: Sequence[int],
    *,
    work_dtype: torch.dtype,
    attribution: int | None = None,
    batch_size: int = 4,
    progress: bool = False,
) -> dict:
    """The emulated sliced model at `bases` on the dense pass's windows: per-site sums `SITE_SUMS` (arrays
    over sites), `tokens` / `pred` (token and predicted-token counts), summed `nll` and `hits`, `z_sliced`
    (summed correct-token logit and loss) and, unless `attribution` is None, the summed `attr` of
    `attribute_batch` with that many Gauss-Legendre nodes and its `attr_seconds`."""
    S, D, last = len(sites), dense.sites[0].shape[-1], sites[-1].index
    acc: dict = {k: np.zeros(S) for k in SITE_SUMS}
    acc.update(tokens=0, pred=0, nll=0.0, hits=0, attr={}, attr_seconds=0.0,
               z_sliced={"logit": 0.0, "loss": 0.0})
    Bw = [b.to(work_dtype) for b in bases]
    hooks = [s.hook for s in sites]
    free = _mean_free(bridge)
    start = 0
    for b in tqdm(torch.split(dense.ids, batch_size), desc="emulate", disable=not progress):
        sl = slice(start, start + b.shape[0])
        start += b.shape[0]
        writes: dict[int, Tensor] = {}
        with bridge.hooks(fwd_hooks=emulation_hooks(bases, writes, sites)):
            logits, cache = bridge.run_with_cache(b, names_filter=hooks)
        for site in sites:
            s = site.index
            x, xs = dense.sites[s][sl].double(), free(cache[site.hook].double())
            nd, ns = x.norm(dim=-1), xs.norm(dim=-1)
            acc["rel"][s] += float(((xs - x).norm(dim=-1) / nd.clamp_min(1e-30)).sum())
            acc["cos"][s] += float(((xs * x).sum(-1) / (nd * ns).clamp_min(1e-30)).sum())
            acc["norm_d"][s] += float(nd.sum())
            acc["norm_s"][s] += float(ns.sum())
            acc["energy_dense"][s] += float(nd.pow(2).sum())
            if bases[s].shape[1] < D:
                acc["kept_dense"][s] += float((wide(dense.sites[s][sl]) @ Bw[s]).double().pow(2).sum())
            acc["energy_sliced"][s] += float(ns.pow(2).sum())
            acc["energy_pre"][s] += float(free(cache[site.hook].double() - writes[s].double()).pow(2).sum())
            if s in lens_sites:
                lg = logits if s == last else head.logits(cache[site.hook])
                kl, loss = sliced_lens(head, dense.lens[s].rows(sl), cache[site.hook], lg, b)
                acc["kl"][s] += kl
                acc["lens_loss"][s] += loss
        ce, hit = next_token_stats(logits, b)
        acc["nll"] += float(ce.double().sum())
        acc["hits"] += int(hit.sum())
        zl, zs = logit_loss_sums(logits, b, ce)
        acc["z_sliced"]["logit"] += float(zl)
        acc["z_sliced"]["loss"] += float(zs)
        acc["tokens"] += b.numel()
        acc["pred"] += ce.numel()
        del logits, cache, ce, hit
        if attribution is not None:
            t = time.perf_counter()
            part = attribute_batch(bridge, b, [writes[s.index] for s in sites], attribution)
            acc["attr"] = add_attributions(acc["attr"], part)
            acc["attr_seconds"] += time.perf_counter() - t
    return acc
