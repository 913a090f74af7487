"""Mistral: the Llama layout under another name (sliding-window attention does not touch the residual)."""

from dataclasses import replace

from .llama import ADAPTER as LLAMA

ADAPTER = replace(LLAMA, architectures=("MistralForCausalLM",), tl_architecture="MistralForCausalLM")
