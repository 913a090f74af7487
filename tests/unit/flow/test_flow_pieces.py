"""The small pieces of flow/: tables, text, the lens statistics and the attribution helpers, on synthetic
inputs and a tiny float64 model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from slicedim_lab.core.nll import next_token_ce
from slicedim_lab.core.pca import SitePCA
from slicedim_lab.core.sites import sequential_sites
from slicedim_lab.errors import UsageError
from slicedim_lab.flow.attribution import (
    add_attributions,
    attribution_rows,
    correct_logits,
    decomposition_summary,
    gauss_legendre,
    logit_loss_sums,
)
from slicedim_lab.flow.lens import Head, LensCache, dense_lens, sliced_lens
from slicedim_lab.flow.tables import COLUMNS, per_layer, retained_at, site_row, spectrum_table
from slicedim_lab.flow.text import format_layers
from slicedim_lab.testing import tiny_model

L = 2
S = 2 * L + 1


def pca_of(eigvals: list[float]) -> SitePCA:
    lam = torch.tensor(eigvals, dtype=torch.float64)
    return SitePCA(eigvals=lam, vectors=torch.eye(len(eigvals), dtype=torch.float64))


def test_site_row_and_retained():
    for s in sequential_sites(L):
        assert site_row(s.index) == s.row()
    p = pca_of([3.0, 1.0])
    assert retained_at(p, 1) == pytest.approx(0.75)
    assert retained_at(p, 2) == 1.0 and retained_at(None, 1) == 1.0


def test_spectrum_table_rows():
    spec = spectrum_table([pca_of([3.0, 1.0]), None, pca_of([1.0, 1.0])])
    assert list(spec["site"].unique()) == [0, 2]
    assert spec.groupby("site")["retained"].last().tolist() == pytest.approx([1.0, 1.0])
    assert spec[spec["site"] == 0]["share"].tolist() == pytest.approx([0.75, 0.25])


def synthetic_table() -> pd.DataFrame:
    rows = []
    for s in range(S):
        values = {"rel_error": 0.1 * s, "retained_eval": 1 - 0.01 * s, "attr_loss_direct": 1.0}
        for metric, value in values.items():
            rows.append({"basis": "dense", "dim": 8, **site_row(s), "map": "", "role": "", "metric": metric,
                         "value": value})
    for s, m, v in ((1, "o_proj", 0.9), (2, "down_proj", 0.5), (2, "q_proj", 0.7)):
        rows.append({"basis": "dense", "dim": 8, **site_row(s), "map": m, "role": "writer",
                     "metric": "act_kept", "value": v})
    return pd.DataFrame(rows, columns=COLUMNS)


def test_per_layer_and_text():
    layers = per_layer(synthetic_table())
    assert layers["layer"].tolist() == [-1, 0, 1]
    out = layers.set_index("layer")
    assert out.loc[0, "rel_error"] == pytest.approx(0.2)  # layer 0's output site is its MLP site, 2
    assert out.loc[0, "retained_eval_min"] == pytest.approx(0.98)
    assert out.loc[0, "attr_loss_direct"] == 2.0 and out.loc[-1, "attr_loss_direct"] == 1.0
    assert out.loc[0, "worst_map"] == "down_proj" and out.loc[0, "worst_map_act_kept"] == 0.5
    text = format_layers(layers).splitlines()
    assert text[0].split() == ["layer", "ret_eval", "rel_err", "direct", "least-kept", "map", "kept"]
    assert len(text) == 4 and text[1].split()[0] == "embed" and text[2].split()[0] == "0"
    assert len(text[1].split()) == 4  # embed + 3 metrics: no map rows, empty map cells


def test_gauss_legendre_is_exact_to_degree_2n_minus_1():
    for n in (1, 2, 4):
        nodes = gauss_legendre(n)
        for k in range(2 * n):
            assert sum(w * a**k for a, w in nodes) == pytest.approx(1 / (k + 1))


def test_logit_loss_sums_and_summary():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 7, (2, 5), generator=g)
    zl, zs = logit_loss_sums(logits, ids)
    lp = logits[:, :-1].log_softmax(-1)
    assert float(zs) == pytest.approx(-float(lp.gather(-1, ids[:, 1:, None]).sum()), rel=1e-12)
    assert float(zl) == pytest.approx(float(logits[:, :-1].gather(-1, ids[:, 1:, None]).sum()), rel=1e-12)
    assert torch.equal(correct_logits(logits, ids), logits[:, :-1].gather(-1, ids[:, 1:, None])[..., 0])
    assert float(logit_loss_sums(logits, ids, next_token_ce(logits, ids))[1]) == float(zs)
    assert logit_loss_sums(logits.clone().requires_grad_(True), ids)[1].requires_grad
    part = {f"{k}_{z}": np.arange(S, dtype=float) for k in ("first", "integrated", "direct")
            for z in ("logit", "loss")} | {"z0_logit": 2.0, "z0_loss": 4.0}
    acc = add_attributions(add_attributions({}, part), part)
    assert acc["first_loss"].tolist() == (2 * np.arange(S)).tolist() and acc["z0_loss"] == 8.0
    sm = decomposition_summary(acc, {"logit": 10.0, "loss": 30.0}, tokens=2)
    for z in ("logit", "loss"):
        for k in ("first", "integrated", "direct"):
            total = sm[f"{z}_dense"] + sm[f"{z}_{k}_sum"] + sm[f"{z}_{k}_remainder"]
            assert total == pytest.approx(sm[f"{z}_sliced"])
    rows = attribution_rows(acc, 2, S, "dense", 8)
    assert len(rows) == 6 * S and {r["site"] for r in rows} == set(range(S))


def test_lens_kl_matches_direct_kl():
    model = tiny_model("llama", dtype=torch.float64)
    head = Head(model)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 6, 64, generator=g, dtype=torch.float64)
    xs = x + 0.3 * torch.randn(2, 6, 64, generator=g, dtype=torch.float64)
    ids = torch.randint(3, 256, (2, 6), generator=g)
    U = head.lm_head.weight
    cache = LensCache.cat([dense_lens(head.logits(x[i:i + 1]), U, ids[i:i + 1]) for i in range(2)])
    assert cache.neg_entropy.shape == (2, 5) and cache.expected_u.shape == (2, 5, 64)
    kl, loss = sliced_lens(head, cache.rows(slice(0, 2)), xs, head.logits(xs), ids)
    ld, ls = head.logits(x)[:, :-1].log_softmax(-1), head.logits(xs)[:, :-1].log_softmax(-1)
    assert kl == pytest.approx(float((ld.exp() * (ld - ls)).sum()), rel=1e-9)
    assert loss == pytest.approx(float(next_token_ce(head.logits(xs), ids).sum()), rel=1e-12)
    same, _ = sliced_lens(head, cache, x, head.logits(x), ids)
    assert abs(same) < 1e-9
    assert -float(cache.target_logp.sum()) == pytest.approx(float(next_token_ce(head.logits(x), ids).sum()))


def test_lens_refuses_an_unembedding_bias():
    model = tiny_model("llama", dtype=torch.float64)
    head = Head(model)
    head.lm_head = torch.nn.Linear(64, 256, bias=True).double()
    x = torch.randn(1, 3, 64, dtype=torch.float64)
    ids = torch.randint(3, 256, (1, 3))
    with pytest.raises(UsageError):
        sliced_lens(head, dense_lens(head.logits(x), head.lm_head.weight, ids), x, head.logits(x), ids)
