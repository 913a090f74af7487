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
- where a block's output is normalised before the residual add (Gemma 2/3's post-norms), the block kept D
  wide and its norm made weightless, followed by a D x d_s map into the site's coordinates;
- with a tied head: the embedding table kept in the original basis and shared with the head, a D x d_0 map
  after the lookup and a d_L x D map back before the final (weighted) norm.
Which modules are readers and writers is stored as plain data in `config.slicing["layout"]`.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn
from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoModel,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast


class SlicedConfig(PretrainedConfig):
    """The base model's config plus `base_model_type` and `slicing` = {site_dims, tied, layout, ...}."""

    model_type = "slicedim_sliced"

    def __init__(self, base_model_type: str = "llama", slicing: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.base_model_type = base_model_type
        self.slicing = slicing or {}
        # the base config's standard aliases (GPT-2: num_hidden_layers -> n_layer), which generation reads
        base_cls = CONFIG_MAPPING[base_model_type] if base_model_type in CONFIG_MAPPING else None
        for alias, name in getattr(base_cls, "attribute_map", {}).items():
            if alias not in self.__dict__ and name in self.__dict__:
                setattr(self, alias, getattr(self, name))

    def base_config(self) -> PretrainedConfig:
        fields = {
            k: v
            for k, v in self.to_dict().items()
            if k not in ("base_model_type", "slicing", "model_type", "auto_map", "architectures")
        }
        return AutoConfig.for_model(self.base_model_type, **fields)


class DimRMSNorm(nn.Module):
    """RMS normalisation of a d-dim residual that divides by the original width D (optionally weighted and
    biased: a LayerNorm of a mean-free stream is exactly this, same epsilon)."""

    def __init__(self, full_dim: int, eps: float, weight_dim: int | None = None, bias: bool = False):
        super().__init__()
        self.full_dim, self.eps = full_dim, eps
        self.weight = nn.Parameter(torch.ones(weight_dim)) if weight_dim else None
        self.bias = nn.Parameter(torch.zeros(weight_dim)) if weight_dim and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32) if dtype in (torch.float16, torch.bfloat16) else x
        x = (x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) / self.full_dim + self.eps)).to(dtype)
        x = x if self.weight is None else self.weight * x
        return x if self.bias is None else x + self.bias


class MapBackNorm(DimRMSNorm):
    """Tied head: map the last site's coordinates back to the original basis, then the weighted norm."""

    def __init__(self, full_dim: int, eps: float, kept_dim: int, bias: bool = False):
        super().__init__(full_dim, eps, weight_dim=full_dim, bias=bias)
        self.output_map = nn.Linear(kept_dim, full_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.output_map(x))


class NormThenMap(nn.Module):
    """A block's output norm in a sliced model: the weightless RMS norm of the block's own D-wide output, then
    a D x d map into its site's coordinates (the norm's scale and the site's basis folded into the map).
    Half-precision inputs are normalised and mapped in float32 and rounded once, as the dense norm rounds
    once after its scale."""

    def __init__(self, full_dim: int, eps: float, kept_dim: int):
        super().__init__()
        self.full_dim, self.eps = full_dim, eps
        self.output_map = nn.Linear(full_dim, kept_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        x = x.to(work)
        x = x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) / self.full_dim + self.eps)
        return nn.functional.linear(x, self.output_map.weight.to(work)).to(dtype)


class SlicedDecoderLayer(nn.Module):
    """Sequential: x <- x S_attn + attn(norm(x)); x <- x S_mlp + mlp(norm(x)). Parallel (`shapes[1]` None):
    x <- x S_attn + attn(norm(x)) + mlp(norm(x)). S is a shortcut matrix. With post-norms, each block's
    output goes through its `NormThenMap` before the add."""

    def __init__(self, layer: nn.Module, layout: dict, shapes: tuple, input_dim: int | None):
        super().__init__()
        self.names = {k: layout[k] for k in ("attn_norm", "attn", "mlp_norm", "mlp")}
        # a norm on a block's output before the residual add (absent from exports of older versions)
        self.post = {k: layout.get(f"{k}_post_norm") for k in ("attn", "mlp")}
        # an MLP given as a list of the layer's modules applied in order (OPT: fc1, activation, fc2)
        self.mlp_parts = None if isinstance(layout["mlp"], str) else list(layout["mlp"])
        for name in (self.names["attn_norm"], self.names["attn"], self.names["mlp_norm"],
                     *(self.mlp_parts or [self.names["mlp"]]), *(p for p in self.post.values() if p)):
            setattr(self, name, getattr(layer, name))
        d_in, d_mid, d_out = shapes
        # what the model passes by position after the hidden states (GPT-2: cache, mask), by name
        params = list(inspect.signature(layer.forward).parameters.values())[1:]
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self.arg_names = [p.name for p in params if p.kind in kinds]
        self.input_map = nn.Linear(input_dim, d_in, bias=False) if input_dim else None
        self.parallel = d_mid is None
        self.attn_shortcut = nn.Linear(d_in, d_out if self.parallel else d_mid, bias=False)
        self.mlp_shortcut = None if self.parallel else nn.Linear(d_mid, d_out, bias=False)

    def _post(self, block: str, h: torch.Tensor) -> torch.Tensor:
        return h if self.post[block] is None else getattr(self, self.post[block])(h)

    def attn_delta(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        h = getattr(self, self.names["attn_norm"])(x)
        return self._post("attn", getattr(self, self.names["attn"])(hidden_states=h, **kwargs)[0])

    def mlp_delta(self, x: torch.Tensor) -> torch.Tensor:
        h = getattr(self, self.names["mlp_norm"])(x)
        if self.mlp_parts is None:
            return self._post("mlp", getattr(self, self.names["mlp"])(h))
        for name in self.mlp_parts:
            h = getattr(self, name)(h)
        return self._post("mlp", h)

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        kwargs.update(zip(self.arg_names, args))
        x = hidden_states if self.input_map is None else self.input_map(hidden_states)
        if self.parallel:
            return self.attn_shortcut(x) + self.attn_delta(x, **kwargs) + self.mlp_delta(x)
        x = self.attn_shortcut(x) + self.attn_delta(x, **kwargs)
        return self.mlp_shortcut(x) + self.mlp_delta(x)


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _features(module: nn.Module, transposed: bool = False) -> tuple[int, int]:
    """(in, out) of a linear map; `transposed`: its weight is stored in x out (GPT-2's Conv1D)."""
    out_f, in_f = module.weight.shape
    return (out_f, in_f) if transposed else (in_f, out_f)


def _resized(
    linear: nn.Module, d_in: int | None = None, d_out: int | None = None, transposed: bool = False,
    bias: bool | None = None,
) -> nn.Linear:
    """An nn.Linear like `linear` (an nn.Linear or a transposed Conv1D) with new widths; `bias` forces one."""
    in_f, out_f = _features(linear, transposed)
    return nn.Linear(
        d_in or in_f,
        d_out or out_f,
        bias=linear.bias is not None if bias is None else bias or linear.bias is not None,
        dtype=linear.weight.dtype,
        device=linear.weight.device,
    )


def _resize_table(embed: nn.Module, dim: int) -> None:
    """Give an embedding table (nn.Embedding or a subclass: OPT's positions) `dim` columns, in place."""
    embed.weight = nn.Parameter(torch.empty(embed.weight.shape[0], dim, dtype=embed.weight.dtype,
                                            device=embed.weight.device))
    embed.embedding_dim = dim


def shape_sliced(model: nn.Module, slicing: dict, full_dim: int, eps: float) -> None:
    """Turn a dense causal LM (any weights) into the sliced skeleton that `slicing` describes, in place."""
    lay, dims, tied = slicing["layout"], slicing["site_dims"], slicing["tied"]
    keep_io = slicing.get("keep_io", tied)  # the lookup and the final norm's output stay D wide
    tr = bool(lay.get("transposed", False))
    centred = lay.get("norm", "rms") == "layer"  # LayerNorm folded: readers carry the norm's bias
    if not keep_io:
        _resize_table(model.get_submodule(lay["embed"]), dims[0])
        if lay.get("pos_embed"):
            _resize_table(model.get_submodule(lay["pos_embed"]), dims[0])
        vocab = model.get_submodule(lay["embed"]).num_embeddings
        _set_module(model, lay["lm_head"], nn.Linear(dims[-1], vocab, bias=bool(slicing.get("head_bias"))))
    layers = model.get_submodule(lay["layers"])
    # the sites each layer reads and writes, as the slicer recorded them (exports older than that record
    # hold sequential layers: input 2i, after attention 2i+1, after the MLP 2i+2; parallel layers: mid None)
    io = slicing.get("layer_sites") or [[2 * i, 2 * i + 1, 2 * i + 2] for i in range(len(layers))]
    for i, layer in enumerate(layers):
        s_in, s_mid, s_out = io[i]
        d_in, d_out = dims[s_in], dims[s_out]
        d_mid = None if s_mid is None else dims[s_mid]
        for path in lay["attn_in"]:
            _set_module(layer, path,
                        _resized(layer.get_submodule(path), d_in=d_in, transposed=tr, bias=centred))
        for path in lay["mlp_in"]:
            _set_module(layer, path,
                        _resized(layer.get_submodule(path), d_in=d_mid or d_in, transposed=tr, bias=centred))
        for writer, post, d_site in ((lay["attn_out"], lay.get("attn_post_norm"), d_mid or d_out),
                                     (lay["mlp_out"], lay.get("mlp_post_norm"), d_out)):
            if post:  # the block keeps its width; its output norm maps into the site
                _set_module(layer, post, NormThenMap(full_dim, eps, d_site))
            else:
                _set_module(layer, writer, _resized(layer.get_submodule(writer), d_out=d_site, transposed=tr))
        _set_module(layer, lay["attn_norm"], DimRMSNorm(full_dim, eps))
        _set_module(layer, lay["mlp_norm"], DimRMSNorm(full_dim, eps))
        input_dim = full_dim if (keep_io and i == 0) else None
        layers[i] = SlicedDecoderLayer(layer, lay, (d_in, d_mid, d_out), input_dim)
    final = MapBackNorm(full_dim, eps, dims[-1], bias=centred) if keep_io else DimRMSNorm(full_dim, eps)
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
        lay = config.slicing["layout"]
        # the decoder and the head under the attribute names the base architecture uses (`model`,
        # `gpt_neox`, `transformer`; `lm_head`, `embed_out`), so state-dict keys match the layout's paths
        self.base_name = lay["layers"].split(".")[0]
        self.head_name = lay["lm_head"]
        setattr(self, self.base_name, AutoModel.from_config(base))
        setattr(self, self.head_name, nn.Linear(base.hidden_size, base.vocab_size,
                                                bias=bool(config.slicing.get("head_bias"))))
        self._tied_weights_keys = {f"{self.head_name}.weight": f"{lay['embed']}.weight"}
        eps = lay["norm_eps"] if isinstance(lay["norm_eps"], (int, float)) else getattr(base, lay["norm_eps"])
        shape_sliced(self, config.slicing, base.hidden_size, float(eps))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.get_submodule(self.config.slicing["layout"]["embed"])

    def get_output_embeddings(self) -> nn.Module:
        return self.get_submodule(self.head_name)

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
        out = getattr(self, self.base_name)(
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
        logits = self.get_submodule(self.head_name)(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache)
