"""A sliced decoder-only transformer as a plain transformers model.

This file is self-contained on purpose: it imports only torch and transformers, and `save_sliced` copies it
next to the weights, so a saved folder loads with `AutoModelForCausalLM.from_pretrained(folder,
trust_remote_code=True)` on a machine without slicedim_lab.

The sliced model is the original architecture (built from the stored base config) with
- every residual-stream width cut to its site's kept width d_s (sites: after the embeddings, after each
  attention block, after each MLP block);
- weightless RMS norms that still divide by the ORIGINAL width D (that is what makes slicing an exact
  projection of the dense model);
- a shortcut matrix on each skip connection that moves the residual from one site's basis to the next;
- with a tied head: the embedding table kept in the original basis and shared with the head, a D x d_0 map
  after the lookup and a d_L x D map back before the final (weighted) norm.
Which modules are readers and writers is stored as plain data in `config.slicing["layout"]`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers import AutoConfig, AutoModel, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast


class SlicedConfig(PretrainedConfig):
    """The base model's config plus `base_model_type` and `slicing` = {site_dims, tied, layout, ...}."""

    model_type = "slicedim_sliced"

    def __init__(self, base_model_type: str = "llama", slicing: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.base_model_type = base_model_type
        self.slicing = slicing or {}

    def base_config(self) -> PretrainedConfig:
        fields = {
            k: v
            for k, v in self.to_dict().items()
            if k not in ("base_model_type", "slicing", "model_type", "auto_map", "architectures")
        }
        return AutoConfig.for_model(self.base_model_type, **fields)


class DimRMSNorm(nn.Module):
    """RMS normalisation of a d-dim residual that divides by the original width D (optionally weighted)."""

    def __init__(self, full_dim: int, eps: float, weight_dim: int | None = None):
        super().__init__()
        self.full_dim, self.eps = full_dim, eps
        self.weight = nn.Parameter(torch.ones(weight_dim)) if weight_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32) if dtype in (torch.float16, torch.bfloat16) else x
        x = (x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) / self.full_dim + self.eps)).to(dtype)
        return x if self.weight is None else self.weight * x


class MapBackNorm(DimRMSNorm):
    """Tied head: map the last site's coordinates back to the original basis, then the weighted norm."""

    def __init__(self, full_dim: int, eps: float, kept_dim: int):
        super().__init__(full_dim, eps, weight_dim=full_dim)
        self.output_map = nn.Linear(kept_dim, full_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.output_map(x))


class SlicedDecoderLayer(nn.Module):
    """x <- x S_attn + attn(norm(x)); x <- x S_mlp + mlp(norm(x)), S the shortcut (None = identity)."""

    def __init__(self, layer: nn.Module, layout: dict, shapes: tuple[int, int, int], input_dim: int | None):
        super().__init__()
        self.names = {k: layout[k] for k in ("attn_norm", "attn", "mlp_norm", "mlp")}
        for name in self.names.values():
            setattr(self, name, getattr(layer, name))
        d_in, d_mid, d_out = shapes
        self.input_map = nn.Linear(input_dim, d_in, bias=False) if input_dim else None
        self.attn_shortcut = nn.Linear(d_in, d_mid, bias=False)
        self.mlp_shortcut = nn.Linear(d_mid, d_out, bias=False)

    def attn_delta(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        h = getattr(self, self.names["attn_norm"])(x)
        return getattr(self, self.names["attn"])(hidden_states=h, **kwargs)[0]

    def mlp_delta(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.names["mlp"])(getattr(self, self.names["mlp_norm"])(x))

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> torch.Tensor:
        x = hidden_states if self.input_map is None else self.input_map(hidden_states)
        x = self.attn_shortcut(x) + self.attn_delta(x, **kwargs)
        return self.mlp_shortcut(x) + self.mlp_delta(x)


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _resized(linear: nn.Linear, d_in: int | None = None, d_out: int | None = None) -> nn.Linear:
    return nn.Linear(
        d_in or linear.in_features,
        d_out or linear.out_features,
        bias=linear.bias is not None,
        dtype=linear.weight.dtype,
        device=linear.weight.device,
    )


def shape_sliced(model: nn.Module, slicing: dict, full_dim: int, eps: float) -> None:
    """Turn a dense causal LM (any weights) into the sliced skeleton that `slicing` describes, in place."""
    lay, dims, tied = slicing["layout"], slicing["site_dims"], slicing["tied"]
    embed = model.get_submodule(lay["embed"])
    vocab = embed.num_embeddings
    if not tied:
        _set_module(model, lay["embed"], nn.Embedding(vocab, dims[0], padding_idx=embed.padding_idx))
        _set_module(model, lay["lm_head"], nn.Linear(dims[-1], vocab, bias=False))
    layers = model.get_submodule(lay["layers"])
    # the sites each layer reads and writes, as the slicer recorded them (exports older than that record
    # hold sequential layers: input 2i, after attention 2i+1, after the MLP 2i+2)
    io = slicing.get("layer_sites") or [[2 * i, 2 * i + 1, 2 * i + 2] for i in range(len(layers))]
    for i, layer in enumerate(layers):
        d_in, d_mid, d_out = (dims[s] for s in io[i])
        for path in lay["attn_in"]:
            _set_module(layer, path, _resized(layer.get_submodule(path), d_in=d_in))
        _set_module(layer, lay["attn_out"], _resized(layer.get_submodule(lay["attn_out"]), d_out=d_mid))
        for path in lay["mlp_in"]:
            _set_module(layer, path, _resized(layer.get_submodule(path), d_in=d_mid))
        _set_module(layer, lay["mlp_out"], _resized(layer.get_submodule(lay["mlp_out"]), d_out=d_out))
        _set_module(layer, lay["attn_norm"], DimRMSNorm(full_dim, eps))
        _set_module(layer, lay["mlp_norm"], DimRMSNorm(full_dim, eps))
        input_dim = full_dim if (tied and i == 0) else None
        layers[i] = SlicedDecoderLayer(layer, lay, (d_in, d_mid, d_out), input_dim)
    final = MapBackNorm(full_dim, eps, dims[-1]) if tied else DimRMSNorm(full_dim, eps)
    _set_module(model, lay["final_norm"], final)


class SlicedForCausalLM(PreTrainedModel, GenerationMixin):
    """The sliced model: `model` (the base architecture's decoder, resized) and `lm_head`."""

    config_class = SlicedConfig
    base_model_prefix = "model"
    _no_split_modules = ["SlicedDecoderLayer"]
    _supports_sdpa = True
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: SlicedConfig):
        super().__init__(config)
        base = config.base_config()
        self.model = AutoModel.from_config(base)
        self.lm_head = nn.Linear(base.hidden_size, base.vocab_size, bias=False)
        shape_sliced(
            self, config.slicing, base.hidden_size, getattr(base, config.slicing["layout"]["norm_eps"])
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.get_submodule(self.config.slicing["layout"]["embed"])

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache)
