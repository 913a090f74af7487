"""Phi-3: fused `qkv_proj` and `gate_up_proj`; each fused map is one reader of the residual stream."""

from .base import Adapter

ADAPTER = Adapter(
    architectures=("Phi3ForCausalLM",),
    tl_architecture="Phi3ForCausalLM",
    attn_in=("self_attn.qkv_proj",),
    mlp_in=("mlp.gate_up_proj",),
)
