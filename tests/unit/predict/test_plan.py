"""The width plan (`predict/plan.py`): its tables are the Fisher-increment charges of any schedule, its
chain solver is exact for the relaxed problem, a plan meets its budget exactly counted and is never predicted
worse than uniform slicing; unreachable budgets are one line; nothing sliced runs."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from tiny_fixtures import tiny64, token_ids

import slicedim_lab.core.slicing as slicing
from slicedim_lab.core.pca import pca
from slicedim_lab.core.sites import model_sites
from slicedim_lab.core.size import count_params, width_cost
from slicedim_lab.errors import UsageError
from slicedim_lab.predict.fisher import fisher_tables
from slicedim_lab.predict.increments import increment_dot
from slicedim_lab.predict.moments import dense_moments
from slicedim_lab.predict.plan import (
    PlanRule,
    _Chain,
    allowed_widths,
    budget_for,
    plan_tables,
    plan_widths,
    sampled_label_grads,
    site_rows,
    uniform_at,
    uniform_dims,
    width_grid,
)

CAL, GRAD = token_ids(4, 16, seed=1), token_ids(2, 16, seed=2)


@pytest.fixture(scope="module")
def llama():
    model = tiny64("llama", tied=True)
    return model, plan_tables(model, CAL, GRAD, progress=False)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gpt_neox"])
def test_tables_charge_the_increments_of_any_schedule(arch: str) -> None:
    """½ Σ_t (g·δ_s)² with δ_s from explicit projectors, neighbouring sites at different widths."""
    model = tiny64(arch)
    t = plan_tables(model, CAL, GRAD, progress=False)
    pcas = [pca(h) for h in dense_moments(model, CAL, cross=False, progress=False).second]
    xs, gs = sampled_label_grads(model, GRAD, torch.Generator().manual_seed(0), torch.float64)
    rng = random.Random(3)
    for _ in range(3):
        dims = [rng.choice(t.grid) for _ in model_sites(model)]
        want = []
        for s, d in enumerate(dims):
            prev = pcas[s - 1].vectors[:, :dims[s - 1]] if s else None
            q = increment_dot(gs[s], xs[s], xs[s - 1] if s else None, pcas[s].vectors[:, :d], prev)
            want.append(0.5 * q.square().sum().item() / t.tokens)
        assert t.site_dloss(dims) == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_uniform_widths_are_the_fisher_predictor(llama) -> None:
    model, t = llama
    f = fisher_tables(model, CAL, grad_ids=GRAD, slice_head=True, progress=False)
    for d in (16, 40, 56):
        assert t.delta_loss([d] * t.n_sites) == pytest.approx(f.delta_loss(d, "fisher"), rel=1e-9)


def test_chain_solver_is_exact(llama) -> None:
    """Viterbi along the sites = brute force over every schedule of min Σ C_s + λ·params."""
    model, t = llama
    cost = width_cost(model)
    chain = _Chain(t.costs(), torch.tensor(t.grid, dtype=torch.float64),
                   torch.tensor(cost.linear, dtype=torch.float64), allowed_widths(t))
    few = [0, 3, 5, 7]  # grid positions 8, 32, 48, 64: 4^7 schedules
    chain = _Chain(chain.costs, chain.grid, chain.linear,
                   torch.zeros_like(chain.allowed).index_fill_(1, torch.tensor(few), True))
    def score(idx, lam: float) -> float:
        return chain.loss(list(idx)) + lam * cost.count([t.grid[i] for i in idx])

    for lam in (1e-7, 1e-6, 1e-5):
        best = min(score(idx, lam) for idx in itertools.product(few, repeat=t.n_sites))
        assert score(chain.solve(lam), lam) == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5])
def test_plan_meets_the_budget_and_beats_uniform(llama, sparsity: float) -> None:
    model, t = llama
    cost = width_cost(model)
    budget = budget_for(cost, count_params(model), sparsity=sparsity)
    plan = plan_widths(t, cost, budget)
    uniform = uniform_dims(t.n_sites, 64, uniform_at(cost, budget))
    assert plan.params == cost.count(plan.dims) <= budget == cost.count(uniform)
    assert all(d % 8 == 0 and 8 <= d <= 64 for d in plan.dims)
    assert plan.dloss <= t.delta_loss(uniform) + 1e-15
    assert plan.dloss == pytest.approx(sum(plan.site_dloss)) == pytest.approx(t.delta_loss(plan.dims))
    rows = site_rows(t, cost, plan, uniform)
    assert [r["dim"] for r in rows] == plan.dims and [r["dim_uniform"] for r in rows] == uniform
    kept = plan_widths(t, cost, budget, PlanRule(min_dim=24, keep_last=True))
    assert kept.dims[-1] == 64 and min(kept.dims) >= 24 and kept.params <= budget


def test_budgets_out_of_reach_are_one_line(llama) -> None:
    model, t = llama
    cost, P = width_cost(model), count_params(model)
    with pytest.raises(UsageError, match="below the smallest schedule"):
        plan_widths(t, cost, cost.count([8] * t.n_sites) - 1)
    for bad in (0.0, 1.2):
        with pytest.raises(UsageError, match="fraction of the dense parameter count"):
            budget_for(cost, P, params=bad)
    with pytest.raises(UsageError, match="sparsity must be in"):
        budget_for(cost, P, sparsity=1.0)
    assert width_grid(64) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert width_grid(60) == [8, 16, 24, 32, 40, 48, 56, 60]


def test_planning_never_slices(monkeypatch) -> None:
    def forbidden(*a, **k):
        raise AssertionError("planning ran slice_model")

    monkeypatch.setattr(slicing, "slice_model", forbidden)
    model = tiny64("gemma3", tied=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = plan_tables(model, CAL, GRAD, progress=False)
    cost = width_cost(model)
    plan = plan_widths(t, cost, budget_for(cost, count_params(model), params=0.9))
    assert plan.params <= 0.9 * count_params(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
