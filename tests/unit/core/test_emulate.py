"""Hook emulation on the TransformerLens bridge equals the sliced model; the bridge boots for each adapter."""

from __future__ import annotations

import pytest
import torch
from tiny_fixtures import ARCHS, tiny64, token_ids

from slicedim_lab.adapters import adapter_for
from slicedim_lab.core import bridge as bridge_mod
from slicedim_lab.core.bridge import boot_bridge, hook_report
from slicedim_lab.core.emulate import (
    bases_for,
    dense_bases,
    emulated_logits,
    injection_hooks,
    run_emulated,
    site_residuals,
)
from slicedim_lab.core.replay import dense_pcas, run_sites
from slicedim_lab.core.sites import is_parallel, model_sites, site_at
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import site_dims
from slicedim_lab.errors import UsageError

CAL, IDS = token_ids(6, 32, seed=1), token_ids(2, 24, seed=2)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_emulated_logits_equal_sliced_model(arch: str, tied: bool):
    model = tiny64(arch, tied)
    sites = model_sites(model)
    res = slice_model(model, CAL, site_dims(3, 64, dim=40, parallel=is_parallel(sites)), progress=False)
    with torch.no_grad():
        sliced = res.model(IDS).logits
    b = boot_bridge(model)
    writes: dict[int, torch.Tensor] = {}
    logits, cache = run_emulated(b, IDS, res.bases, writes=writes)
    assert _rel(logits, sliced) <= 1e-6
    # the site residuals lie in their kept subspaces
    for s, x in enumerate(site_residuals(cache, 3, sites)):
        B = res.bases[s]
        assert float((x - (x @ B) @ B.T).norm() / x.norm()) < 1e-10
    # injecting the recorded writes into the dense model reproduces the sliced run exactly
    injected = b.run_with_hooks(IDS, fwd_hooks=injection_hooks([writes[s] for s in range(len(sites))], sites))
    # equal to rounding: how a layer orders its residual sum (x + a, a + x, a + m + x) decides the last bit
    assert _rel(injected.detach(), logits) <= 1e-12


def test_schedule_and_sliced_head_emulate_exactly():
    model = tiny64("llama", tied=True)
    dims = [48, 40, 56, 32, 64, 24, 40]  # every site its own width, the head's input sliced too
    res = slice_model(model, CAL, dims, progress=False)
    with torch.no_grad():
        sliced = res.model(IDS).logits
    assert _rel(emulated_logits(boot_bridge(model), IDS, res.bases), sliced) <= 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_bridge_hooks_and_dense_logits(arch: str):
    model = tiny64(arch)
    b = boot_bridge(model)
    assert all(hook_report(b).values())
    with torch.no_grad():
        ref = model(IDS).logits
    logits, cache = run_emulated(b, IDS, None)
    assert _rel(logits, ref) <= 1e-6  # Phi-3's bridge attention differs by ~1e-9 relative in float64
    xs, _ = run_sites(model, IDS)
    sites = model_sites(model)
    free = adapter_for(model).centred  # LayerNorm models: the replay gives the mean-free stream
    for site, x in zip(sites, xs, strict=True):
        y = cache[site.hook]
        assert _rel(y - y.mean(-1, keepdim=True) if free else y, x) <= 1e-6
    # full-width dense bases are identities: the emulation is the dense bridge run, bit for bit
    pcas = dense_pcas(model, CAL, progress=False)
    full = emulated_logits(b, IDS, dense_bases(pcas, [64] * len(sites)))
    assert torch.equal(full, logits)
    # the original model is left as it was (the bridge got a copy)
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, ref)


def test_write_and_site_hook_names():
    assert [site_at(s).hook for s in range(5)] == ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
                                                 "blocks.0.hook_resid_post", "blocks.1.hook_resid_mid",
                                                 "blocks.1.hook_resid_post"]
    writes = [site_at(s).write_hook for s in range(3)]
    assert writes == ["hook_embed", "blocks.0.hook_attn_out", "blocks.0.hook_mlp_out"]


def test_dense_bases_are_top_eigenvectors_and_validate():
    model = tiny64("qwen2")
    pcas = dense_pcas(model, CAL, progress=False)
    dims = site_dims(3, 64, dim=24)
    bases = bases_for("dense", dims, pcas=pcas)
    assert [b.shape for b in bases] == [(64, 24)] * 6 + [(64, 64)]
    assert torch.equal(bases[3], pcas[3].vectors[:, :24])
    assert torch.equal(bases[-1], torch.eye(64, dtype=torch.float64))
    same = bases_for("dense", dims, model=model, cal_ids=CAL)
    assert all(torch.allclose(a, b) for a, b in zip(same, bases))
    with pytest.raises(UsageError):
        bases_for("random", dims, pcas=pcas)
    with pytest.raises(UsageError):
        bases_for("interleaved", dims, pcas=pcas)


def test_boot_failure_is_one_line(monkeypatch):
    import transformer_lens.model_bridge.sources._bridge_builder as builder

    def broken(*args, **kwargs):
        raise RuntimeError("no adapter for this\nsecond line")

    monkeypatch.setattr(builder, "build_bridge_from_module", broken)
    with pytest.raises(UsageError, match="^TransformerLens cannot boot LlamaForCausalLM: RuntimeError: no"):
        boot_bridge(tiny64("llama"))


def test_missing_hooks_are_reported(monkeypatch):
    b = boot_bridge(tiny64("llama"))
    monkeypatch.setattr(bridge_mod, "required_hooks", lambda *a: ["hook_embed", "blocks.0.hook_nonexistent"])
    with pytest.raises(UsageError, match="lacks hooks blocks.0.hook_nonexistent"):
        bridge_mod.check_hooks(b)


def test_unsupported_architecture():
    from transformers import BloomConfig, BloomForCausalLM

    bloom = BloomForCausalLM(BloomConfig(n_layer=1, hidden_size=32, n_head=2, vocab_size=64))
    with pytest.raises(UsageError, match="unsupported architecture BloomForCausalLM"):
        boot_bridge(bloom)


