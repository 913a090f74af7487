"""How big a model is: parameters (by where they live) and multiply-accumulates per token.

Counts work the same on a dense transformers model and on a sliced one, so the two can sit side by side.
Shared (tied) tensors are counted once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch.nn as nn

from ..adapters import Adapter, adapter_for
from .sites import layers_of, sites_for


def count_params(model: nn.Module) -> int:
    """Every parameter the model holds, shared (tied) tensors once."""
    return sum(p.numel() for p in model.parameters())


def param_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters split by location: token embeddings + head, learned `positions` (GPT-2, OPT), decoder
    blocks, shortcut and basis maps, the maps a sliced post-norm model adds after its blocks' output norms
    (`post_norm_maps`, Gemma 3: D x d_s each), and other (the final norm); `total` is their sum. `biases`
    counts the bias vectors among them (the linear maps', the norms' and those folded LayerNorm biases
    add)."""
    a = adapter_for(model) if type(model).__name__ != "SlicedForCausalLM" else None
    lay = model.config.slicing["layout"] if a is None else a.layout()
    seen: set[int] = set()
    out = {"embeddings_head": 0, "positions": 0, "blocks": 0, "shortcuts": 0, "post_norm_maps": 0, "other": 0}
    post = tuple(f".{lay[k]}.output_map." for k in ("attn_post_norm", "mlp_post_norm") if lay.get(k))
    biases = 0
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        if lay.get("pos_embed") and name.startswith(lay["pos_embed"] + "."):
            key = "positions"
        elif name.startswith((lay["embed"] + ".", lay["lm_head"] + ".")):
            key = "embeddings_head"
        elif post and any(k in name for k in post):
            key = "post_norm_maps"
        elif any(k in name for k in ("shortcut", "input_map", "output_map")):
            key = "shortcuts"
        elif name.startswith(lay["layers"] + "."):
            key = "blocks"
        else:
            key = "other"
        out[key] += p.numel()
        biases += p.numel() if name.rpartition(".")[2] == "bias" else 0
    out["total"] = sum(out.values())
    out["biases"] = biases
    return out


def macs_per_token(model: nn.Module, context: int = 512) -> dict[str, float]:
    """Multiply-accumulates per token: every linear map (LM head included) plus attention's QK^T and AV,
    averaged over a causal window of `context` tokens (the latter does not change under slicing)."""
    cfg = model.config
    linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    attention = cfg.num_hidden_layers * 2 * cfg.num_attention_heads * head_dim * (context + 1) / 2
    return {"linear": float(linear), "attention": float(attention), "total": float(linear + attention)}


# ----------------------------------------------------------------------------- the cost of a schedule


@dataclass(frozen=True)
class WidthCost:
    """Exact parameter count of a model sliced to per-site widths d (what `count_params` says of the sliced
    model, before it exists): const + Σ_s linear[s]·d_s + Σ_{(s,t) in pairs} d_s·d_t.

    `linear[s]` is what one more kept direction of site s costs in maps that read or write it alone
    (readers' rows, writers' columns and their biases, the tied head's D x d_0 input map and d_L x D output
    map, an untied table's or head's vocabulary rows, a post-norm's D x d_s map); `pairs` are the shortcut
    matrices on the skip paths (d_in x d_out between the sites a block reads and writes); `const` is every
    parameter whose size no width changes. `terms[s]` itemises `linear[s]` (name → parameters per kept
    direction). The pairs join neighbouring sites only (`core.sites`), so a schedule's cost is a chain."""

    hidden: int
    const: int
    linear: list[int]
    pairs: list[tuple[int, int]]
    terms: list[dict[str, int]] = field(default_factory=list)

    def count(self, dims: Sequence[int]) -> int:
        """Parameters of the model sliced to `dims` (one width per site)."""
        d = [int(x) for x in dims]
        if len(d) != len(self.linear):
            raise ValueError(f"need {len(self.linear)} widths, got {len(d)}")
        own = sum(a * b for a, b in zip(self.linear, d))
        return self.const + own + sum(d[s] * d[t] for s, t in self.pairs)

    def marginal(self, dims: Sequence[int], site: int) -> int:
        """Parameters one more kept direction of `site` costs at `dims` (its own maps and its shortcuts)."""
        return self.linear[site] + sum(dims[t] if s == site else dims[s] for s, t in self.pairs
                                       if site in (s, t))


def _io_features(module: nn.Module, transposed: bool) -> tuple[int, int]:
    """(in, out) features of a linear map (GPT-2's Conv1D stores in x out)."""
    rows, cols = module.weight.shape
    return (rows, cols) if transposed else (cols, rows)


def _has_bias(module: nn.Module) -> bool:
    return getattr(module, "bias", None) is not None


def _touched(model: nn.Module, a: Adapter, keep_io: bool) -> list[nn.Module]:
    """The modules slicing replaces or resizes (their dense parameters are not in `const`)."""
    mods = [model.get_submodule(p) for p in (a.embed, a.lm_head, a.final_norm, a.pos_embed) if p]
    for layer in model.get_submodule(a.layers):
        paths = (a.attn_norm, a.mlp_norm, *a.attn_in, *a.mlp_in, a.attn_out, a.mlp_out,
                 a.attn_post_norm, a.mlp_post_norm)
        mods += [layer.get_submodule(p) for p in paths if p]
    return mods


def width_cost(model: nn.Module, untie_head: bool = False) -> WidthCost:
    """The exact parameter cost of slicing `model` (a dense transformers model) to any per-site widths, as
    `core.slicing.slice_model` builds it (`untie_head` as there). Tested against `count_params` of sliced
    models of every tiny family, tied and untied."""
    a, cfg = adapter_for(model), model.config
    D = cfg.hidden_size
    sites = sites_for(a, cfg.num_hidden_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False)) and not untie_head
    keep_io = tied or a.full_width_io
    S, last = len(sites), len(sites) - 1
    terms: list[dict[str, int]] = [{} for _ in range(S)]

    def add(site: int, name: str, per_dim: int) -> None:
        terms[site][name] = terms[site].get(name, 0) + per_dim

    touched = {id(p) for m in _touched(model, a, keep_io) for p in m.parameters()}
    const = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if id(p) not in touched)
    embed, head = model.get_submodule(a.embed), model.get_submodule(a.lm_head)
    pos = model.get_submodule(a.pos_embed) if a.pos_embed else None
    vocab = embed.weight.shape[0]
    if keep_io:  # tables stay D wide; a D x d_0 map after the lookup, a d_L x D map before the final norm
        const += embed.weight.numel() + (pos.weight.numel() if pos is not None else 0)
        const += (0 if tied else head.weight.numel()) + (vocab if _has_bias(head) else 0)
        const += D * (2 if a.centred else 1)  # the final norm's scale (and bias), kept explicit
        add(0, "input map (D x d_0)", D)
        add(last, "output map (d_L x D)", D)
    else:
        add(0, "token table rows", vocab)
        if pos is not None:
            add(0, "position table rows", pos.weight.shape[0])
        add(last, "LM head", vocab)
        const += vocab if (a.centred or _has_bias(head)) else 0
    pairs: list[tuple[int, int]] = []
    layers = model.get_submodule(a.layers)
    for ls in layers_of(sites):
        layer = layers[ls.layer]
        for paths, site in ((a.attn_in, ls.inp), (a.mlp_in, ls.mlp_inp)):
            for p in paths:
                _, out_f = _io_features(layer.get_submodule(p), a.transposed)
                add(site, f"reader {p}", out_f)
                const += out_f if (a.centred or _has_bias(layer.get_submodule(p))) else 0
        writes = ((a.attn_out, a.attn_post_norm, ls.mid if ls.mid is not None else ls.out),
                  (a.mlp_out, a.mlp_post_norm, ls.out))
        for path, post, site in writes:
            w = layer.get_submodule(path)
            if post:  # the writer keeps D; its output norm becomes a weightless norm + a D x d_s map
                const += w.weight.numel() + (w.bias.numel() if _has_bias(w) else 0)
                add(site, f"post-norm map {post}", D)
            else:
                in_f, _ = _io_features(w, a.transposed)
                add(site, f"writer {path}", in_f + (1 if _has_bias(w) else 0))
        pairs += [(ls.inp, ls.out)] if ls.parallel else [(ls.inp, ls.mid), (ls.mid, ls.out)]
    linear = [sum(t.values()) for t in terms]
    return WidthCost(hidden=D, const=const, linear=linear, pairs=pairs, terms=terms)
