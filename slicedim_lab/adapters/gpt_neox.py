"""GPT-NeoX / Pythia: LayerNorm, fused q/k/v, partial rotary, untied head; parallel layers
(`use_parallel_residual`, Pythia's default: attention and MLP read the same input, each through its own norm)
or sequential ones."""

from .base import Adapter

ADAPTER = Adapter(
    architectures=("GPTNeoXForCausalLM",),
    tl_architecture="GPTNeoXForCausalLM",
    attn_in=("attention.query_key_value",),
    mlp_in=("mlp.dense_h_to_4h",),
    embed="gpt_neox.embed_in",
    layers="gpt_neox.layers",
    final_norm="gpt_neox.final_layer_norm",
    attn="attention",
    attn_out="attention.dense",
    mlp_out="mlp.dense_4h_to_h",
    norm_eps="layer_norm_eps",
    norm="layer",
    parallel="use_parallel_residual",
)
