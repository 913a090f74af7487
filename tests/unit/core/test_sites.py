"""core/sites.py: the one site numbering, its TransformerLens names and the layer views built from it."""

from __future__ import annotations

import pytest

from slicedim_lab.adapters import adapter_for
from slicedim_lab.core.sites import (
    LayerSites,
    Site,
    check_sites,
    is_parallel,
    layer_of_map,
    layer_sites,
    layers_of,
    lens_sites,
    model_sites,
    n_sites,
    parallel_sites,
    sequential_sites,
    site_at,
    site_hooks,
    sites_for,
)
from slicedim_lab.errors import UsageError
from slicedim_lab.testing import TINY_ARCHS, tiny_model


def test_sequential_numbering_and_names() -> None:
    sites = sequential_sites(2)
    assert len(sites) == n_sites(2) == 5
    assert [(s.index, s.layer, s.kind) for s in sites] == [(0, -1, "embed"), (1, 0, "attn"), (2, 0, "mlp"),
                                                          (3, 1, "attn"), (4, 1, "mlp")]
    assert [s.hook for s in sites] == site_hooks(2) == [
        "blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_mid", "blocks.1.hook_resid_post"]
    assert [s.write_hook for s in sites] == ["hook_embed", "blocks.0.hook_attn_out", "blocks.0.hook_mlp_out",
                                             "blocks.1.hook_attn_out", "blocks.1.hook_mlp_out"]
    assert [s.base_hook for s in sites] == [None, "blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
                                            "blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid"]
    assert [s.label for s in sites[:3]] == ["embed", "L0 attn", "L0 mlp"]
    assert all(site_at(s.index) == s for s in sites)
    row = {"site": 3, "hook": "blocks.1.hook_resid_mid", "layer": 1, "kind": "attn"}
    assert Site(3, 1, "attn").row() == row


def test_layer_views_agree_with_the_site_list() -> None:
    sites = sequential_sites(3)
    for ls in layer_sites(3):
        assert isinstance(ls, LayerSites)
        assert sites[ls.mid].kind == "attn" and sites[ls.out].kind == "mlp"
        assert sites[ls.mid].layer == sites[ls.out].layer == ls.layer
        assert ls.inp == (0 if ls.layer == 0 else layer_sites(3)[ls.layer - 1].out)
        assert ls.own == (ls.mid, ls.out)
    # a reader of a site belongs to the layer that reads it, a writer to the layer that writes it
    for ls in layer_sites(3):
        assert layer_of_map("reader", ls.inp) == layer_of_map("reader", ls.mid) == ls.layer
        assert layer_of_map("writer", ls.mid) == layer_of_map("writer", ls.out) == ls.layer
    assert layer_of_map("writer", 0) == -1 and layer_of_map("reader", n_sites(3) - 1) == 3


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_model_sites_come_from_the_adapter(arch: str) -> None:
    model = tiny_model(arch, num_hidden_layers=3)
    adapter = adapter_for(model)
    sites = model_sites(model)
    assert sites == sites_for(adapter, 3)
    assert len(sites) == n_sites(3, parallel=adapter.parallel)
    if not adapter.parallel and adapter.pos_embed is None and not adapter.post_norms:
        assert sites == sequential_sites(3)
    if adapter.post_norms:  # a block's write is its output norm's output
        writes = ["blocks.0.ln1_post.hook_out", "blocks.0.ln2_post.hook_out"]
        assert [s.write_hook for s in sites[1:3]] == writes
        assert [s.hook for s in sites] == [s.hook for s in sequential_sites(3)]


def test_lens_sites_and_checks() -> None:
    assert lens_sites(3, "post") == [0, 2, 4, 6]
    assert lens_sites(3, "all") == list(range(7)) and lens_sites(3, "none") == []
    assert lens_sites(4, 2) == [0, 4, 8] and lens_sites(4, "3") == [0, 6, 8]
    assert lens_sites(3, [5, 1, 1]) == [1, 5]
    for bad in ("some", 0, [9]):
        with pytest.raises(UsageError):
            lens_sites(3, bad)
    check_sites(7, 3)
    with pytest.raises(UsageError, match="need 7 site widths"):
        check_sites(6, 3)


def test_parallel_numbering_and_names() -> None:
    """Parallel layers: one site per layer (L+1), written by attention and MLP together."""
    sites = parallel_sites(2)
    assert len(sites) == n_sites(2, parallel=True) == 3
    assert [(s.index, s.layer, s.kind) for s in sites] == [(0, -1, "embed"), (1, 0, "block"), (2, 1, "block")]
    assert [s.hook for s in sites] == site_hooks(2, parallel=True) == [
        "blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert [s.write_hook for s in sites] == ["hook_embed", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
    assert [s.attn_hook for s in sites] == [None, "blocks.0.hook_attn_out", "blocks.1.hook_attn_out"]
    assert [s.base_hook for s in sites] == [None, "blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    assert sites[1].label == "L0 block" and all(site_at(s.index, parallel=True) == s for s in sites)
    views = layer_sites(3, parallel=True)
    assert [ls.as_list() for ls in views] == [[0, None, 1], [1, None, 2], [2, None, 3]]
    assert all(ls.parallel and ls.own == (ls.out,) and ls.mlp_inp == ls.inp for ls in views)
    assert layers_of(parallel_sites(3)) == views and layers_of(sequential_sites(3)) == layer_sites(3)
    assert is_parallel(parallel_sites(3)) and not is_parallel(sequential_sites(3))
    for ls in views:
        assert layer_of_map("reader", ls.inp, True) == layer_of_map("writer", ls.out, True) == ls.layer
    assert layer_of_map("reader", 3, True) == 3 and layer_of_map("writer", 0, True) == -1
    assert lens_sites(3, "post", parallel=True) == [0, 1, 2, 3]
    assert lens_sites(4, 2, parallel=True) == [0, 2, 4]
    check_sites(4, 3, parallel=True)
    with pytest.raises(UsageError, match=r"need 4 site widths \(3 parallel layers \+ 1\), got 7"):
        check_sites(7, 3, parallel=True)


def test_position_embeddings_write_site_zero_at_the_block_input() -> None:
    """With learned positions, site 0 is written where token + position embeddings meet (block 0's input)."""
    assert site_at(0, pos_embed=True).write_hook == "blocks.0.hook_resid_pre"
    assert site_at(0).write_hook == "hook_embed"
    assert Site(0, -1, "embed", True).row() == Site(0, -1, "embed").row()
