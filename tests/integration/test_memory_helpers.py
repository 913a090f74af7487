"""The pieces of copy-free slicing (`core/memory.py`): pages of memory-mapped weights given back without
changing a value, alias copies that share storage but not tensors, and a subprocess's own peak RSS."""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from slicedim_lab.core.memory import (
    alias_copy,
    own_tensors,
    release_pages,
    rss_bytes,
    run_measured,
    storage_ptrs,
)
from slicedim_lab.testing import tiny_model

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and madvise")


def mapped(tmp_path, mb: int = 64) -> torch.Tensor:
    """A float32 tensor memory-mapped from a safetensors file, every page read once."""
    save_file({"w": torch.randn(mb * 2**18)}, str(tmp_path / "w.safetensors"))
    with safe_open(str(tmp_path / "w.safetensors"), "pt") as f:
        w = f.get_tensor("w")
    w.sum()
    return w


@linux
def test_release_pages_keeps_values_and_drops_clean_mapped_pages(tmp_path) -> None:
    w = mapped(tmp_path)
    ref = w.clone()
    before = rss_bytes()
    assert release_pages([w[: w.numel() // 2], w[w.numel() // 2 :]]) >= 60 * 2**20
    assert before - rss_bytes() >= 50 * 2**20
    assert torch.equal(w, ref)  # read again from the file


@linux
def test_release_pages_leaves_written_mappings_and_anonymous_memory_alone(tmp_path) -> None:
    w = mapped(tmp_path)
    w[:10] = 1.0  # one copied-on-write page: the mapping is no longer the file
    ref = w.clone()
    assert release_pages([w]) == 0 and torch.equal(w, ref)
    heap = torch.randn(2**20)
    assert release_pages([heap, None]) == 0


def test_alias_copy_shares_storage_not_tensors() -> None:
    model = tiny_model("llama", tie_word_embeddings=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = alias_copy(model)
    assert storage_ptrs(twin) == storage_ptrs(model)
    assert twin.lm_head.weight is twin.model.embed_tokens.weight  # still tied
    twin.double()  # replaces the copy's tensors ...
    twin.model.layers[0].mlp.down_proj = torch.nn.Identity()
    assert next(model.parameters()).dtype == torch.float32  # ... never the original's
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_own_tensors_copies_only_what_is_shared() -> None:
    model = tiny_model("llama", tie_word_embeddings=True)
    twin = alias_copy(model)
    new = torch.nn.Parameter(torch.zeros(64, 128))
    twin.model.layers[0].mlp.down_proj.weight = new
    shared = storage_ptrs(model)
    copied = own_tensors(twin, shared)
    assert copied == sum(t.numel() * 4 for t in (*model.parameters(), *model.buffers())) - new.numel() * 4
    assert not storage_ptrs(twin) & shared and twin.model.layers[0].mlp.down_proj.weight is new
    assert twin.lm_head.weight is twin.model.embed_tokens.weight
    ref = model.state_dict()
    replaced = "model.layers.0.mlp.down_proj.weight"
    assert all(torch.equal(v, ref[k]) for k, v in twin.state_dict().items() if k != replaced)


def test_run_measured_reports_the_child_and_stops_it_past_a_limit() -> None:
    grow = "import torch, time; x = torch.ones(400 * 2**18); time.sleep(1)"  # 400 MB
    r = run_measured([sys.executable, "-c", grow])
    assert r.returncode == 0 and not r.killed and r.peak_rss >= 400 * 2**20
    r = run_measured([sys.executable, "-c", grow], kill_above=200 * 2**20)
    assert r.killed and r.returncode != 0


def test_run_measured_does_not_count_the_callers_own_size() -> None:
    """A child forked by a large process starts with that process's resident set as its kernel peak; the
    watcher keeps the caller's 600 MB out of a small command's peak (the bug that failed the Phi-3 check
    inside a full test run, after a model fixture had grown pytest)."""
    ballast = torch.ones(600 * 2**18)  # 600 MB, touched
    r = run_measured([sys.executable, "-c", "pass"])
    assert r.returncode == 0 and r.peak_rss < 200 * 2**20, r.peak_rss / 2**20
    del ballast
