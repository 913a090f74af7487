"""The test scaffolding of `slicedim_lab.testing`: tiny random models of every family, random real-shaped
checkpoints written shard by shard, the byte-level tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from slicedim_lab.adapters import adapter_for
from slicedim_lab.errors import UsageError
from slicedim_lab.testing import (
    byte_tokenizer,
    checkpoint_bytes,
    shape_config,
    tiny_model,
    write_random_checkpoint,
)


@pytest.mark.parametrize("tied", [False, True])
def test_tiny_model(tiny_arch: str, tied: bool) -> None:
    state = torch.random.get_rng_state()
    m = tiny_model(tiny_arch, seed=1, tie_word_embeddings=tied)
    assert torch.equal(state, torch.random.get_rng_state()), "tiny_model must not touch the global RNG"
    cfg = m.config
    sizes = (cfg.hidden_size, cfg.num_attention_heads, cfg.vocab_size)
    assert sizes == (64, 4, 256) and cfg.num_key_value_heads in (2, 4)  # GQA where the family has it
    eps = adapter_for(m).eps(cfg)
    assert cfg.intermediate_size == 128 and 2 <= cfg.num_hidden_layers <= 3 and eps == 1e-5
    assert cfg._attn_implementation == "eager" and not m.training
    assert (m.get_output_embeddings().weight is m.get_input_embeddings().weight) == tied
    norms = [mod.weight for mod in m.modules()
             if type(mod).__name__.endswith("RMSNorm") or isinstance(mod, torch.nn.LayerNorm)]
    assert norms and all((w - 1).abs().max() > 0.01 for w in norms)
    names = {n for n, _ in m.named_parameters()}
    if tiny_arch == "phi3":
        assert any("qkv_proj" in n for n in names) and any("gate_up_proj" in n for n in names)
    if tiny_arch == "qwen2":
        assert m.model.layers[0].self_attn.q_proj.bias.abs().max() > 0
    ids = torch.randint(0, 256, (2, 9))
    with torch.no_grad():
        out = m(input_ids=ids).logits
        assert out.shape == (2, 9, 256) and torch.isfinite(out).all()
        same = tiny_model(tiny_arch, seed=1, tie_word_embeddings=tied)
        other = tiny_model(tiny_arch, seed=2, tie_word_embeddings=tied)
        assert torch.equal(out, same(input_ids=ids).logits)
        assert not torch.equal(out, other(input_ids=ids).logits)


def test_tiny_model_dtype_and_overrides() -> None:
    m = tiny_model("llama", dtype=torch.float64, num_hidden_layers=2)
    assert m.dtype == torch.float64 and m.config.num_hidden_layers == 2
    with pytest.raises(UsageError, match="unknown tiny architecture"):
        tiny_model("bloom")


def test_random_checkpoint_loads_and_counts_its_bytes(tmp_path: Path) -> None:
    config = shape_config("llama3-8b", layers=1, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=128, vocab_size=256)
    folder = write_random_checkpoint(tmp_path / "ckpt", config, tokenizer=byte_tokenizer(), seed=3)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == len(list(folder.glob("*.safetensors")))
    model = AutoModelForCausalLM.from_pretrained(folder)
    n = sum(p.numel() for p in model.parameters())
    assert checkpoint_bytes(folder) == 4 * n
    norm = model.model.layers[0].input_layernorm.weight
    assert (norm - 1).abs().max() < 1 and (norm - 1).abs().max() > 0.01  # a norm's scale near 1, not 1
    again = write_random_checkpoint(tmp_path / "again", config, seed=3)
    w = AutoModelForCausalLM.from_pretrained(again).model.layers[0].mlp.up_proj.weight
    assert torch.equal(w, model.model.layers[0].mlp.up_proj.weight)  # deterministic from the seed
    with pytest.raises(UsageError, match="unknown shape"):
        shape_config("gpt5")


def test_byte_tokenizer_round_trips_any_text() -> None:
    tok = byte_tokenizer()
    text = "déjà vu: x -> y\n\tü"
    ids = tok(text).input_ids
    assert len(tok) == 256 and max(ids) < 256 and len(ids) == len(text.encode())
    assert tok.decode(ids) == text
