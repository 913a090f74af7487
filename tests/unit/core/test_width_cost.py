"""`core.size.width_cost`: the exact parameter count of a schedule, before the model is sliced — equal to
`count_params` of the model `slice_model` builds and of the skeleton an export loads into, on every tiny
family, tied and untied head, per-site widths."""

from __future__ import annotations

import random

import pytest
import torch
from tiny_fixtures import token_ids

from slicedim_lab.adapters import adapter_for
from slicedim_lab.core.export import sliced_config
from slicedim_lab.core.modeling_sliced import SlicedForCausalLM
from slicedim_lab.core.sites import model_sites
from slicedim_lab.core.size import count_params, param_breakdown, width_cost
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.testing import TINY_ARCHS, tiny_model


def _schedule(model, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.choice([8, 16, 24, 40, 56, 64]) for _ in model_sites(model)]


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_cost_equals_the_sliced_models_count(arch: str) -> None:
    model = tiny_model(arch, tie_word_embeddings=True)
    dims = _schedule(model, 1)
    sliced = slice_model(model, token_ids(2, 16), dims, progress=False).model
    assert width_cost(model).count(dims) == count_params(sliced) == param_breakdown(sliced)["total"]


@pytest.mark.parametrize("untie", [False, True])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_cost_equals_the_export_skeletons_count(arch: str, tied: bool, untie: bool) -> None:
    """The skeleton an export loads into (`SlicedForCausalLM` from the sliced config, on the meta device)."""
    model = tiny_model(arch, tie_word_embeddings=tied)
    dims = _schedule(model, 2)
    a, keep = adapter_for(model), tied and not untie
    cfg = sliced_config(model, a, dims, keep, {}, keep or a.full_width_io)
    with torch.device("meta"):
        skeleton = SlicedForCausalLM(cfg)
    assert width_cost(model, untie_head=untie).count(dims) == count_params(skeleton)


def test_cost_is_a_chain_and_its_marginal_is_one_more_direction() -> None:
    model = tiny_model("gemma3", tie_word_embeddings=True)
    cost = width_cost(model)
    S = len(model_sites(model))
    assert cost.pairs == [(s, s + 1) for s in range(S - 1)]
    dims = [24, 40, 16, 64, 32, 48, 56]
    for s in range(S):
        wider = dims[:s] + [dims[s] + 1] + dims[s + 1:]
        assert cost.marginal(dims, s) == cost.count(wider) - cost.count(dims)
    # Gemma 3's post-norms: each block output gets a D x d_s map after its (weightless) output norm
    assert any(k.startswith("post-norm map") and v == 64 for k, v in cost.terms[1].items())


def test_tied_head_maps_are_in_the_cost() -> None:
    model = tiny_model("llama", tie_word_embeddings=True)
    cost = width_cost(model)
    assert cost.terms[0]["input map (D x d_0)"] == 64 and cost.terms[-1]["output map (d_L x D)"] == 64
    untied = width_cost(tiny_model("llama", tie_word_embeddings=False))
    assert untied.terms[0]["token table rows"] == 256 and untied.terms[-1]["LM head"] == 256
    with pytest.raises(ValueError):
        cost.count([8] * 3)
