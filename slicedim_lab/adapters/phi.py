"""Phi-2 (and Phi-1/1.5): parallel layers with ONE shared LayerNorm feeding attention and MLP, partial
rotary, optional q/k LayerNorms inside attention (on head dimensions: the residual rotation leaves them
alone), a biased untied head."""

from .base import Adapter

ADAPTER = Adapter(
    architectures=("PhiForCausalLM",),
    tl_architecture="PhiForCausalLM",
    attn_in=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    mlp_in=("mlp.fc1",),
    final_norm="model.final_layernorm",
    attn_out="self_attn.dense",
    mlp_norm="input_layernorm",
    mlp_out="mlp.fc2",
    norm_eps="layer_norm_eps",
    norm="layer",
    parallel=True,
)
