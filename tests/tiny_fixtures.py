"""Tiny-model helpers shared by the test tiers (plain functions, importable from any test folder)."""

from __future__ import annotations

from pathlib import Path

import torch

from slicedim_lab.testing import TINY_ARCHS, tiny_model

ARCHS = TINY_ARCHS


def token_ids(n: int, seqlen: int, seed: int = 0, vocab: int = 256) -> torch.Tensor:
    """Deterministic random token windows (ids >= 3: no pad/bos/eos)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n, seqlen), generator=g)


def tiny64(arch: str = "llama", tied: bool = False, **overrides):
    """A float64 tiny model (3 layers, D = 64) of an architecture."""
    return tiny_model(arch, dtype=torch.float64, tie_word_embeddings=tied, **overrides)


def tiny_folder(folder: Path, tokenizer, arch: str = "llama", tied: bool = True) -> Path:
    """A tiny random model with the real tokenizer's vocabulary saved as a Hugging Face folder, so the CLI
    runs end to end in seconds (2 layers, D = 64)."""
    model = tiny_model(arch, num_hidden_layers=2, vocab_size=len(tokenizer), tie_word_embeddings=tied)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
