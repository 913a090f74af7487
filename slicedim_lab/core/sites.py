"""Residual-stream sites: the one module that knows how sites are numbered and what TransformerLens
calls them.

A *site* is a place where something is written into the residual stream and a PCA basis is chosen: after the
embeddings, and after each block that adds to the stream. For the sequential pre-norm layers of every
supported adapter, layer i has two: after its attention block and after its MLP block, so a model of L layers
has 2L+1 sites — site 0 = embeddings, 2i+1 = after attention i, 2i+2 = after MLP i. Everything else in the
package asks this module (`model_sites`, `Site`, `LayerSites`), never does the arithmetic itself.

TransformerLens 4 bridge hook names of a site (see `core/bridge.py` for the traps):
- `hook`: the hook whose VALUE is the residual at the site (read it, never write it: the MLP-side alias
  `hook_resid_mid` does not reach the skip connection);
- `write_hook`: the hook whose output is ADDED to form the site (`hook_embed` for site 0);
- `base_hook`: the residual the write is added to (None for site 0), so a hook on `write_hook` can replace
  the site's residual y by P y through returning P(base + a) − base.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..adapters import Adapter, adapter_for
from ..errors import UsageError

SITE_KINDS = ("embed", "attn", "mlp")


@dataclass(frozen=True)
class Site:
    """One residual site: its `index` along depth, its decoder `layer` (−1 for the embeddings), its `kind`
    (embed | attn | mlp) and its TransformerLens hook names."""

    index: int
    layer: int
    kind: str

    @property
    def hook(self) -> str:
        if self.kind == "embed":
            return "blocks.0.hook_resid_pre"
        return f"blocks.{self.layer}.hook_resid_{'mid' if self.kind == 'attn' else 'post'}"

    @property
    def write_hook(self) -> str:
        return "hook_embed" if self.kind == "embed" else f"blocks.{self.layer}.hook_{self.kind}_out"

    @property
    def base_hook(self) -> str | None:
        if self.kind == "embed":
            return None
        return f"blocks.{self.layer}.hook_resid_{'pre' if self.kind == 'attn' else 'mid'}"

    @property
    def label(self) -> str:
        """Short human name: `embed`, `L3 attn`, `L3 mlp`."""
        return "embed" if self.kind == "embed" else f"L{self.layer} {self.kind}"

    def row(self) -> dict:
        """The columns every tidy table keys a site by."""
        return {"site": self.index, "hook": self.hook, "layer": self.layer, "kind": self.kind}


@dataclass(frozen=True)
class LayerSites:
    """The sites around decoder layer `layer`: `inp` (the residual its attention reads), `mid` (after its
    attention, what its MLP reads) and `out` (after its MLP)."""

    layer: int
    inp: int
    mid: int
    out: int

    @property
    def own(self) -> tuple[int, int]:
        """The sites this layer writes."""
        return self.mid, self.out


def n_sites(n_layers: int) -> int:
    """How many sites a model of `n_layers` sequential layers has (2L+1)."""
    return 2 * n_layers + 1


def site_at(index: int) -> Site:
    """The site at `index` of a model of sequential layers."""
    if index == 0:
        return Site(0, -1, "embed")
    layer, k = divmod(index - 1, 2)
    return Site(index, layer, "attn" if k == 0 else "mlp")


def sequential_sites(n_layers: int) -> list[Site]:
    """The site list of a model of `n_layers` sequential pre-norm layers."""
    return [site_at(i) for i in range(n_sites(n_layers))]


def sites_for(adapter: Adapter, n_layers: int) -> list[Site]:
    """The site list an adapter's layers give (every current adapter is sequential)."""
    del adapter  # the adapters of this package all describe sequential layers
    return sequential_sites(n_layers)


def model_sites(model: nn.Module) -> list[Site]:
    """The site list of a loaded transformers model, decided by its adapter."""
    return sites_for(adapter_for(model), model.config.num_hidden_layers)


def layer_sites(n_layers: int) -> list[LayerSites]:
    """For every decoder layer, the sites it reads and writes."""
    return [LayerSites(i, 2 * i, 2 * i + 1, 2 * i + 2) for i in range(n_layers)]


def layer_of_map(role: str, site: int) -> int:
    """The decoder layer a residual-stream map belongs to: a reader of site s is in the layer that reads s
    (the LM head, reading the last site, is 'layer' L), a writer of site s in the layer that writes s (the
    embedding: −1)."""
    return site // 2 if role == "reader" else (site - 1) // 2


def check_sites(count: int, n_layers: int, what: str = "site widths") -> None:
    """One-line UsageError unless `count` equals the number of sites."""
    if count != n_sites(n_layers):
        raise UsageError(f"need {n_sites(n_layers)} {what} (2 x {n_layers} layers + 1), got {count}")


def site_hooks(n_layers: int) -> list[str]:
    """The residual hook names of every site, in site order."""
    return [s.hook for s in sequential_sites(n_layers)]


def lens_sites(n_layers: int, which: str | int | list[int] = "post") -> list[int]:
    """Sites that get the logit lens: "post" (embeddings + every layer's output), "all", "none", an int k
    (embeddings + every k-th layer's output + the last), or an explicit list of sites."""
    S = n_sites(n_layers)
    outs = [0] + [ls.out for ls in layer_sites(n_layers)]
    if isinstance(which, str) and which.isdigit():
        which = int(which)
    if isinstance(which, int):
        if which < 1:
            raise UsageError(f"lens stride must be >= 1, got {which}")
        return sorted({0, *outs[which::which], S - 1})
    if isinstance(which, str):
        if which == "post":
            return outs
        if which == "all":
            return list(range(S))
        if which == "none":
            return []
        raise UsageError(f"lens sites must be post, all, none, a layer stride or a site list, got {which!r}")
    sites = sorted({int(s) for s in which})
    if sites and not 0 <= sites[0] <= sites[-1] < S:
        raise UsageError(f"lens sites must lie in [0, {S - 1}], got {sites}")
    return sites
