"""GPT-2: LayerNorm, learned position embeddings (a second writer of site 0), tied head, biases everywhere,
Conv1D maps (an nn.Linear stored transposed: `transposed`), and a base model that reshapes its output to the
embeddings' width (`full_width_io`). Cross-attention variants are refused."""

from .base import Adapter, Requirement

ADAPTER = Adapter(
    architectures=("GPT2LMHeadModel",),
    tl_architecture="GPT2LMHeadModel",
    attn_in=("attn.c_attn",),
    mlp_in=("mlp.c_fc",),
    embed="transformer.wte",
    pos_embed="transformer.wpe",
    layers="transformer.h",
    final_norm="transformer.ln_f",
    attn_norm="ln_1",
    attn="attn",
    attn_out="attn.c_proj",
    mlp_norm="ln_2",
    mlp_out="mlp.c_proj",
    norm_eps="layer_norm_epsilon",
    norm="layer",
    transposed=True,
    full_width_io=True,
    requires=(Requirement("add_cross_attention", "cross-attention layers are not sliced", value=False),),
)
