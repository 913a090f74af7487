"""The dense model's residual stream at every site, by replaying its decoder layers one block at a time.

This is the plain-PyTorch view used by calibration and the predictors (it works on any adapter-described
model, needs no TransformerLens, and can keep gradients); `flow.py` gives the TransformerLens view.
Sites as in `calibrate.site_name`: 0 = embeddings, 2i+1 = after layer i's attention, 2i+2 = after its MLP.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .adapters import Adapter, adapter_for
from .calibrate import SitePCA, layer0_inputs, pca, second_moment


def run_sites(
    model: nn.Module,
    input_ids: Int[Tensor, "batch pos"],
    adapter: Adapter | None = None,
    keep_grad: bool = False,
    logits: bool = True,
) -> tuple[list[Float[Tensor, "batch pos d_model"]], Float[Tensor, "batch pos vocab"] | None]:
    """Forward pass that returns the residual at every site (2L+1 tensors) and (if asked) the logits.

    With `keep_grad` the site tensors retain their gradients, so one backward pass of any loss of the logits
    gives d loss / d x_s at every site (site 0 is a leaf)."""
    adapter = adapter or adapter_for(model)
    x, kw = layer0_inputs(model, adapter, input_ids)
    x = x.detach().requires_grad_(keep_grad)
    sites = [x]
    with torch.set_grad_enabled(keep_grad):
        for layer in model.get_submodule(adapter.layers):
            attn, attn_norm = layer.get_submodule(adapter.attn), layer.get_submodule(adapter.attn_norm)
            mlp, mlp_norm = layer.get_submodule(adapter.mlp), layer.get_submodule(adapter.mlp_norm)
            x = x + attn(hidden_states=attn_norm(x), **kw)[0]
            sites.append(x)
            x = x + mlp(mlp_norm(x))
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
