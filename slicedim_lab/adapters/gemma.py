"""Gemma (1): the Llama layout with RMSNorm computing x / rms(x) * (1 + w) (`norm_offset`), embeddings looked
up and scaled by sqrt(D) inside the embedding module (a scalar: it commutes with every rotation, and the
sliced table keeps its scale), tied head. Gemma-2/3 are refused: see `REFUSED` in `__init__`."""

from dataclasses import replace

from .llama import ADAPTER as LLAMA

ADAPTER = replace(LLAMA, architectures=("GemmaForCausalLM",), tl_architecture="GemmaForCausalLM",
                  norm_offset=1.0)
