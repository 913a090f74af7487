"""What an architecture adapter declares: where the norms and the linear maps around the residual stream are,
and what kind of layer and norm the algorithm meets.

An adapter is data, not code. Paths are dotted attribute paths: `embed`, `pos_embed`, `layers`, `final_norm`
and `lm_head` from the causal-LM root; the rest from one decoder layer. Readers are the linear maps whose
*input* is a normalised residual (they are rotated on their input side, and absorb the norm's scale and
bias); writers are the maps whose *output* is added to the residual (rotated on their output side). Fused
maps (Phi-3's `qkv_proj`) are just one reader. Decoder layers are pre-norm, either

- sequential: x += attn(attn_norm(x)); x += mlp(mlp_norm(x))   (two residual sites per layer), or
- parallel:   x += attn(attn_norm(x)) + mlp(mlp_norm(x))       (one site per layer; `attn_norm` may be
  `mlp_norm`, one shared norm).

A sequential layer may also normalise each block's OUTPUT before the residual add ("sandwich" norms, Gemma
2/3: x += attn_post_norm(attn(attn_norm(x))); x += mlp_post_norm(mlp(mlp_norm(x)))). Such a post-norm acts on
the block's own D-wide output y, not on the residual stream, so the slicer keeps the block's writer as it is
and writes Bᵀ·diag(scale)·y/rms(y) into the site: a weightless norm over y followed by a new D x d' map.

Norm kinds: "rms" (x / rms(x) * (norm_offset + w)), "layer" (LayerNorm: the slicer centres every writer of
the residual stream so it is mean-free, where LayerNorm equals a weightless RMS norm, and folds the scale and
bias into the readers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import UsageError

NORM_KINDS = ("rms", "layer")


@dataclass(frozen=True)
class Requirement:
    """A config value the adapter's description needs: `attr` must equal `value` (or the value of config
    attribute `same_as`); otherwise a one-line UsageError saying `why`."""

    attr: str
    why: str
    value: Any = None
    same_as: str | None = None

    def check(self, config: Any, arch: str) -> None:
        have = getattr(config, self.attr, None)
        want = getattr(config, self.same_as, None) if self.same_as else self.value
        if have is not None and have != want:
            raise UsageError(f"unsupported {arch}: {self.attr}={have!r} ({self.why})")


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
    mlp: str | tuple[str, ...] = "mlp"  # the MLP module, or the layer's modules it applies in order (OPT)
    mlp_out: str = "mlp.down_proj"
    attn_post_norm: str | None = None  # a norm on the attention block's output, before the residual add
    mlp_post_norm: str | None = None  # a norm on the MLP block's output, before the residual add
    norm_eps: str | float = "rms_norm_eps"  # config attribute holding the norm epsilon (or the value)
    norm: str = "rms"  # "rms" | "layer" (see the module docstring)
    norm_offset: float = 0.0  # the norm multiplies by (norm_offset + weight): Gemma's (1 + w) is 1.0
    parallel: bool | str = False  # parallel layers; a str names the config attribute that says so
    pos_embed: str | None = None  # learned position embedding (a second writer of site 0), from the root
    transposed: bool = False  # linear maps store their weight as in x out (GPT-2's Conv1D)
    # the base model reshapes its output to its embeddings' width (GPT-2's `view(output_shape)`): the sliced
    # model keeps the lookup's and the final norm's outputs D wide, as it does for a tied head
    full_width_io: bool = False
    requires: tuple[Requirement, ...] = ()

    @property
    def post_norms(self) -> bool:
        """Whether the blocks' outputs are normalised before the residual add (both blocks, or neither)."""
        return self.attn_post_norm is not None

    @property
    def centred(self) -> bool:
        """Whether slicing must make the residual stream mean-free (LayerNorm)."""
        return self.norm == "layer"

    def eps(self, config: Any) -> float:
        """The norm epsilon of a model with this config."""
        return float(getattr(config, self.norm_eps) if isinstance(self.norm_eps, str) else self.norm_eps)

    def resolve(self, config: Any, arch: str) -> Adapter:
        """This description for one model's config: requirements checked, `parallel` made a bool."""
        for r in self.requires:
            r.check(config, arch)
        if (self.attn_post_norm is None) != (self.mlp_post_norm is None) or (
                self.post_norms and (self.parallel or self.norm != "rms")):
            raise ValueError(f"{arch}: RMS post-norms on both blocks of a sequential layer, or on neither")
        if isinstance(self.parallel, str):
            return replace(self, parallel=bool(getattr(config, self.parallel)))
        return self

    def layout(self) -> dict:
        """The plain-data description stored in a sliced model's config (so it loads without this package)."""
        out = asdict(self)
        out.pop("requires")
        return out
