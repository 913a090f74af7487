"""Predictors: the paper's arithmetic, the exact d'-independent Fisher tables, and that predicting never runs
a sliced or projected model."""

from __future__ import annotations

import math

import pytest
import torch

import slicedim_lab.predict.fisher as P
from slicedim_lab.errors import UsageError
from slicedim_lab.predict import predict, predict_point
from slicedim_lab.predict.fisher import fisher_tables
from slicedim_lab.predict.increments import increment, increment_dot
from slicedim_lab.predict.paper import paper_acc, paper_ppl
from slicedim_lab.predict.registry import DenseMetrics, coupled_acc
from slicedim_lab.testing import tiny_model


def test_paper_arithmetic() -> None:
    assert paper_ppl(13.38, 576, 288) == pytest.approx(13.38**2)
    assert paper_ppl(10.0, 576, 576) == pytest.approx(10.0)
    assert paper_ppl(math.e, 100, 80) == pytest.approx(math.exp(1.25))
    assert paper_acc(0.5, 576, 288) == pytest.approx(0.25)
    assert paper_acc(0.8, 100, 100) == pytest.approx(0.8)
    assert paper_acc(0.81, 100, 50) == pytest.approx(0.6561)
    # the coupling: acc_0^(ln PPL / ln PPL_0) reproduces the paper's accuracy when fed the paper's PPL
    assert coupled_acc(0.476, 13.38, paper_ppl(13.38, 576, 432)) == pytest.approx(paper_acc(0.476, 576, 432))
    assert coupled_acc(0.5, 10.0, 10.0) == pytest.approx(0.5)


def test_predict_rows_without_tables() -> None:
    dense = DenseMetrics(ppl=13.38, acc=0.476, hidden=576, mc_acc=0.8)
    rows = predict(dense, [576, 432, 288])
    assert [r["dim"] for r in rows] == [576, 432, 288]
    assert rows[0]["ppl_pred_paper"] == pytest.approx(13.38)
    assert rows[2]["sparsity"] == pytest.approx(0.5)
    assert rows[2]["mc_acc_pred_paper"] == pytest.approx(0.64)
    assert "ppl_pred_fisher" not in rows[0]
    with pytest.raises(UsageError):
        predict_point(dense, 0)


def test_site_tables_match_explicit_projectors() -> None:
    """g·δ_s(d) from the suffix-sum identity equals g·`increment`, δ_s = −(I−P_s)(x_s − (I−P_{s−1})x_{s−1}),
    as does `increment_dot` (the same product without forming δ_s)."""
    g = torch.Generator().manual_seed(0)
    n, D, S = 7, 12, 4
    xs = [torch.randn(n, D, generator=g, dtype=torch.float64) for _ in range(S)]
    gs = [torch.randn(n, D, generator=g, dtype=torch.float64) for _ in range(S)]
    vecs = [torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0] for _ in range(S)]
    tri = [None] + [(torch.triu(vecs[s].T @ vecs[s - 1]), torch.tril(vecs[s].T @ vecs[s - 1], -1))
                    for s in range(1, S)]
    diag, Q = P._site_tables(xs, gs, vecs, tri, S)
    for d in range(D + 1):
        total = torch.zeros(n, dtype=torch.float64)
        for s in range(S):
            here, prev = vecs[s][:, :d], vecs[s - 1][:, :d] if s else None
            q = (gs[s] * increment(xs[s], xs[s - 1] if s else None, here, prev)).sum(1)
            torch.testing.assert_close(increment_dot(gs[s], xs[s], xs[s - 1] if s else None, here, prev), q)
            assert diag[s, d].item() == pytest.approx(q.square().sum().item(), rel=1e-9, abs=1e-12)
            total += q
        torch.testing.assert_close(Q[:, d], total)


def test_fisher_tables_on_tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables that fisher_tables accumulates are those of the explicit formula on its own activations and
    gradients; ΔL(D) = 0; the last site (full width) is not charged."""
    model = tiny_model("llama", seed=0, dtype=torch.float64)
    cal = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(3))
    seen = []
    orig = P._site_tables

    def spy(xs, gs, vecs, tri, charged):
        seen.append(([x.double() for x in xs], [g.double() for g in gs], [v.double() for v in vecs], charged))
        return orig(xs, gs, vecs, tri, charged)

    monkeypatch.setattr(P, "_site_tables", spy)
    t = fisher_tables(model, cal, grad_windows=2, batch_size=1, progress=False)
    assert len(seen) == 2 and t.tokens == 2 * 15
    assert t.settings["grad_windows"] == 2
    n_s = 2 * 3 + 1
    assert seen[0][3] == n_s - 1
    assert t.diag[-1].abs().max() == 0
    for kind in P.FISHER_KINDS:
        assert t.delta_loss(64, kind) == pytest.approx(0.0, abs=1e-12)
        assert t.delta_loss(16, kind) > 0
    d = 40
    diag_total, full_total = 0.0, 0.0
    for xs, gs, vecs, charged in seen:
        qsum = torch.zeros(xs[0].shape[0], dtype=torch.float64)
        for s in range(charged):
            proj = vecs[s][:, :d].double() @ vecs[s][:, :d].double().T
            prev = torch.zeros_like(xs[s]) if s == 0 else xs[s - 1] - xs[s - 1] @ (
                vecs[s - 1][:, :d].double() @ vecs[s - 1][:, :d].double().T)
            u = xs[s].double() - prev.double()
            q = (gs[s].double() * -(u - u @ proj)).sum(1)
            diag_total += q.square().sum().item()
            qsum += q
        full_total += qsum.sum().item() ** 2
    assert t.delta_loss(d, "fisher") == pytest.approx(0.5 * diag_total / t.tokens, rel=1e-4)
    assert t.delta_loss(d, "fisher_full") == pytest.approx(0.5 * full_total / t.tokens, rel=1e-4)
    assert t.energy.shape == (n_s, 65) and t.energy[:, -1].allclose(torch.ones(n_s, dtype=torch.float64))
    dense = DenseMetrics(ppl=50.0, acc=0.2, hidden=64)
    row = predict_point(dense, d, {"fisher": t})
    assert row["ppl_pred_fisher"] == pytest.approx(50.0 * math.exp(t.delta_loss(d)))
    assert row["acc_pred_fisher"] == pytest.approx(coupled_acc(0.2, 50.0, row["ppl_pred_fisher"]))
    with pytest.raises(UsageError):
        t.delta_loss(65)


def test_tables_roundtrip(tmp_path) -> None:
    model = tiny_model("llama", seed=1)
    cal = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    t = fisher_tables(model, cal, progress=False)
    t.save(tmp_path / "f.pt")
    u = P.FisherTables.load(tmp_path / "f.pt")
    assert u.delta_loss(30) == t.delta_loss(30) and u.tokens == t.tokens and u.settings == t.settings


def test_predict_never_runs_a_sliced_or_projected_model(monkeypatch: pytest.MonkeyPatch, smol_tok) -> None:
    """predict_only: no slicing, no projection, no sliced forward; the only model that sees the eval windows
    is the unmodified dense model, and its weights are untouched."""
    import slicedim_lab.core.replay as replay
    import slicedim_lab.core.slicing as slicing
    import slicedim_lab.sweep.runner as sweep
    from slicedim_lab.core.modeling_sliced import SlicedForCausalLM
    from slicedim_lab.load.corpus import load_windows
    from slicedim_lab.load.models import LoadedModel

    def forbidden(*a, **k):
        raise AssertionError("a sliced or projected model was run during predict")

    monkeypatch.setattr(slicing, "slice_model", forbidden)  # the one seam: the package slices only through it
    monkeypatch.setattr(SlicedForCausalLM, "forward", forbidden)
    monkeypatch.setattr(replay.ProjectedModel, "__init__", forbidden)
    monkeypatch.setattr(replay.ProjectedModel, "forward", forbidden)
    model = tiny_model("llama", seed=0, vocab_size=len(smol_tok), tie_word_embeddings=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].clone()), with_kwargs=True)
    lm = LoadedModel(model, smol_tok, "tiny", torch.device("cpu"))
    cfg = sweep.SweepConfig(model="tiny", cal_samples=2, cal_seqlen=32, eval_seqlen=32, max_eval_windows=2,
                            tasks=["corpus-mc"], mc_items=4, mc_context=8, mc_cont=4)
    res = sweep.predict_only(cfg, sparsities=[0.25, 0.5], lm=lm, progress=False)
    assert [r["dim"] for r in res["predictions"]] == [48, 32]
    assert all(r["ppl_pred_fisher"] > 0 and r["mc_acc_pred_paper"] >= 0 for r in res["predictions"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    ev = load_windows(smol_tok, "python-docs", "eval", 32, 2)
    assert any(torch.equal(s, ev) for s in seen)  # the dense eval is the only eval-window pass


def test_semi_interleaved_tables_match_explicit_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """fisher_semi: bases from the moment formula equal the PCA of the explicit u_s, and the sums match."""
    from slicedim_lab.core.pca import pca

    model = tiny_model("llama", seed=2, dtype=torch.float64)
    cal = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(4))
    seen = []
    orig = P._site_tables
    monkeypatch.setattr(P, "_site_tables", lambda xs, gs, *a: seen.append((xs, gs)) or orig(xs, gs, *a))
    t = fisher_tables(model, cal, batch_size=3, semi_dims=[40, 64, 24], progress=False)
    assert t.semi_dims == [24, 40] and t.has(40, "fisher_semi") and not t.has(32, "fisher_semi")
    xs, gs = seen[0]
    d, charged = 40, 6
    bases, proj = [], None
    for s in range(charged):
        u = xs[0] if s == 0 else xs[s] - (xs[s - 1] - xs[s - 1] @ proj)
        b = pca(u.T @ u).vectors[:, :d]
        bases.append(b)
        proj = b @ b.T
    qs = []
    for s in range(charged):
        u = xs[0] if s == 0 else xs[s] - (xs[s - 1] - xs[s - 1] @ bases[s - 1] @ bases[s - 1].T)
        qs.append((gs[s] * -(u - u @ bases[s] @ bases[s].T)).sum(1))
    diag = sum(q.square().sum().item() for q in qs)
    cross = torch.stack(qs).sum(0).square().sum().item()
    assert t.delta_loss(d, "fisher_semi") == pytest.approx(0.5 * diag / t.tokens, rel=1e-6)
    assert t.delta_loss(d, "fisher_semi_cross") == pytest.approx(0.5 * cross / t.tokens, rel=1e-6)
    geo = 0.5 * math.sqrt(diag * cross) / t.tokens
    assert t.delta_loss(d, "fisher_semi_geo") == pytest.approx(geo, rel=1e-6)
    assert t.delta_loss(64, "fisher_semi") == 0.0
    with pytest.raises(UsageError):
        t.delta_loss(32, "fisher_semi")
    row = predict_point(DenseMetrics(ppl=50.0, acc=0.2, hidden=64), 40, {"fisher": t})
    assert row["ppl_pred_fisher_semi"] == pytest.approx(50.0 * math.exp(t.delta_loss(40, "fisher_semi")))
    assert "ppl_pred_fisher_semi" not in predict_point(DenseMetrics(ppl=50.0, acc=0.2, hidden=64), 32,
                                                       {"fisher": t})
