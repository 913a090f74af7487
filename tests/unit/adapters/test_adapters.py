"""Adapters are declarative data: every path they name exists on a tiny model of their family, what the
algorithm must know is a field (never an `if arch ==`), refused configurations fail with one line, and the
pieces the new families bring (LayerNorm, positions, Conv1D, scaled embeddings, q/k norms) are handled."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from transformers import AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig

import slicedim_lab
from slicedim_lab.adapters import ADAPTERS, REFUSED, adapter_for
from slicedim_lab.core.modeling_sliced import DimRMSNorm
from slicedim_lab.core.sites import is_parallel, layers_of, model_sites
from slicedim_lab.core.size import count_params, param_breakdown
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import site_dims
from slicedim_lab.errors import UsageError
from slicedim_lab.flow.maps import linear_maps, map_weight
from slicedim_lab.testing import TINY_ARCHS, tiny_model

IDS = torch.randint(3, 256, (4, 16), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_every_path_exists_and_the_adapter_is_data(arch: str) -> None:
    model = tiny_model(arch)
    a = adapter_for(model)
    assert dataclasses.is_dataclass(a) and isinstance(a.parallel, bool)  # resolved against the config
    for path in (a.embed, a.layers, a.final_norm, a.lm_head, *([a.pos_embed] if a.pos_embed else [])):
        model.get_submodule(path)
    mlp = [a.mlp] if isinstance(a.mlp, str) else list(a.mlp)
    for layer in model.get_submodule(a.layers):
        post = (a.attn_post_norm, a.mlp_post_norm) if a.post_norms else ()
        for path in (*a.attn_in, *a.mlp_in, a.attn_norm, a.attn, a.attn_out, a.mlp_norm, a.mlp_out, *mlp,
                     *post):
            layer.get_submodule(path)
    assert all(isinstance(v, (str, int, float, bool, tuple, type(None))) for v in a.layout().values())


def test_no_architecture_branches_in_the_package() -> None:
    """What differs between families lives in adapters/*.py as data; no module compares architecture names."""
    root = Path(slicedim_lab.__file__).parent
    pattern = re.compile(r"(\barch\w*|__name__|model_type)\s*[!=]=\s*['\"](?!SlicedForCausalLM|__main__)")
    hits = [f"{p.relative_to(root)}:{i + 1}" for p in root.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines()) if pattern.search(line)]
    assert hits == []


@pytest.mark.parametrize("config, extra, match", [
    (Gemma2Config, {}, "unsupported architecture Gemma2ForCausalLM: its logits are soft-capped"),
    (Gemma3TextConfig, dict(final_logit_softcapping=30.0),
     "unsupported Gemma3ForCausalLM: final_logit_softcapping=30.0 .soft-capped logits are not modelled"),
])
def test_soft_capped_gemmas_are_refused_with_one_line(config, extra: dict, match: str) -> None:
    cfg = config(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=256, head_dim=16, **extra)
    model = AutoModelForCausalLM.from_config(cfg)
    with pytest.raises(UsageError, match=match) as err:
        adapter_for(model)
    assert "\n" not in str(err.value)
    assert set(REFUSED).isdisjoint(ADAPTERS)


def test_multimodal_gemma3_is_refused_with_one_line() -> None:
    class Gemma3ForConditionalGeneration(nn.Module):  # only the class name matters to the lookup
        config = Gemma3TextConfig()

    with pytest.raises(UsageError, match="Gemma3ForConditionalGeneration: a multimodal model") as err:
        adapter_for(Gemma3ForConditionalGeneration())
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("arch, override, match", [
    ("opt", dict(do_layer_norm_before=False), "unsupported OPTForCausalLM: do_layer_norm_before=False"),
    ("opt", dict(word_embed_proj_dim=32), "unsupported OPTForCausalLM: word_embed_proj_dim=32 .project-in"),
    ("gpt2", dict(add_cross_attention=True), "unsupported GPT2LMHeadModel: add_cross_attention=True"),
])
def test_unsupported_configurations_are_one_line(arch: str, override: dict, match: str) -> None:
    model = tiny_model(arch, num_hidden_layers=1, **override)
    with pytest.raises(UsageError, match=match) as err:
        slice_model(model, IDS, [64] * 3, progress=False)
    assert "\n" not in str(err.value)


def test_layernorm_of_a_mean_free_stream_is_a_weightless_rms_norm() -> None:
    """The identity the LayerNorm families rest on, with LayerNorm's own epsilon semantics (var + eps)."""
    x = torch.randn(5, 7, 64, dtype=torch.float64) * 3 + 2
    free = x - x.mean(-1, keepdim=True)
    ln = nn.LayerNorm(64, eps=1e-5, elementwise_affine=False, dtype=torch.float64)
    assert torch.allclose(ln(x), DimRMSNorm(64, 1e-5)(free), rtol=0, atol=1e-12)
    assert not torch.allclose(ln(x), DimRMSNorm(64, 1e-5)(x), atol=1e-3)  # it needs the centring


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt_neox_seq", "gpt2", "opt", "phi"])
def test_layernorm_families_slice_to_weightless_norms_and_mean_free_writers(arch: str) -> None:
    model = tiny_model(arch, dtype=torch.float64)
    res = slice_model(model, IDS, site_dims(3, 64, dim=64, parallel=is_parallel(model_sites(model))),
                      progress=False)
    a = adapter_for(model)
    assert not any(isinstance(m, nn.LayerNorm) for m in res.model.modules())
    layers = res.model.get_submodule(a.layers)
    for layer, ls in zip(layers, layers_of(model_sites(model))):  # writers emit mean-free updates
        for path, site in ((a.attn_out, ls.own[0]), (a.mlp_out, ls.out)):
            w = res.bases[site] @ layer.get_submodule(path).weight.detach().double()  # original basis
            assert float(w.mean(0).abs().max()) < 1e-12
    ones = torch.ones(64, dtype=torch.float64)
    embed = res.model.get_input_embeddings().weight.detach().double()
    assert float((embed @ res.bases[0].T @ ones).abs().max()) < 1e-10 or a.full_width_io
    assert torch.isfinite(res.model(IDS).logits).all()


def test_bases_at_cut_widths_are_orthogonal_to_the_mean() -> None:
    model = tiny_model("gpt2", dtype=torch.float64)
    res = slice_model(model, IDS, site_dims(3, 64, dim=24), progress=False)
    ones = torch.ones(64, dtype=torch.float64)
    for b in res.bases:
        if b.shape[1] < 64:
            assert float((ones @ b).abs().max()) < 1e-12
            assert torch.allclose(b.T @ b, torch.eye(b.shape[1], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("arch", ["gpt2", "opt"])
def test_parameter_breakdown_counts_positions_and_biases(arch: str) -> None:
    model = tiny_model(arch, dtype=torch.float64)
    a = adapter_for(model)
    dense = param_breakdown(model)
    pos = model.get_submodule(a.pos_embed).weight
    assert dense["positions"] == pos.numel() > 0
    assert dense["biases"] == sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias"))
    assert dense["total"] == count_params(model)
    res = slice_model(model, IDS, site_dims(3, 64, dim=40), untie_head=True, progress=False)
    sliced = param_breakdown(res.model)
    width = res.model.get_submodule(a.pos_embed).weight.shape[1]
    assert sliced["positions"] == pos.shape[0] * width and sliced["total"] == count_params(res.model)
    assert width == (64 if a.full_width_io else 40)  # GPT-2 keeps the lookup D wide (see the adapter)
    assert sliced["biases"] > 0


def test_parallel_flow_maps_read_the_layer_input() -> None:
    model = tiny_model("phi", dtype=torch.float64)
    a, maps = adapter_for(model), linear_maps(model)
    for ls in layers_of(model_sites(model)):
        own = [m for m in maps if m["layer"] == ls.layer]
        assert {m["site"] for m in own if m["role"] == "reader"} == {ls.inp}
        assert {m["site"] for m in own if m["role"] == "writer"} == {ls.out}
        assert len([m for m in own if m["role"] == "writer"]) == 2  # attention and MLP write one site
    assert maps[-1]["map"] == a.lm_head and maps[-1]["site"] == len(model_sites(model)) - 1


def test_conv1d_maps_and_norm_offsets_are_read_as_out_by_in() -> None:
    gpt2 = tiny_model("gpt2", dtype=torch.float64)
    c_attn = next(m for m in linear_maps(gpt2) if m["map"] == "attn.c_attn")
    ln = gpt2.transformer.h[0].ln_1
    assert torch.equal(map_weight(c_attn), c_attn["module"].weight.T.double() * ln.weight.double()[None, :])
    assert [m["map"] for m in linear_maps(gpt2)[:2]] == ["transformer.wte", "transformer.wpe"]
    gemma = tiny_model("gemma", dtype=torch.float64)
    q = next(m for m in linear_maps(gemma) if m["map"].endswith("q_proj"))
    scale = 1 + gemma.model.layers[0].input_layernorm.weight.double()
    assert torch.equal(map_weight(q), q["module"].weight.double() * scale[None, :])


def test_gemma_keeps_its_embedding_scale_and_qwen3_its_head_norms() -> None:
    gemma = tiny_model("gemma", dtype=torch.float64)
    res = slice_model(gemma, IDS, site_dims(3, 64, dim=40), progress=False)
    embed = res.model.get_input_embeddings()
    assert type(embed) is type(gemma.get_input_embeddings()) and float(embed.embed_scale) == 64**0.5
    qwen3 = tiny_model("qwen3", dtype=torch.float64)
    res = slice_model(qwen3, IDS, site_dims(3, 64, dim=40), progress=False)
    for dense, sliced in zip(qwen3.model.layers, res.model.model.layers):
        assert torch.equal(sliced.self_attn.q_norm.weight, dense.self_attn.q_norm.weight)
        assert torch.equal(sliced.self_attn.k_norm.weight, dense.self_attn.k_norm.weight)


@pytest.mark.parametrize("arch", ["phi", "gpt2"])
def test_flow_session_follows_the_site_list(arch: str) -> None:
    """The flow on a parallel (Phi-2) and a position-embedding LayerNorm model (GPT-2): rows keyed by the
    model's own sites, and the emulated interleaved loss equals the sliced model's."""
    from slicedim_lab.core.nll import next_token_ce
    from slicedim_lab.flow.session import FlowSession

    model = tiny_model(arch, dtype=torch.float64)
    ev = torch.randint(3, 256, (2, 12), generator=torch.Generator().manual_seed(5))
    session = FlowSession(model, IDS, ev)
    rep = session.report(40, "interleaved", attribution=1, svd=True)
    sites = model_sites(model)
    assert set(rep.table["kind"]) == {s.kind for s in sites}
    assert sorted(set(rep.table["site"])) == [s.index for s in sites]
    assert len(rep.dims) == len(sites)
    res = slice_model(model, IDS, session.dims(40), progress=False)
    with torch.no_grad():
        nll = float(next_token_ce(res.model(ev).logits, ev).double().mean())
    assert rep.summary["nll_sliced"] == pytest.approx(nll, rel=1e-6)
    full = session.report(64, "dense", attribution=None, maps=False).table
    kl = full.loc[full["metric"] == "lens_kl", "value"]
    assert len(kl) and float(kl.abs().max()) < 1e-9  # the dense lens against itself (Phi-2: a biased head)
    rel = full.loc[full["metric"] == "rel_error", "value"]
    assert float(rel.abs().max()) < 1e-9  # mean-free comparison: the full-width emulation is the dense model
