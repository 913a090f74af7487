"""What an architecture adapter declares: where the norms and the linear maps around the residual stream are.

An adapter is data, not code. Paths are dotted attribute paths: `embed`, `layers`, `final_norm` and `lm_head`
from the causal-LM root; the rest from one decoder layer. Readers are the linear maps whose *input* is a
normalised residual (they are rotated on their input side, and absorb the norm's scale); writers are the maps
whose *output* is added to the residual (rotated on their output side). Fused maps (Phi-3's `qkv_proj`) are
just one reader. The decoder layer must be pre-norm and sequential:
x += attn(attn_norm(x)); x += mlp(mlp_norm(x)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Adapter:
    architectures: tuple[str, ...]  # transformers class names this description fits
    tl_architecture: str  # the architecture name TransformerLens' bridge knows it by
    attn_in: tuple[str, ...]  # readers after attn_norm
    mlp_in: tuple[str, ...]  # readers after mlp_norm
    embed: str = "model.embed_tokens"
    layers: str = "model.layers"
    final_norm: str = "model.norm"
    lm_head: str = "lm_head"
    attn_norm: str = "input_layernorm"
    attn: str = "self_attn"
    attn_out: str = "self_attn.o_proj"
    mlp_norm: str = "post_attention_layernorm"
    mlp: str = "mlp"
    mlp_out: str = "mlp.down_proj"
    norm_eps: str = "rms_norm_eps"  # config attribute holding the RMSNorm epsilon

    def layout(self) -> dict:
        """The plain-data description stored in a sliced model's config (so it loads without this package)."""
        return asdict(self)
