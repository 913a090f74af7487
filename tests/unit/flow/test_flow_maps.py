"""flow.maps on tiny float64 models: every map's layer comes from `core.sites.layer_of_map`, and the map
decomposition's limits (full width, writer complements, Gram singular values against a direct SVD)."""

from __future__ import annotations

import pytest
import torch

from slicedim_lab.adapters import adapter_for
from slicedim_lab.core.sites import layer_of_map, layer_sites, model_sites
from slicedim_lab.flow.maps import (
    MapDecomposition,
    gram_singular_values,
    linear_maps,
    map_weight,
    rms_normalise,
)
from slicedim_lab.testing import tiny_model

ARCHS = ("llama", "mistral", "qwen2", "phi3")
L, D = 3, 64


def orthonormal(d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_map_carries_its_layer(arch: str):
    model = tiny_model(arch, dtype=torch.float64)
    adapter = adapter_for(model)
    maps = linear_maps(model)
    for m in maps:
        assert m["layer"] == layer_of_map(m["role"], m["site"]), m["map"]
    assert (maps[0]["map"], maps[0]["layer"], maps[0]["site"]) == (adapter.embed, -1, 0)
    last = model_sites(model)[-1].index
    assert (maps[-1]["map"], maps[-1]["layer"], maps[-1]["site"]) == (adapter.lm_head, L, last)
    per_layer = len(adapter.attn_in) + len(adapter.mlp_in) + 2
    for ls in layer_sites(L):
        own = [m for m in maps if m["layer"] == ls.layer]
        assert len(own) == per_layer
        assert {m["site"] for m in own if m["role"] == "reader"} == {ls.inp, ls.mid}
        assert {m["site"] for m in own if m["role"] == "writer"} == set(ls.own)


def test_map_weight_folds_the_reader_scale():
    model = tiny_model("llama", dtype=torch.float64)
    maps = linear_maps(model)
    q = next(m for m in maps if m["map"].endswith("q_proj"))
    assert torch.equal(map_weight(q), q["module"].weight * q["scale"][None, :])
    emb = maps[0]
    assert map_weight(emb).shape == (D, model.config.vocab_size)


def test_rms_normalise_has_unit_rms():
    x = torch.randn(5, D, dtype=torch.float32)
    n = rms_normalise(x, 0.0)
    assert n.dtype == torch.float64
    assert torch.allclose(n.pow(2).mean(-1), torch.ones(5, dtype=torch.float64))


def test_gram_singular_values_match_svd():
    W = torch.randn(40, D, dtype=torch.float64)
    B = orthonormal(24)
    assert torch.allclose(gram_singular_values(W.T @ W, 40), torch.linalg.svdvals(W), rtol=1e-8)
    assert torch.allclose(gram_singular_values(B.T @ W.T @ W @ B, 24), torch.linalg.svdvals(W @ B), rtol=1e-8)


def test_map_decomposition_limits():
    model = tiny_model("llama", dtype=torch.float64)
    maps = linear_maps(model)
    S = len(model_sites(model))
    g = torch.Generator().manual_seed(1)
    sites = [torch.randn(2, 5, D, generator=g, dtype=torch.float64) for _ in range(S)]
    writes = [torch.randn(2, 5, D, generator=g, dtype=torch.float64) for _ in range(S)]
    dec = MapDecomposition(maps, D, 1e-5, torch.float64)
    full = dec.stats([torch.eye(D, dtype=torch.float64)] * S, sites, writes)
    assert all(v == (1.0, 0.0) for v in full.values()) and len(full) == len(maps)
    cut = dec.stats([orthonormal(16, s) for s in range(S)], sites, writes)
    for k, m in enumerate(maps):
        kept, dropped = cut[k]
        assert 0 <= kept <= 1 and 0 <= dropped <= 1
        if m["role"] == "writer":
            assert kept + dropped == pytest.approx(1)
    k = next(k for k, m in enumerate(maps) if m["map"] == "mlp.down_proj")
    B = orthonormal(16, 7)
    f, s = dec.singular(k, B)
    W = map_weight(maps[k])
    assert torch.allclose(f, torch.linalg.svdvals(W), rtol=1e-8)
    assert torch.allclose(s, torch.linalg.svdvals(B.T @ W), rtol=1e-7)
    rows, sv = dec.rows([B] * S, sites, writes, "dense", 16, svd=True)
    assert {r["metric"] for r in rows} == {"act_kept", "act_dropped", "weight_kept", "sigma1_ratio"}
    assert len(sv) == sum(min(map_weight(m).shape) for m in maps)
