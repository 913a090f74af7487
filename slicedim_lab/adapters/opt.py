"""OPT: LayerNorm (eps 1e-5, not in the config), learned positions (offset 2: a table of max_positions + 2
rows, a second writer of site 0), tied head, biases; the MLP is the layer's own fc1 -> activation -> fc2.
Refused: post-norm OPT-350m (`do_layer_norm_before=False`) and project-in/out (`word_embed_proj_dim` !=
`hidden_size`), whose projections sit between the embeddings and the residual stream."""

from .base import Adapter, Requirement

ADAPTER = Adapter(
    architectures=("OPTForCausalLM",),
    tl_architecture="OPTForCausalLM",
    attn_in=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    mlp_in=("fc1",),
    embed="model.decoder.embed_tokens",
    pos_embed="model.decoder.embed_positions",
    layers="model.decoder.layers",
    final_norm="model.decoder.final_layer_norm",
    attn_norm="self_attn_layer_norm",
    attn_out="self_attn.out_proj",
    mlp_norm="final_layer_norm",
    mlp=("fc1", "activation_fn", "fc2"),
    mlp_out="fc2",
    norm_eps=1e-5,
    norm="layer",
    requires=(
        Requirement("do_layer_norm_before", "post-norm layers (OPT-350m) are not computationally invariant",
                    value=True),
        Requirement("word_embed_proj_dim", "project-in/out maps around the residual stream are not handled",
                    same_as="hidden_size"),
        Requirement("_remove_final_layer_norm", "checkpoints without a final LayerNorm are not handled",
                    value=False),
    ),
)
