"""Architecture adapters: one small declarative file per family. Add one by adding a module to `_MODULES`."""

from __future__ import annotations

from importlib import import_module

import torch.nn as nn

from ..errors import UsageError
from .base import Adapter

_MODULES = ("llama", "mistral", "qwen2", "phi3")
ADAPTERS: dict[str, Adapter] = {
    arch: mod.ADAPTER
    for mod in (import_module(f".{m}", __name__) for m in _MODULES)
    for arch in mod.ADAPTER.architectures
}


def adapter_for(model: nn.Module) -> Adapter:
    """The adapter of a loaded transformers model, or a one-line UsageError naming the supported ones."""
    arch = type(model).__name__
    if arch not in ADAPTERS:
        raise UsageError(f"unsupported architecture {arch}; supported: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[arch]


def get_module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


def set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


__all__ = ["Adapter", "ADAPTERS", "adapter_for", "get_module", "set_module"]
