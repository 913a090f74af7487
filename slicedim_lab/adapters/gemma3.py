"""Gemma 3 (text): the Gemma layout with a second RMSNorm on each block's OUTPUT ("sandwich" norms:
x += post_norm(attn(input_layernorm(x))), then pre_feedforward_layernorm / post_feedforward_layernorm around
the MLP), all computing x / rms(x) * (1 + w). The embeddings are scaled by sqrt(D) inside the embedding module
(a scalar); QK-norm and sliding windows act inside the blocks, where slicing does not reach; the tied head
stays tied."""

from dataclasses import replace

from .base import Requirement
from .gemma import ADAPTER as GEMMA

ADAPTER = replace(GEMMA, architectures=("Gemma3ForCausalLM",),
                  tl_architecture="Gemma3ForCausalLM", mlp_norm="pre_feedforward_layernorm",
                  attn_post_norm="post_attention_layernorm", mlp_post_norm="post_feedforward_layernorm",
                  requires=(Requirement("final_logit_softcapping", "soft-capped logits are not modelled by "
                                        "the logit lens, the flow tables and the predictors"),))
