"""Exact emulation of a sliced model with hooks on the dense model's TransformerLens bridge.

A SliceGPT-sliced model computes the dense function with the residual stream projected by P_s = B_s B_s^T at
every write site s (after the embeddings, after each attention block, after each MLP block), because its
weightless norms keep dividing by the original width D. With hooks that is:

    hook_embed                 x        -> P_0 x
    blocks.i.hook_attn_out     a        -> P_{2i+1}(x_pre + a) - x_pre      (x_pre: blocks.i.hook_resid_pre)
    blocks.i.hook_mlp_out      m        -> P_{2i+2}(x_mid + m) - x_mid      (x_mid: blocks.i.hook_resid_mid)

and for a parallel layer (one site, i+1; its attention output a is kept as it is, then)

    blocks.i.hook_mlp_out      m        -> P_{i+1}(x_pre + a + m) - x_pre - a

With learned position embeddings site 0 is `blocks.0.hook_resid_pre` (token + position embeddings). For
LayerNorm models the bases are orthogonal to the all-ones direction (the slicer makes the stream
mean-free), so P removes the dense model's residual mean too, which its LayerNorms ignore: the hooks on the
unmodified model stay exact.

The block outputs are rewritten (not `hook_resid_mid`, which does not reach the skip path). What each
projection removes, e_s = P_s y_s - y_s (y_s the residual before the projection), is the site's *write*;
injecting exactly those writes additively into the dense model (`injection_hooks`) reproduces the sliced run,
which is what the prediction decomposition in `flow.py` differentiates.

Bases come in two kinds: `interleaved` (SliceGPT's calibration, one run of `slice_model` per d') and `dense`
(the top-d_s eigenvectors of the dense model's per-site PCA: one `dense_pcas` pass serves every d').
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import UsageError
from ..schema import BASES
from .bridge import boot_bridge, bridge_sites
from .pca import SitePCA
from .replay import Basis, Projector, dense_bases, dense_pcas
from .sites import Site, check_sites, is_parallel, model_sites, sequential_sites
from .slicing import slice_model
from .widths import dim_for_sparsity, site_dims

Hook = tuple[str, Callable]
BASIS_KINDS = tuple(sorted(BASES))  # `schema.BASES`, dense first (the order the flow compares them in)


# ----------------------------------------------------------------------------- bases


def bases_for(
    kind: str,
    dims: Sequence[int],
    *,
    model: nn.Module | None = None,
    cal_ids: Int[Tensor, "n pos"] | None = None,
    pcas: Sequence[SitePCA] | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> list[Basis]:
    """Per-site bases (D x d_s float64) for site widths `dims` (see `slicing.site_dims`).

    dense: from `pcas` (the output of `sites.dense_pcas`), or computed from `model` + `cal_ids`;
    interleaved: SliceGPT's interleaved calibration of `model` on `cal_ids` (a full `slice_model` run)."""
    if kind not in BASIS_KINDS:
        raise UsageError(f"basis must be one of {', '.join(BASIS_KINDS)}, got {kind!r}")
    if kind == "dense":
        if pcas is None:
            if model is None or cal_ids is None:
                raise UsageError("dense bases need pcas, or a model and calibration windows")
            pcas = dense_pcas(model, cal_ids, batch_size=batch_size, progress=progress)
        return dense_bases(pcas, dims)
    if model is None or cal_ids is None:
        raise UsageError("interleaved bases need a model and calibration windows")
    return slice_model(model, cal_ids, list(dims), batch_size=batch_size, progress=progress).bases


# ----------------------------------------------------------------------------- hooks


def emulation_hooks(
    bases: Sequence[Basis], writes: dict[int, Tensor] | None = None, sites: Sequence[Site] | None = None
) -> list[Hook]:
    """Forward hooks that project the residual stream onto span(B_s) at every write site.

    `sites`: the model's site list (`core.sites.model_sites`, `bridge_sites`); None: sequential layers.
    With a `writes` dict, each site's write e_s = P_s y_s - y_s (detached) is stored under its site index."""
    S = len(bases)
    if sites is None:
        if S % 2 != 1:
            raise UsageError(f"need 2L+1 site bases, got {S}")
        sites = sequential_sites((S - 1) // 2)
    elif len(sites) != S:
        raise UsageError(f"need {len(sites)} site bases, got {S}")
    proj = [Projector(b) for b in bases]
    state: dict[str, Tensor] = {}

    def record(site: int, y: Tensor, out: Tensor) -> None:
        if writes is not None:
            writes[site] = (out - y).detach()

    def embed(x, hook):
        out = proj[0](x)
        record(0, x, out)
        return out

    def keep(key: str):
        def fn(x, hook):
            state[key] = x

        return fn

    def block_out(site: int, keys: tuple[str, ...]):
        def fn(a, hook):
            if proj[site].identity:  # full width: leave the block's output bit-identical
                record(site, a, a)
                return a
            base = state[keys[0]]
            for k in keys[1:]:  # a parallel layer's attention output, already in the residual sum
                base = base + state[k]
            y = base + a
            out = proj[site](y)
            record(site, y, out)
            return out - base

        return fn

    hooks: list[Hook] = []
    for site in sites:
        if site.base_hook is None:
            hooks.append((site.write_hook, embed))
        else:  # remember the residual (and other writes) the block adds to, then rewrite its output
            keys = (site.base_hook,) if site.attn_hook is None else (site.base_hook, site.attn_hook)
            hooks += [(k, keep(k)) for k in keys]
            hooks.append((site.write_hook, block_out(site.index, keys)))
    return hooks


def injection_hooks(
    injections: Sequence[Float[Tensor, "batch pos d_model"] | None], sites: Sequence[Site] | None = None
) -> list[Hook]:
    """Forward hooks that ADD injections[s] to the residual at every site s (None: nothing). With the writes
    of a sliced run they reproduce it on the dense model; with leaf tensors, their .grad is d out / d x_s.
    `sites`: the model's site list (None: sequential layers)."""
    sites = sequential_sites((len(injections) - 1) // 2) if sites is None else sites
    return [(sites[s].write_hook, lambda x, hook, e=e: x + e.to(x.dtype))
            for s, e in enumerate(injections) if e is not None]


def run_emulated(
    bridge,
    ids: Int[Tensor, "batch pos"],
    bases: Sequence[Basis] | None,
    names_filter: str | list[str] | Callable[[str], bool] | None = None,
    writes: dict[int, Tensor] | None = None,
) -> tuple[Float[Tensor, "batch pos vocab"], object]:
    """Logits and ActivationCache of the bridge with slicing emulated by `bases` (None: the dense model).

    `names_filter` defaults to the site residuals (`core.sites` hooks). Cached values of the rewritten hooks
    (`hook_attn_out`, `hook_mlp_out`) are the rewritten block writes P(x + a) - x."""
    sites = bridge_sites(bridge)
    if names_filter is None:
        names_filter = [s.hook for s in sites]
    with torch.no_grad():
        if bases is None:
            return bridge.run_with_cache(ids, names_filter=names_filter)
        check_sites(len(bases), bridge.cfg.n_layers, "site bases", parallel=is_parallel(sites))
        with bridge.hooks(fwd_hooks=emulation_hooks(bases, writes, sites)):
            return bridge.run_with_cache(ids, names_filter=names_filter)


def emulated_logits(
    bridge, ids: Int[Tensor, "batch pos"], bases: Sequence[Basis]
) -> Float[Tensor, "batch pos vocab"]:
    """Just the logits of the emulated sliced model (no cache)."""
    with torch.no_grad(), bridge.hooks(fwd_hooks=emulation_hooks(bases, sites=bridge_sites(bridge))):
        return bridge(ids)


def site_residuals(cache, n_layers: int, sites: Sequence[Site] | None = None) -> list[Float[Tensor, "b p d"]]:
    """The site residuals from a cache that holds the site hooks (`sites`; None: sequential layers)."""
    sites = sequential_sites(n_layers) if sites is None else sites
    return [cache[s.hook] for s in sites]


# ----------------------------------------------------------------------------- installation / adapter check

# Relative tolerances (of max |logit|) for `verify`. float32: on SmolLM2-135M the sliced-vs-dense and the
# emulated-vs-sliced logits differ by ~1e-5 of max |logit| (unit roundoff 6e-8, amplified over 61 sequential
# residual updates of a stream with a ~100x outlier coordinate and by different summation orders: rotated
# bases, eager vs SDPA attention); a real mistake (a wrong basis at one site, a norm dividing by d' instead of
# D, a missed fold) moves logits by O(1) relative, so 1e-3 sits two decades above rounding and far below a
# bug. float64: HF's RMSNorm computes in float32 even for float64 models, which limits agreement to ~1e-7.
VERIFY_RTOL = {torch.float64: 1e-5, torch.float32: 1e-3, torch.bfloat16: 5e-2, torch.float16: 5e-2}


@torch.no_grad()
def verify(
    model: nn.Module,
    cal_ids: Int[Tensor, "n_cal seq_cal"],
    ids: Int[Tensor, "n seq"],
    dim: int | None = None,
    *,
    tokenizer=None,
    batch_size: int = 4,
    progress: bool = False,
) -> dict:
    """Check the installation and the architecture adapter on a real model: (1) full-width invariance: slice
    at d' = D everywhere and compare logits with the dense model; (2) emulation: slice at `dim` (default: 25%
    sparsity) and compare the sliced model's logits with the hook emulation on the bridge using its bases.
    `ok` when both max |diff| <= VERIFY_RTOL[dtype] * max |dense logit|."""
    L, D = model.config.num_hidden_layers, model.config.hidden_size
    sites = model_sites(model)
    S, par = len(sites), is_parallel(sites)
    dim = dim_for_sparsity(0.25, D) if dim is None else dim
    if not 1 <= dim <= D:
        raise UsageError(f"dim must be in [1, {D}], got {dim}")
    dtype = next(model.parameters()).dtype
    dev = next(model.parameters()).device
    ids = ids.to(dev)
    dense = model(input_ids=ids, use_cache=False).logits
    full = slice_model(model, cal_ids, [D] * S, batch_size=batch_size, progress=progress)
    inv = (full.model(input_ids=ids, use_cache=False).logits - dense).abs().max().item()
    del full
    res = slice_model(model, cal_ids, site_dims(L, D, dim=dim, parallel=par), batch_size=batch_size,
                      progress=progress)
    sliced = res.model(input_ids=ids, use_cache=False).logits
    bases = res.bases
    del res
    bridge = boot_bridge(model, tokenizer)
    emu = (emulated_logits(bridge, ids, bases) - sliced).abs().max().item()
    scale = dense.abs().max().item()
    tol = VERIFY_RTOL.get(dtype, 1e-3) * max(scale, 1.0)
    return {
        "invariance_max_abs_diff": inv,
        "emulation_max_abs_diff": emu,
        "max_abs_logit": scale,
        "tolerance": tol,
        "invariance_ok": inv <= tol,
        "emulation_ok": emu <= tol,
        "ok": inv <= tol and emu <= tol,
        "dim": dim,
        "hidden_size": D,
        "architecture": type(model).__name__,
        "dtype": str(dtype).removeprefix("torch."),
        "windows": int(ids.shape[0]),
        "seqlen": int(ids.shape[1]),
        "cal_windows": int(cal_ids.shape[0]),
    }
