"""Llama family (Llama-2, Llama-3 with GQA, SmolLM2): separate q/k/v and gate/up projections."""

from .base import Adapter

ADAPTER = Adapter(
    architectures=("LlamaForCausalLM",),
    tl_architecture="LlamaForCausalLM",
    attn_in=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    mlp_in=("mlp.gate_proj", "mlp.up_proj"),
)
