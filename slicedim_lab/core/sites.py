"""Residual-stream sites: the one module that knows how sites are numbered and what TransformerLens
calls them.

A *site* is a place where something is written into the residual stream and a PCA basis is chosen: after the
embeddings, and after each block that adds to the stream. How many a layer has is the adapter's data:
- sequential pre-norm layers (x += attn(norm(x)); x += mlp(norm(x))) have two: after the attention block and
  after the MLP block, so L layers give 2L+1 sites — site 0 = embeddings, 2i+1 = after attention i,
  2i+2 = after MLP i;
- parallel layers (x += attn(norm(x)) + mlp(norm(x)): GPT-NeoX/Pythia, Phi-2) have one, after the layer:
  L+1 sites — site 0 = embeddings, i+1 = after layer i (kind "block").
Everything else in the package asks this module (`model_sites`, `Site`, `LayerSites`, `layers_of`), never
does the arithmetic itself. The functions that take `n_layers` take `parallel` too (default: sequential).

TransformerLens 4 bridge hook names of a site (see `core/bridge.py` for the traps):
- `hook`: the hook whose VALUE is the residual at the site (read it, never write it: the MLP-side alias
  `hook_resid_mid` does not reach the skip connection);
- `write_hook`: the hook whose output is ADDED to form the site (`hook_embed` for site 0; with learned
  position embeddings, a second writer of site 0, `blocks.0.hook_resid_pre`, whose value is their sum and
  which does reach the first block; for a parallel layer `hook_mlp_out`, the layer's last write);
- `base_hook`: the residual the write is added to (None for site 0), so a hook on `write_hook` can replace
  the site's residual y by P y through returning P(base + a) − base; a parallel layer's `attn_hook`
  (`hook_attn_out`) is the other write of its site: P(base + a + m) − base − a. With post-norms (Gemma 2/3)
  a block's write is its output norm's output (`blocks.L.ln1_post.hook_out`, `ln2_post.hook_out`), not
  `hook_attn_out`/`hook_mlp_out` (the block's output before that norm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn as nn

from ..adapters import Adapter, adapter_for
from ..errors import UsageError

SITE_KINDS = ("embed", "attn", "mlp", "block")


@dataclass(frozen=True)
class Site:
    """One residual site: its `index` along depth, its decoder `layer` (−1 for the embeddings), its `kind`
    (embed | attn | mlp | block: the output of a parallel layer) and its TransformerLens hook names.
    `pos_embed`: site 0 also has learned position embeddings as a writer. `post_norm`: a block's output is
    normalised before it is added (its write is that norm's output)."""

    index: int
    layer: int
    kind: str
    pos_embed: bool = False
    post_norm: bool = False

    @property
    def hook(self) -> str:
        if self.kind == "embed":
            return "blocks.0.hook_resid_pre"
        return f"blocks.{self.layer}.hook_resid_{'mid' if self.kind == 'attn' else 'post'}"

    @property
    def write_hook(self) -> str:
        if self.kind == "embed":
            return "blocks.0.hook_resid_pre" if self.pos_embed else "hook_embed"
        if self.post_norm:
            return f"blocks.{self.layer}.ln{1 if self.kind == 'attn' else 2}_post.hook_out"
        return f"blocks.{self.layer}.hook_{'attn' if self.kind == 'attn' else 'mlp'}_out"

    @property
    def attn_hook(self) -> str | None:
        """A parallel layer's other write (its attention output); None for every other kind."""
        return f"blocks.{self.layer}.hook_attn_out" if self.kind == "block" else None

    @property
    def base_hook(self) -> str | None:
        if self.kind == "embed":
            return None
        return f"blocks.{self.layer}.hook_resid_{'mid' if self.kind == 'mlp' else 'pre'}"

    @property
    def label(self) -> str:
        """Short human name: `embed`, `L3 attn`, `L3 mlp`, `L3 block`."""
        return "embed" if self.kind == "embed" else f"L{self.layer} {self.kind}"

    def row(self) -> dict:
        """The columns every tidy table keys a site by."""
        return {"site": self.index, "hook": self.hook, "layer": self.layer, "kind": self.kind}


@dataclass(frozen=True)
class LayerSites:
    """The sites around decoder layer `layer`: `inp` (the residual its attention reads), `mid` (after its
    attention, what its MLP reads; None for a parallel layer, whose attention and MLP both read `inp`) and
    `out` (after the layer)."""

    layer: int
    inp: int
    mid: int | None
    out: int

    @property
    def parallel(self) -> bool:
        return self.mid is None

    @property
    def mlp_inp(self) -> int:
        """The site the MLP reads."""
        return self.inp if self.mid is None else self.mid

    @property
    def own(self) -> tuple[int, ...]:
        """The sites this layer writes."""
        return (self.out,) if self.mid is None else (self.mid, self.out)

    def as_list(self) -> list[int | None]:
        """[inp, mid, out] as stored in a sliced model's config (`slicing.layer_sites`)."""
        return [self.inp, self.mid, self.out]


def n_sites(n_layers: int, parallel: bool = False) -> int:
    """How many sites a model of `n_layers` layers has (2L+1 sequential, L+1 parallel)."""
    return n_layers + 1 if parallel else 2 * n_layers + 1


def site_at(index: int, parallel: bool = False, pos_embed: bool = False, post_norm: bool = False) -> Site:
    """The site at `index` of a model of sequential (or parallel) layers."""
    if index == 0:
        return Site(0, -1, "embed", pos_embed)
    if parallel:
        return Site(index, index - 1, "block", pos_embed)
    layer, k = divmod(index - 1, 2)
    return Site(index, layer, "attn" if k == 0 else "mlp", pos_embed, post_norm)


def sequential_sites(n_layers: int) -> list[Site]:
    """The site list of a model of `n_layers` sequential pre-norm layers."""
    return [site_at(i) for i in range(n_sites(n_layers))]


def parallel_sites(n_layers: int) -> list[Site]:
    """The site list of a model of `n_layers` parallel layers."""
    return [site_at(i, parallel=True) for i in range(n_sites(n_layers, parallel=True))]


def sites_for(adapter: Adapter, n_layers: int) -> list[Site]:
    """The site list an adapter's layers give (a resolved adapter: `parallel` a bool, see `adapter_for`)."""
    par, pos = bool(adapter.parallel), adapter.pos_embed is not None
    return [site_at(i, par, pos, adapter.post_norms) for i in range(n_sites(n_layers, par))]


def model_sites(model: nn.Module) -> list[Site]:
    """The site list of a loaded transformers model, decided by its adapter."""
    return sites_for(adapter_for(model), model.config.num_hidden_layers)


def layer_sites(n_layers: int, parallel: bool = False) -> list[LayerSites]:
    """For every decoder layer, the sites it reads and writes."""
    if parallel:
        return [LayerSites(i, i, None, i + 1) for i in range(n_layers)]
    return [LayerSites(i, 2 * i, 2 * i + 1, 2 * i + 2) for i in range(n_layers)]


def layers_of(sites: Sequence[Site]) -> list[LayerSites]:
    """The per-layer view of a site list (from `sites_for` / `model_sites`)."""
    par = len(sites) > 1 and sites[1].kind == "block"
    return layer_sites((len(sites) - 1) if par else (len(sites) - 1) // 2, par)


def model_layer_sites(model: nn.Module) -> list[LayerSites]:
    """For every decoder layer of a loaded model, the sites it reads and writes (from its adapter)."""
    return layers_of(model_sites(model))


def is_parallel(sites: Sequence[Site]) -> bool:
    """Whether a site list is that of parallel layers."""
    return len(sites) > 1 and sites[1].kind == "block"


def layer_of_map(role: str, site: int, parallel: bool = False) -> int:
    """The decoder layer a residual-stream map belongs to: a reader of site s is in the layer that reads s
    (the LM head, reading the last site, is 'layer' L), a writer of site s in the layer that writes s (the
    embedding: −1)."""
    if parallel:
        return site if role == "reader" else site - 1
    return site // 2 if role == "reader" else (site - 1) // 2


def check_sites(count: int, n_layers: int, what: str = "site widths", parallel: bool = False) -> None:
    """One-line UsageError unless `count` equals the number of sites."""
    if count != n_sites(n_layers, parallel):
        how = f"{n_layers} parallel layers + 1" if parallel else f"2 x {n_layers} layers + 1"
        raise UsageError(f"need {n_sites(n_layers, parallel)} {what} ({how}), got {count}")


def site_hooks(n_layers: int, parallel: bool = False) -> list[str]:
    """The residual hook names of every site, in site order."""
    return [site_at(i, parallel).hook for i in range(n_sites(n_layers, parallel))]


def lens_sites(n_layers: int, which: str | int | list[int] = "post", parallel: bool = False) -> list[int]:
    """Sites that get the logit lens: "post" (embeddings + every layer's output), "all", "none", an int k
    (embeddings + every k-th layer's output + the last), or an explicit list of sites."""
    S = n_sites(n_layers, parallel)
    outs = [0] + [ls.out for ls in layer_sites(n_layers, parallel)]
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
