"""How big a model is: parameters (by where they live) and multiply-accumulates per token.

Counts work the same on a dense transformers model and on a sliced one, so the two can sit side by side.
Shared (tied) tensors are counted once.
"""

from __future__ import annotations

import torch.nn as nn

from ..adapters import adapter_for


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
