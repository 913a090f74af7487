"""Qwen2 / Qwen2.5: the Llama layout; q/k/v carry biases, which input-side rotations leave untouched."""

from dataclasses import replace

from .llama import ADAPTER as LLAMA

ADAPTER = replace(LLAMA, architectures=("Qwen2ForCausalLM",), tl_architecture="Qwen2ForCausalLM")
