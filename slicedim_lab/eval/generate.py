"""Greedy text generation, to read what a sliced model says next to the dense one (the quickstart's chat)."""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers import PreTrainedTokenizerBase


@torch.no_grad()
def generate_text(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int = 32,
    chat: bool = True,
) -> str:
    """Greedy continuation of `prompt` (wrapped in the tokenizer's chat template when it has one)."""
    if chat and getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
    else:
        enc = tokenizer(prompt, return_tensors="pt")
    dev = next(model.parameters()).device
    enc = {k: v.to(dev) for k, v in enc.items()}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
