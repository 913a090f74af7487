"""Test scaffolding (as `transformers.testing_utils`): tiny random models and random real-shaped checkpoints.

Nothing in the product imports this module; tests, benchmarks and the memory checks do. `TINY_ARCHS` is the
one list of architectures every unit test runs over: a family joins by adding its config class to
`TINY_CONFIGS`, what it sets beyond the common sizes to `TINY_EXTRA`, and its name to `TINY_ARCHS`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    Phi3Config,
    PhiConfig,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

from .adapters import ADAPTERS
from .errors import UsageError

# ---------------------------------------------------------------------------------------------------------
# Tiny random-init models for tests: the real code paths of each architecture, in milliseconds.

TINY_CONFIGS: dict[str, type[PreTrainedConfig]] = {
    "llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config, "phi3": Phi3Config,
    "gpt_neox": GPTNeoXConfig, "gpt_neox_seq": GPTNeoXConfig, "gpt2": GPT2Config, "opt": OPTConfig,
    "phi": PhiConfig, "gemma": GemmaConfig, "gemma3": Gemma3TextConfig, "qwen3": Qwen3Config,
}
# what a tiny model of each family sets beyond the common sizes (partial rotary, parallel or not, ...)
TINY_EXTRA: dict[str, dict[str, Any]] = {
    "phi3": dict(original_max_position_embeddings=512),
    "gpt_neox": dict(layer_norm_eps=1e-5, rotary_pct=0.5, use_parallel_residual=True, hidden_act="gelu"),
    "gpt_neox_seq": dict(layer_norm_eps=1e-5, rotary_pct=0.5, use_parallel_residual=False, hidden_act="gelu"),
    "gpt2": dict(n_inner=128, layer_norm_epsilon=1e-5, activation_function="gelu_new"),
    "opt": dict(ffn_dim=128, word_embed_proj_dim=64, activation_function="relu", do_layer_norm_before=True),
    "phi": dict(layer_norm_eps=1e-5, partial_rotary_factor=0.5, hidden_act="gelu_new"),
    "gemma": dict(head_dim=16, hidden_act="gelu_pytorch_tanh"),
    # every other layer a sliding-window layer (window 4: shorter than the test windows) with its own rotary
    # base, as Gemma 3 alternates local and global layers; QK-norm and post-norms come with the family
    "gemma3": dict(head_dim=16, query_pre_attn_scalar=16, hidden_activation="gelu_pytorch_tanh",
                   sliding_window=4, sliding_window_pattern=2),
    "qwen3": dict(head_dim=16),
}
for _arch in ("gpt_neox", "gpt_neox_seq", "gpt2", "opt", "phi"):  # no GQA (TransformerLens reads the field)
    TINY_EXTRA[_arch]["num_key_value_heads"] = 4
# the one list of architectures every test runs over (a family joins once it passes every test)
TINY_ARCHS = ("llama", "mistral", "qwen2", "phi3", "gpt_neox", "gpt_neox_seq", "gpt2", "opt", "phi", "gemma",
              "qwen3", "gemma3")


def tiny_model(
    arch: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float32, **overrides: Any
) -> PreTrainedModel:
    """A tiny random-init causal LM of one architecture, deterministic from `seed`, in eval mode.

    hidden 64, 3 layers, 4 query heads / 2 KV heads (GQA where the family has it), MLP 128, vocab 256,
    untied embeddings unless `tie_word_embeddings=True`; eager attention. "qwen2" has q/k/v biases, "phi3"
    fused qkv_proj and gate_up_proj, "gpt_neox" (parallel layers) and "gpt_neox_seq" (sequential) LayerNorm,
    half rotary, biases. Norm scales are drawn as 1 + 0.1·randn (Gemma's norms scale by 1 + w: their w as
    0.1·randn) and every bias (norms' and linear maps') as 0.1·randn (not HF's ones and zeros) so a mistake
    in folding them shows up.
    `overrides` go to the config (e.g. num_hidden_layers=2). The global RNG state is left untouched.
    """
    if arch not in TINY_CONFIGS:
        raise UsageError(f"unknown tiny architecture {arch!r}; choose one of: {', '.join(TINY_CONFIGS)}")
    kwargs: dict[str, Any] = dict(
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=256,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        hidden_act="silu",
    )
    kwargs.update(TINY_EXTRA.get(arch, {}))
    kwargs.update(overrides)
    config = TINY_CONFIGS[arch](**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
        arch = type(model).__name__  # the family's norm offset, even for a configuration its adapter refuses
        offset = ADAPTERS[arch].norm_offset if arch in ADAPTERS else 0.0
        with torch.no_grad():
            for module in model.modules():
                if type(module).__name__.endswith("RMSNorm") or isinstance(module, nn.LayerNorm):
                    module.weight.copy_(1 - offset + 0.1 * torch.randn_like(module.weight))
                    if getattr(module, "bias", None) is not None:
                        module.bias.copy_(0.1 * torch.randn_like(module.bias))
                elif isinstance(module, torch.nn.Linear) and module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn_like(module.bias))  # HF inits biases to zero
    return model.to(dtype).eval()


# ---------------------------------------------------------------------------------------------------------
# Full-width random checkpoints for memory checks: a real model's shapes at reduced depth, written shard by
# shard (one tensor group in memory at a time), so the writer never holds the model.

SHAPES: dict[str, tuple[type, dict[str, Any]]] = {
    "llama3-8b": (LlamaConfig, dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                                    intermediate_size=14336, vocab_size=128256, rope_theta=500000.0,
                                    max_position_embeddings=8192)),
    "phi3-mini": (Phi3Config, dict(hidden_size=3072, num_attention_heads=32, num_key_value_heads=32,
                                   intermediate_size=8192, vocab_size=32064, max_position_embeddings=4096,
                                   original_max_position_embeddings=4096)),
}


def shape_config(shape: str, layers: int = 2, **overrides: Any) -> PreTrainedConfig:
    """The config of a named real shape (`SHAPES`) with `layers` decoder layers, untied, float32."""
    if shape not in SHAPES:
        raise UsageError(f"unknown shape {shape!r}; choose one of: {', '.join(SHAPES)}")
    cls, sizes = SHAPES[shape]
    kw = dict(sizes, num_hidden_layers=layers, tie_word_embeddings=False, rms_norm_eps=1e-5, bos_token_id=1,
              eos_token_id=2, pad_token_id=0, hidden_act="silu", dtype="float32")
    return cls(**{**kw, **overrides})


def _random_tensor(name: str, shape: tuple[int, ...], g: torch.Generator, std: float) -> torch.Tensor:
    """A norm's scale near 1, a bias near 0, a weight N(0, std^2) (filled in place: no float64 temporary)."""
    t = torch.empty(shape, dtype=torch.float32)
    if len(shape) == 1:
        return t.normal_(1.0 if "norm" in name else 0.0, 0.1, generator=g)
    return t.normal_(0.0, std, generator=g)


def write_random_checkpoint(folder: str | Path, config: PreTrainedConfig, tokenizer=None, seed: int = 0,
                            std: float = 0.02) -> Path:
    """A random-weight float32 Hugging Face folder of `config`: one safetensors shard per decoder layer and
    per other tensor, with the index; only one shard is in memory at a time. Returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    groups: dict[str, list[tuple[str, tuple[int, ...]]]] = {}  # a decoder layer, or one other tensor
    for name, p in skeleton.state_dict().items():
        m = re.search(r"\.layers\.(\d+)\.", name)
        groups.setdefault(f"layer{int(m.group(1)):04d}" if m else name, []).append((name, tuple(p.shape)))
    g = torch.Generator().manual_seed(seed)
    weight_map, total = {}, 0
    for i, params in enumerate(groups.values()):
        shard = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {n: _random_tensor(n, s, g, std) for n, s in params}
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        weight_map.update(dict.fromkeys(tensors, shard))
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    config.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 ids, no merges): text for a random checkpoint of any vocabulary."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def checkpoint_bytes(folder: str | Path) -> int:
    """The bytes of a folder's weights (its index's total size, else the safetensors files' sizes)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return int(json.loads(index.read_text())["metadata"]["total_size"])
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))
