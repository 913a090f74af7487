"""core/sites.py: the one site numbering, its TransformerLens names and the layer views built from it."""

from __future__ import annotations

import pytest

from slicedim_lab.core.sites import (
    LayerSites,
    Site,
    check_sites,
    layer_of_map,
    layer_sites,
    lens_sites,
    model_sites,
    n_sites,
    sequential_sites,
    site_at,
    site_hooks,
)
from slicedim_lab.errors import UsageError
from slicedim_lab.load.models import TINY_ARCHS, tiny_model


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
    assert model_sites(model) == sequential_sites(3)


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
