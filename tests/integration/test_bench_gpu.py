"""bench/bench_gpu.py cannot rot: its tiny mode runs on the CPU in a subprocess and prints every column and
every measurement; its bounds follow their formulas; the spec table is matched by GPU name; a model built on
the meta device gets the same buffers as one built normally."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    """The benchmark as a module (bench/ is on the tests' path: pyproject's `pythonpath`)."""
    import bench_gpu

    return bench_gpu


@pytest.mark.slow
def test_tiny_mode_prints_every_column_and_measurement(bench, tmp_path):
    out = tmp_path / "bench.json"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--reps", "1", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.perf_counter() - t0 < 60
    lines = proc.stdout.splitlines()
    header = next(ln for ln in lines if ln.startswith("| model |"))
    assert [c.strip() for c in header.strip("|").split("|")] == list(bench.COLUMNS)
    table = [ln for ln in lines if ln.startswith("| llama3-8b") or ln.startswith("| phi3-mini")]
    whats = ["eval dense", "generate dense", "calibrate+slice 8x64, s=0.25", "eval sliced s=0.25",
             "generate sliced s=0.25"]
    for shape in bench.SHAPES:
        assert [ln.split("|")[2].strip() for ln in table if ln.startswith(f"| {shape} ")] == whats
    assert "device: CPU" in lines[0] and "tiny mode" in lines[0]
    payload = json.loads(out.read_text())
    assert payload["tiny"] and payload["spec"] is None and len(payload["rows"]) == 10
    assert all(r["measured"] > 0 and r["bound"] is None and r["peak_gb"] > 0 for r in payload["rows"])
    for info in payload["models"].values():
        assert info["params_sliced"] < info["params_dense"] and info["dim"] == 96  # 0.75 · 128


@pytest.mark.parametrize(("name", "memory_gib", "expected"), [
    ("NVIDIA H200", 141, "H200 SXM"),
    ("NVIDIA H100 80GB HBM3", 80, "H100 SXM"),
    ("NVIDIA H100 PCIe", 80, "H100 PCIe"),
    ("NVIDIA A100-SXM4-80GB", 80, "A100 80GB SXM"),
    ("NVIDIA A100-SXM4-40GB", 40, "A100 40GB"),
    ("NVIDIA L40S", 48, "L40S"),
    ("NVIDIA L4", 24, "L4"),
    ("NVIDIA GeForce RTX 4090", 24, "RTX 4090"),
    ("Tesla T4", 16, None),
])
def test_spec_sheet_is_matched_by_name(bench, monkeypatch, name, memory_gib, expected):
    props = SimpleNamespace(name=name, total_memory=memory_gib * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    spec = bench.gpu_spec(torch.device("cuda"))
    assert (spec and spec.name) == expected
    assert bench.gpu_spec(torch.device("cpu")) is None


def test_bounds_follow_their_formulas(bench):
    cfg = bench.model_config("llama3-8b", tiny=True)
    model = bench.build_model(cfg, torch.device("cpu"), torch.float32)
    spec = bench.GPUSpec("test", bf16_tflops=100.0, fp64_tflops=10.0, hbm_tbps=1.0)
    D, L, V, inter = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, cfg.intermediate_size
    hd = D // cfg.num_attention_heads
    kv = cfg.num_key_value_heads * hd
    linear = L * (2 * D * D + 2 * D * kv + 3 * D * inter) + D * V  # q, o; k, v; gate, up, down; head
    assert linear == sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    assert bench.generate_bound(model, spec) == pytest.approx(1e12 / (4 * linear))  # float32 bytes
    seq = 64
    attention = L * 2 * cfg.num_attention_heads * hd * (seq + 1) / 2
    assert bench.eval_bound(model, seq, spec) == pytest.approx(100e12 / (2 * (linear + attention)))
    tokens, sites = 8 * seq, 2 * L + 1
    forward = 2 * (linear + attention) * tokens / 100e12
    assert bench.slice_bound(model, (8, seq), sites, spec) == pytest.approx(
        forward + sites * 2 * tokens * D * D / 10e12)
    assert bench.eval_bound(model, seq, None) is None and bench.generate_bound(model, None) is None


@pytest.mark.parametrize("shape", ["llama3-8b", "phi3-mini"])
def test_meta_built_model_has_real_buffers_and_shapes(bench, shape):
    """to_empty leaves buffers uninitialised: the rotary ones are recomputed; the full-size config is the
    real model's (parameter count of Meta-Llama-3-8B / Phi-3-mini, built on the meta device only)."""
    cfg = bench.model_config(shape, tiny=True)
    model = bench.build_model(cfg, torch.device("cpu"), torch.float32)
    ref = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    for (name, buf), (_, want) in zip(model.named_buffers(), ref.named_buffers()):
        assert torch.equal(buf, want), name
    assert torch.isfinite(model(torch.arange(3, 19)[None]).logits).all()
    with torch.device("meta"):
        full = AutoModelForCausalLM.from_config(bench.model_config(shape, tiny=False))
    expected = {"llama3-8b": 8_030_261_248, "phi3-mini": 3_821_079_552}[shape]
    assert sum(p.numel() for p in full.parameters()) == expected
