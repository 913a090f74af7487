"""The flow, maps and spectrum explorers over a real `FlowSession` of a tiny float64 model: each control
moves its figures (data differ after the move) and the state the notebooks read is filled."""

from __future__ import annotations

import pytest
import torch

from slicedim_lab import widgets as sw
from slicedim_lab.core.sites import layer_sites
from slicedim_lab.flow.session import FlowSession
from slicedim_lab.testing import tiny_model

L, D = 2, 64


def ids(n: int, seqlen: int, seed: int) -> torch.Tensor:
    return torch.randint(3, 256, (n, seqlen), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def session() -> FlowSession:
    model = tiny_model("llama", dtype=torch.float64, num_hidden_layers=L)
    return FlowSession(model, ids(6, 24, 1), ids(2, 16, 2), batch_size=2)


def data_of(fig) -> list:
    return [(t.name, list(t.x or []), list(t.y or [])) for t in fig.data]


def test_flow_explorer_moves(session) -> None:
    ex = sw.flow_explorer(session, dim=48, layer=1)
    assert set(ex.figures) == {"spectra", "energy", "error", "kl", "attribution"}
    band = ex.figures["energy"].layout.shapes[0]
    own = layer_sites(L)[1].own
    assert (band.x0, band.x1) == (own[0] - 0.5, own[1] + 0.5)
    before = {k: data_of(f) for k, f in ex.figures.items()}
    ex.controls["dim"].value = 32
    assert data_of(ex.figures["error"]) != before["error"] and ex.state["dim"] == 32
    ex.controls["layer"].value = 0
    assert ex.figures["energy"].layout.shapes[0].x0 == layer_sites(L)[0].own[0] - 0.5
    assert set(ex.state["layer_row"]) >= {"rel_error", "cosine"} and ex.calls == 2


def test_maps_explorer_moves(session) -> None:
    ex = sw.maps_explorer(session, dim=48, layer=0)
    bars = data_of(ex.figures["maps"])
    assert bars and all(len(x) for _, x, _ in bars)
    ex.controls["layer"].value = 1
    assert data_of(ex.figures["maps"]) != bars
    ex.controls["map"].value = ex.controls["map"].options[-1][1]
    assert 0 < ex.state["sigma1_ratio"] <= 1 + 1e-9
    t = sw.layer_maps_table(ex.state["maps"], 1, ex.state["weight_kept"])
    assert {"act_kept", "act_dropped", "weight_kept"} <= set(t.columns)


def test_spectrum_explorer_moves(session) -> None:
    ex = sw.spectrum_explorer(session.pcas, dim=48, site=1)
    first = data_of(ex.figures["spectrum"])
    ex.controls["dim"].value = 16
    assert data_of(ex.figures["spectrum"]) != first and len(ex.figures["spectrum"].data[0].x) == 16
    ex.controls["site"].value = 2
    assert ex.state["site"] == 2 and list(ex.figures["energy"].data[1].x) == [2] and ex.calls == 2
