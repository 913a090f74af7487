"""The residual stream replayed in plain PyTorch: the inputs of the first decoder layer, then the layers
one block at a time, with the residual at every site (`core/sites.py`) exposed, optionally projected.

This is the view calibration, the dense PCA, dense-basis emulation and the predictors share (it works on
any adapter-described model, needs no TransformerLens, and can keep gradients); `core/emulate.py` gives the
same projections as TransformerLens hooks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..adapters import Adapter, adapter_for
from ..errors import UsageError
from .pca import SitePCA, pca, second_moment
from .sites import layers_of, sites_for

Basis = Float[Tensor, "d_model d_site"]


class _Caught(Exception):
    pass


class _Recorder(nn.Module):
    """Stands in for a decoder layer while `layer_inputs` runs: records what the layer is called with and
    passes the hidden states through (the last one stops the forward)."""

    def __init__(self, names: list[str], log: list[dict], last: bool):
        super().__init__()
        self.names, self.log, self.last = names, log, last

    def forward(self, hidden_states: Tensor, *args, **kwargs) -> Tensor:
        self.log.append({**dict(zip(self.names, args)), **kwargs, "_hidden": hidden_states})
        if self.last:
            raise _Caught
        return hidden_states


@torch.no_grad()
def layer_inputs(
    model: nn.Module, adapter: Adapter, input_ids: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "batch pos d_model"], list[dict]]:
    """Run the model's embedding and set-up code without its decoder layers: the input of the first layer
    and the keyword arguments EACH layer gets (rotary position embeddings, causal mask, ...; they differ
    between layers where layers differ: Gemma 3's sliding-window layers get a local rotary table and a
    sliding mask), so layers can be replayed one at a time. Arguments the model passes by position (GPT-2:
    cache, mask) are named after the layer's own signature. The layers are swapped for recorders that pass
    their input through, so no layer runs."""
    layers = model.get_submodule(adapter.layers)
    originals = list(layers)
    log: list[dict] = []
    for i, layer in enumerate(originals):
        layers[i] = _Recorder(positional_names(layer), log, last=i == len(originals) - 1)
    try:
        model(input_ids=input_ids, use_cache=False)
    except _Caught:
        pass
    finally:
        for i, layer in enumerate(originals):
            layers[i] = layer
    hidden = log[0].pop("_hidden")
    for kw in log[1:]:
        kw.pop("_hidden")
    return hidden, log


def positional_names(layer: nn.Module) -> list[str]:
    """The names of a decoder layer's positional parameters after the hidden states (from its signature)."""
    params = list(inspect.signature(layer.forward).parameters.values())[1:]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


class Projector:
    """P = B Bᵀ applied in float64 (float32 for half types); the identity at full width (exact)."""

    def __init__(self, basis: Basis):
        D, d = basis.shape
        self.identity = d == D
        self.basis = basis.double()
        self.matrix = None if self.identity or 2 * d < D else self.basis @ self.basis.T
        self._cache: dict = {}

    def _on(self, ref: Tensor) -> tuple[Tensor, Tensor | None]:
        dt = torch.float64 if ref.dtype in (torch.float32, torch.float64) else torch.float32
        key = (ref.device, dt)
        if key not in self._cache:
            self._cache[key] = (self.basis.to(ref.device, dt),
                                None if self.matrix is None else self.matrix.to(ref.device, dt))
        return self._cache[key]

    def __call__(self, x: Float[Tensor, "*b d_model"]) -> Float[Tensor, "*b d_model"]:
        if self.identity:
            return x
        b, m = self._on(x)
        y = x.to(b.dtype)
        return (y @ m if m is not None else (y @ b) @ b.T).to(x.dtype)


SiteFn = Callable[[int, Tensor], Tensor]
Write = Callable[..., Tensor]


def block_writes(layer: nn.Module, adapter: Adapter) -> tuple[Write, Write]:
    """What a decoder layer's attention block (`attn_write(x, **kw)`) and MLP block (`mlp_write(x)`) add to
    the residual x: the block on its normalised input, then its output norm where the family has one."""
    attn, attn_norm = layer.get_submodule(adapter.attn), layer.get_submodule(adapter.attn_norm)
    mlp, mlp_norm = _mlp(layer, adapter.mlp), layer.get_submodule(adapter.mlp_norm)
    post_a = layer.get_submodule(adapter.attn_post_norm) if adapter.post_norms else nn.Identity()
    post_m = layer.get_submodule(adapter.mlp_post_norm) if adapter.post_norms else nn.Identity()

    def attn_write(x: Tensor, **kw) -> Tensor:
        return post_a(attn(hidden_states=attn_norm(x), **kw)[0])

    def mlp_write(x: Tensor) -> Tensor:
        return post_m(mlp(mlp_norm(x)))

    return attn_write, mlp_write


def _mlp(layer: nn.Module, spec: str | tuple[str, ...]) -> Callable[[Tensor], Tensor]:
    """A layer's MLP: its module, or (a tuple of paths) the layer's modules applied in order."""
    if isinstance(spec, str):
        return layer.get_submodule(spec)
    parts = [layer.get_submodule(p) for p in spec]

    def run(h: Tensor) -> Tensor:
        for part in parts:
            h = part(h)
        return h

    return run


def run_sites(
    model: nn.Module,
    input_ids: Int[Tensor, "batch pos"],
    adapter: Adapter | None = None,
    keep_grad: bool = False,
    logits: bool = True,
    project: SiteFn | None = None,
) -> tuple[list[Float[Tensor, "batch pos d_model"]], Float[Tensor, "batch pos vocab"] | None]:
    """Forward pass that returns the residual at every site and (if asked) the logits.

    `project(site, x)`, if given, replaces each site's residual before the next block reads it (dense-basis
    emulation of slicing). With `keep_grad` the site tensors retain their gradients, so one backward pass of
    any loss of the logits gives d loss / d x_s at every site (site 0 is a leaf)."""
    adapter = adapter or adapter_for(model)
    step = project or (lambda s, x: x)
    # LayerNorm models: the residual of the mean-free (centred) model the slicer builds; LayerNorm ignores
    # the mean, so the function is the same, and dense PCA bases never use the all-ones direction
    free = (lambda x: x - x.mean(-1, keepdim=True)) if adapter.centred else (lambda x: x)
    x, kws = layer_inputs(model, adapter, input_ids)
    x = step(0, free(x).detach().requires_grad_(keep_grad))
    sites = [x]
    with torch.set_grad_enabled(keep_grad):
        layers = model.get_submodule(adapter.layers)
        for layer, ls, kw in zip(layers, layers_of(sites_for(adapter, model.config.num_hidden_layers)), kws):
            attn_write, mlp_write = block_writes(layer, adapter)
            if ls.parallel:
                x = step(ls.out, free(x + attn_write(x, **kw) + mlp_write(x)))
                sites.append(x)
                continue
            x = step(ls.mid, free(x + attn_write(x, **kw)))
            sites.append(x)
            x = step(ls.out, free(x + mlp_write(x)))
            sites.append(x)
        out = (
            model.get_submodule(adapter.lm_head)(model.get_submodule(adapter.final_norm)(x))
            if logits
            else None
        )
    if keep_grad:
        for s in sites[1:]:
            s.retain_grad()
    return sites, out


class ProjectedModel(nn.Module):
    """The dense model with every residual site projected on its basis — the exact function of a SliceGPT
    model sliced with these bases (`dense_bases` for the dense-basis sweep). `forward(input_ids)` returns an
    object with `.logits`, enough for `eval.metrics` and `eval.mcq`."""

    def __init__(self, model: nn.Module, bases: Sequence[Basis]):
        super().__init__()
        self.model, self.adapter = model, adapter_for(model)
        self.proj = [Projector(b) for b in bases]

    @torch.no_grad()
    def forward(self, input_ids: Int[Tensor, "b p"], **_) -> SimpleNamespace:
        _, logits = run_sites(self.model, input_ids, self.adapter, project=lambda s, x: self.proj[s](x))
        return SimpleNamespace(logits=logits)


def dense_bases(pcas: Sequence[SitePCA], dims: Sequence[int]) -> list[Basis]:
    """Top-d_s eigenvectors of every site's dense PCA (identity at full-width sites, so d_s = D is exact)."""
    if len(pcas) != len(dims):
        raise UsageError(f"{len(pcas)} site PCAs but {len(dims)} site widths")
    out = []
    for p, d in zip(pcas, dims):
        D = p.vectors.shape[0]
        out.append(torch.eye(D, dtype=torch.float64) if d == D else p.basis(d).double())
    return out


@torch.no_grad()
def dense_pcas(
    model: nn.Module, input_ids: Int[Tensor, "n pos"], batch_size: int = 8, progress: bool = True
) -> list[SitePCA]:
    """PCA of every site of the DENSE model on calibration windows: the `dense` bases, good for every d' at
    once (the top-d' eigenvectors of each site), so a slider can move through d' without recalibrating."""
    moments: list[Tensor] | None = None
    device = next(model.parameters()).device
    for ids in tqdm(torch.split(input_ids, batch_size), desc="dense PCA", disable=not progress):
        sites, _ = run_sites(model, ids.to(device), logits=False)
        ms = [second_moment(s) for s in sites]
        moments = ms if moments is None else [a + b for a, b in zip(moments, ms)]
    return [pca(m) for m in moments]
