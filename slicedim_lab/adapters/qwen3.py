"""Qwen3: the Llama layout; its q/k RMSNorms act inside attention on each head's dimensions, after the
readers, so the residual rotation never touches them."""

from dataclasses import replace

from .llama import ADAPTER as LLAMA

ADAPTER = replace(LLAMA, architectures=("Qwen3ForCausalLM",), tl_architecture="Qwen3ForCausalLM")
