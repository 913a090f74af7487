"""Architecture adapters: one small declarative file per family. Add one by adding a module to `_MODULES`."""

from __future__ import annotations

from importlib import import_module

import torch.nn as nn

from ..errors import UsageError
from .base import Adapter, Requirement

_MODULES = ("llama", "mistral", "qwen2", "phi3", "gpt_neox", "gpt2", "opt", "phi", "gemma", "gemma3", "qwen3")
ADAPTERS: dict[str, Adapter] = {
    arch: mod.ADAPTER
    for mod in (import_module(f".{m}", __name__) for m in _MODULES)
    for arch in mod.ADAPTER.architectures
}

# architectures refused on purpose, with the reason (docs/slicing.md explains each)
REFUSED: dict[str, str] = {
    "Gemma3ForConditionalGeneration": "a multimodal model: its image embeddings are written into the "
    "residual stream by a vision tower this package does not slice; load the text model (Gemma3ForCausalLM)",
    "Gemma2ForCausalLM": "its logits are soft-capped (c·tanh(z/c)), which the logit lens, the flow tables "
    "and the predictors do not model; Gemma 3 (the same post-norm layers, no soft-capping) is supported",
}


def adapter_for(model: nn.Module) -> Adapter:
    """The adapter of a loaded transformers model, resolved against its config (`Adapter.resolve`), or a
    one-line UsageError naming the supported ones."""
    arch = type(model).__name__
    if arch in REFUSED:
        raise UsageError(f"unsupported architecture {arch}: {REFUSED[arch]}")
    if arch not in ADAPTERS:
        raise UsageError(f"unsupported architecture {arch}; supported: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[arch].resolve(model.config, arch)


def get_module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


def set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


__all__ = ["Adapter", "ADAPTERS", "REFUSED", "Requirement", "adapter_for", "get_module", "set_module"]
