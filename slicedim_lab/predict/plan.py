"""Per-site widths planned from the dense model: which width each residual site keeps for a parameter budget.

The cost of a schedule d = (d_0 … d_{S−1}) is the `fisher` statistic evaluated at that schedule (PAPER.md, and
`predict/fisher.py` at one width): each site is charged for the perturbation it newly adds,

    δ_s = −(I − P_s)(x_s − (I − P_{s−1}) x_{s−1}),   P_s the top-d_s dense PCA projector of site s,
    ΔL(d) = Σ_s C_s(d_{s−1}, d_s),   C_s = ½ mean_t (g_{s,t}·δ_{s,t})²,   PPL = PPL_0 · exp(ΔL),

with g the gradient of the loss with labels sampled from the model's own softmax (Gauss-Newton), on
calibration windows the PCA did not see. A site's charge depends on its own width and its upstream
neighbour's only, so one pass tabulates C_s on the whole grid of width pairs (`PlanTables.pair`).

Its parameter count is exact and also a chain (`core.size.WidthCost`: readers, writers, the shortcut matrices
d_{s−1} x d_s between neighbouring sites, the tied head's maps, post-norm maps). The plan minimises ΔL(d)
subject to params(d) ≤ budget (`plan_widths`): a Lagrangian relaxation, min ΔL + λ·params solved exactly
by dynamic programming along the site chain (Viterbi over the width grid), λ bisected to the budget, then
the budget left over spent greedily (the width step with the best loss decrease per parameter, repeated).
Nothing sliced or projected runs: the tables come from dense forward/backward passes only.

In site s's eigenbasis V_s (c = V_sᵀg, p = V_sᵀx_s, z = V_{s−1}ᵀx_{s−1}, M = V_sᵀV_{s−1}), keeping the first
a coordinates of site s and the first b of site s−1:
    g·δ_s(b, a) = −Σ_{k≥a} c_k p_k + Σ_{k≥a} Σ_{j≥b} c_k M_kj z_j,
a suffix sum and a two-dimensional suffix sum over blocks of `step` coordinates (`_pair_squares`).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..adapters import adapter_for
from ..core.nll import next_token_ce
from ..core.pca import SitePCA, pca
from ..core.replay import run_sites
from ..core.sites import model_sites
from ..core.size import WidthCost
from ..core.widths import dim_for_sparsity
from ..errors import UsageError
from ..files import atomic_file
from .moments import BATCH_SIZE, DenseMoments, dense_moments

STEP = 8  # widths are multiples of this (SliceGPT's rounding)
TOKEN_CHUNK = 64  # tokens per block-sum product (bounds the memory of `_pair_squares`; cache-sized)


# ----------------------------------------------------------------------------- the tables


@dataclass
class PlanTables:
    """C_s on the width grid: `pair[s, i, j]` = Σ_tokens (g_s·δ_s)² with site s−1 at `grid[i]` and site s at
    `grid[j]` (site 0 has no upstream neighbour: its rows are all equal); `tokens` the predicted tokens they
    sum over; `energy[s, j]` the energy site s's dense PCA retains at `grid[j]`."""

    hidden: int
    grid: list[int]
    pair: Float[Tensor, "sites g g"]
    tokens: int
    energy: Float[Tensor, "sites g"]
    cal_nll: float
    labels: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def n_sites(self) -> int:
        return self.pair.shape[0]

    def index(self, dims: list[int]) -> list[int]:
        """Grid positions of a schedule's widths (a width off the grid is a UsageError)."""
        pos = {d: i for i, d in enumerate(self.grid)}
        bad = [d for d in dims if d not in pos]
        if bad:
            step = self.settings["step"]
            raise UsageError(f"width {bad[0]} is not on the plan's grid (multiples of {step} up to "
                             f"{self.hidden})")
        return [pos[d] for d in dims]

    def site_dloss(self, dims: list[int]) -> list[float]:
        """The loss increase (nats) each site is charged at schedule `dims`: ½ Σ_t (g_s·δ_s)² / T."""
        idx = self.index(dims)
        return [0.5 * self.pair[s, idx[s - 1] if s else 0, idx[s]].item() / self.tokens
                for s in range(self.n_sites)]

    def delta_loss(self, dims: list[int]) -> float:
        """ΔL(d) = Σ_s C_s(d_{s−1}, d_s), the predicted increase of the mean next-token loss (nats)."""
        return sum(self.site_dloss(dims))

    def costs(self) -> Float[Tensor, "sites g g"]:
        """C_s in nats on the grid (float64)."""
        return 0.5 * self.pair / self.tokens

    def save(self, path: str | Path) -> None:
        with atomic_file(path, "wb") as f:
            torch.save(asdict(self), f)

    @classmethod
    def load(cls, path: str | Path) -> PlanTables:
        return cls(**torch.load(path, weights_only=False))


def windows_digest(*windows: Tensor) -> str:
    """A short hash of token windows: which calibration and gradient windows a set of tables was made on."""
    h = hashlib.sha256()
    for w in windows:
        h.update(str(tuple(w.shape)).encode())
        h.update(w.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def width_grid(hidden: int, step: int = STEP) -> list[int]:
    """The widths a plan chooses from: multiples of `step` up to D, and D."""
    return sorted({*range(step, hidden, step), hidden})


def _dropped_sums(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Blocks in reversed order (the last first) along each of `dims` → the sum over the blocks each width
    drops, widths in reversed grid order (D, D − step, …, step): a zero, then the running sums."""
    for d in dims:
        x = torch.cat([torch.zeros_like(x.narrow(d, 0, 1)), x.cumsum(d).narrow(d, 0, x.shape[d] - 1)], d)
    return x


def _blocks(x: Float[Tensor, "n d"], step: int) -> Float[Tensor, "n nb step"]:
    """Coordinates in blocks of `step` (zero-padded to a whole block), the LAST block first."""
    return rearrange(F.pad(x, (0, -x.shape[-1] % step)), "n (b i) -> n b i", i=step).flip(1)


def _pair_squares(c: Float[Tensor, "n d"], p: Float[Tensor, "n d"], z: Float[Tensor, "n d"] | None,
                  m: Float[Tensor, "d d"] | None, step: int) -> Float[Tensor, "g g"]:
    """Σ_tokens (g·δ_s)² for every (upstream, own) width pair of the grid (`width_grid`): [b, a] with the
    upstream site keeping grid[b] and this one grid[a]. Tokens go in chunks of `TOKEN_CHUNK`."""
    cb = _blocks(c, step)
    own = _dropped_sums((cb * _blocks(p, step)).sum(-1).double(), (1,))  # [t, a]: Σ_{k≥a} c_k p_k
    if z is None:
        return own.square().sum(0).flip(0)[None, :].expand(own.shape[1], -1).clone()
    pad = -m.shape[0] % step
    mb = rearrange(F.pad(m, (0, pad, 0, pad)), "(K i) (J j) -> K i J j", i=step, j=step).flip(0, 2)
    zb = _blocks(z, step)
    out = torch.zeros(own.shape[1], own.shape[1], dtype=torch.float64)
    for lo in range(0, c.shape[0], TOKEN_CHUNK):
        y = torch.einsum("KiJj,tJj->tKiJ", mb, zb[lo:lo + TOKEN_CHUNK])  # Σ_{j in block J} M_kj z_j
        w = torch.einsum("tKi,tKiJ->tKJ", cb[lo:lo + TOKEN_CHUNK], y).double()  # Σ_{k in K, j in J}
        q = _dropped_sums(w, (1, 2)) - own[lo:lo + TOKEN_CHUNK, :, None]  # [t, a, b]: −g·δ_s
        out += torch.einsum("tab,tab->ba", q, q)
    return out.flip(0, 1)


def sampled_label_grads(model: nn.Module, ids: Int[Tensor, "b pos"], gen: torch.Generator,
                        work: torch.dtype) -> tuple[list[Tensor], list[Tensor]]:
    """Dense residuals x_s and gradients g_s = ∂ℓ/∂x_s of the loss with labels sampled from the model's own
    softmax (seeded), every site, flattened to (tokens, D) on the CPU in `work` precision."""
    sites, logits = run_sites(model, ids, adapter_for(model), keep_grad=True)
    b, _ = ids.shape
    with torch.no_grad():
        probs = rearrange(logits[:, :-1].float().softmax(-1), "b p v -> (b p) v").cpu().double()
        labels = rearrange(torch.multinomial(probs, 1, generator=gen)[:, 0], "(b p) -> b p", b=b)
    next_token_ce(logits, ids, targets=labels).sum().backward()
    D = sites[0].shape[-1]
    xs = [rearrange(x.detach().to(work).cpu(), "b p d -> (b p) d") for x in sites]
    gs = [rearrange(x.grad.to(work).cpu(), "b p d -> (b p) d") if x.grad is not None
          else torch.zeros(xs[0].shape[0], D, dtype=work) for x in sites]
    return xs, gs


def plan_tables(
    model: nn.Module,
    cal_ids: Int[Tensor, "n pos"],
    grad_ids: Int[Tensor, "m pos"],
    *,
    step: int = STEP,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    moments: DenseMoments | None = None,
    pcas: list[SitePCA] | None = None,
    progress: bool = True,
) -> PlanTables:
    """The plan's dense-only tables: the dense PCA of every site on `cal_ids` (or `pcas`), then one
    forward+backward per batch of `grad_ids` (windows the PCA did not see) with sampled labels, reduced at
    once into Σ_t (g_s·δ_s)² for every site and width pair of the grid."""
    t0 = time.perf_counter()
    dm = moments or dense_moments(model, cal_ids, batch_size, cross=False, logits=False, progress=progress)
    pcas = pcas if pcas is not None else [pca(h) for h in dm.second]
    D = model.config.hidden_size
    grid = width_grid(D, step)
    work = torch.float64 if next(model.parameters()).dtype == torch.float64 else torch.float32
    vecs = [p.vectors.to(work) for p in pcas]
    overlaps = [None] + [vecs[s].T @ vecs[s - 1] for s in range(1, len(vecs))]
    pair = torch.zeros(len(vecs), len(grid), len(grid), dtype=torch.float64)
    gen, tokens, dev = torch.Generator().manual_seed(seed), 0, next(model.parameters()).device
    timing = {"dense_pass": time.perf_counter() - t0, "gradients": 0.0, "tables": 0.0}
    for ids in tqdm(torch.split(grad_ids, batch_size), desc="plan tables", disable=not progress):
        tic = time.perf_counter()
        xs, gs = sampled_label_grads(model, ids.to(dev), gen, work)
        timing["gradients"] += time.perf_counter() - tic
        tic = time.perf_counter()
        with torch.no_grad():
            z = None
            for s, v in enumerate(vecs):
                p, c = xs[s] @ v, gs[s] @ v
                pair[s] += _pair_squares(c, p, z, overlaps[s], step)
                z = p
        timing["tables"] += time.perf_counter() - tic
        tokens += ids.shape[0] * (ids.shape[1] - 1)
    energy = torch.stack([torch.cat([torch.zeros(1, dtype=torch.float64), p.retained_energy().double()])
                          [grid] for p in pcas])
    settings = {"step": step, "seed": seed, "cal_windows": int(cal_ids.shape[0]),
                "grad_windows": int(grad_ids.shape[0]), "windows": windows_digest(cal_ids, grad_ids),
                "statistic": "fisher increments, dense bases", "timing_s": timing}
    return PlanTables(hidden=D, grid=grid, pair=pair, tokens=tokens, energy=energy,
                      cal_nll=dm.cal_nll if not math.isnan(dm.nll_sum) else float("nan"),
                      labels=[s.label for s in model_sites(model)], settings=settings,
                      seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------- the rule and the solver


@dataclass(frozen=True)
class PlanRule:
    """The allocation rule's settings: the smallest width a site may keep (`min_dim`), and whether the last
    site (the head's input) keeps the full width as uniform slicing does (`keep_last`)."""

    min_dim: int = STEP
    keep_last: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


RULE = PlanRule()  # plan v1, frozen before any held-out corpus was planned: experiments/results/plan_v1.md
SOLVER = "Lagrangian relaxation, exact Viterbi along the site chain, multiplier bisected; greedy fill"


@dataclass
class Plan:
    """A planned schedule: one width per site, its exact parameter count, the budget it was planned for, the
    predicted loss increase (nats) in total and per site, and the Lagrange multiplier (nats per parameter)
    of the relaxed problem whose solution it started from."""

    dims: list[int]
    params: int
    budget: int
    dloss: float
    site_dloss: list[float]
    multiplier: float
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Chain:
    """The planning problem on the grid: costs C_s[i, j] (nats), each site's allowed grid positions, and the
    exact parameter cost: linear[s]·grid[j] + grid[i]·grid[j] (the shortcut between sites s−1 and s)."""

    costs: Tensor  # sites g g, float64
    grid: Tensor  # g, float64
    linear: Tensor  # sites, float64
    allowed: Tensor  # sites g, bool

    def solve(self, lam: float) -> list[int]:
        """min Σ_s C_s + λ·params over allowed grid positions, exactly (Viterbi along the chain)."""
        inf = torch.tensor(float("inf"), dtype=torch.float64)
        own = self.linear[:, None] * self.grid[None, :] * lam
        shortcut = torch.outer(self.grid, self.grid) * lam
        value = torch.where(self.allowed[0], self.costs[0, 0] + own[0], inf)
        back = []
        for s in range(1, self.costs.shape[0]):
            total = value[:, None] + self.costs[s] + shortcut
            best, arg = total.min(0)
            value = torch.where(self.allowed[s], best + own[s], inf)
            back.append(arg)
        idx = [int(value.argmin())]
        for arg in reversed(back):
            idx.append(int(arg[idx[-1]]))
        return idx[::-1]

    def loss(self, idx: list[int]) -> float:
        return sum(self.costs[s, idx[s - 1] if s else 0, idx[s]].item() for s in range(len(idx)))


def _fill(chain: _Chain, cost: WidthCost, idx: list[int], budget: int) -> list[int]:
    """Spend what the budget leaves: repeatedly widen the one site (by one grid step) with the largest loss
    decrease per parameter that still fits, until none does."""
    grid = [int(g) for g in chain.grid]
    idx = list(idx)
    while True:
        dims = [grid[i] for i in idx]
        left = budget - cost.count(dims)
        base = chain.loss(idx)
        best, pick = 0.0, None
        for s, i in enumerate(idx):
            nxt = next((j for j in range(i + 1, len(grid)) if chain.allowed[s, j]), None)
            if nxt is None:
                continue
            trial = idx[:s] + [nxt] + idx[s + 1:]
            extra = cost.count([grid[j] for j in trial]) - cost.count(dims)
            gain = base - chain.loss(trial)
            if extra <= left and gain > 0 and gain / max(extra, 1) > best:
                best, pick = gain / max(extra, 1), trial
        if pick is None:
            return idx
        idx = pick


def allowed_widths(tables: PlanTables, *, min_dim: int = STEP, keep_last: bool = False) -> Tensor:
    """Which grid widths each site may take: at least `min_dim`; the last site (the head's input) only D
    when `keep_last` (as uniform slicing keeps it)."""
    grid = torch.tensor(tables.grid)
    ok = (grid >= min_dim)[None, :].repeat(tables.n_sites, 1)
    if keep_last:
        ok[-1] = grid == tables.hidden
    return ok


def plan_widths(tables: PlanTables, cost: WidthCost, budget: int, rule: PlanRule = RULE, *,
                iterations: int = 64) -> Plan:
    """The schedule with the least predicted ΔL whose exact parameter count is at most `budget`: Lagrangian
    relaxation solved by `_Chain.solve`, the multiplier bisected (in log space) to the smallest that meets
    the budget, then `_fill`; uniform slicing within the budget (filled the same way) is the other
    candidate, so the plan is never predicted worse than it. An unreachable budget (below the smallest
    allowed widths) is a UsageError."""
    if cost.hidden != tables.hidden or len(cost.linear) != tables.n_sites:
        raise UsageError(f"the plan tables are for {tables.n_sites} sites of width {tables.hidden}, the "
                         f"model has {len(cost.linear)} of width {cost.hidden}")
    if any(t - s != 1 for s, t in cost.pairs):
        raise UsageError("planning needs shortcut matrices between neighbouring sites only")
    allowed = allowed_widths(tables, min_dim=rule.min_dim, keep_last=rule.keep_last)
    chain = _Chain(tables.costs(), torch.tensor(tables.grid, dtype=torch.float64),
                   torch.tensor(cost.linear, dtype=torch.float64), allowed)
    grid = tables.grid
    smallest = [int(torch.nonzero(a)[0]) for a in allowed]
    floor = cost.count([grid[i] for i in smallest])
    if budget < floor:
        raise UsageError(f"a budget of {budget:,} parameters is below the smallest schedule "
                         f"({floor:,} parameters: every site at its minimum width)")
    count = lambda idx: cost.count([grid[i] for i in idx])  # noqa: E731
    lo, hi = -40.0, 0.0  # log10 λ: at 1 nat per parameter every site takes its minimum width
    best = chain.solve(10.0 ** hi)
    if count(best) > budget:
        best = smallest
    for _ in range(iterations):
        mid = (lo + hi) / 2
        idx = chain.solve(10.0 ** mid)
        if count(idx) <= budget:
            hi, best = mid, idx
        else:
            lo = mid
    starts = [best]
    d_u = uniform_at(cost, budget)
    if d_u is not None and rule.min_dim <= d_u:  # uniform slicing at (at most) the same count is a candidate
        starts.append(tables.index(uniform_dims(len(cost.linear), cost.hidden, d_u)))
    idx = min((_fill(chain, cost, i, budget) for i in starts), key=chain.loss)
    dims = [grid[i] for i in idx]
    site = tables.site_dloss(dims)
    return Plan(dims=dims, params=cost.count(dims), budget=int(budget), dloss=sum(site), site_dloss=site,
                multiplier=10.0 ** hi, settings={**rule.to_dict(), "solver": SOLVER})


# ----------------------------------------------------------------------------- budgets


def uniform_dims(n_sites: int, hidden: int, dim: int) -> list[int]:
    """Uniform slicing's schedule: `dim` at every site, the last (the head's input) full width."""
    return [dim] * (n_sites - 1) + [hidden]


def budget_for(cost: WidthCost, dense_params: int, *, params: float | None = None,
               sparsity: float | None = None, round_interval: int = STEP) -> int:
    """The parameter budget: `params` × the dense count, or (`sparsity`) what uniform slicing at s keeps.
    Above the dense count is a UsageError."""
    if (params is None) == (sparsity is None):
        raise UsageError("give exactly one of --params or --sparsity")
    if params is not None:
        if not 0 < params <= 1:
            raise UsageError(f"--params is a fraction of the dense parameter count in (0, 1], got {params} "
                             "(above 1 is more than the dense model has)")
        return int(params * dense_params)
    d = dim_for_sparsity(sparsity, cost.hidden, round_interval)
    return cost.count(uniform_dims(len(cost.linear), cost.hidden, d))


def uniform_at(cost: WidthCost, budget: int, step: int = STEP) -> int | None:
    """The widest uniform width (a multiple of `step`, the last site full) within `budget`; None if none."""
    fits = [d for d in range(step, cost.hidden + 1, step)
            if cost.count(uniform_dims(len(cost.linear), cost.hidden, d)) <= budget]
    return max(fits) if fits else None


# ----------------------------------------------------------------------------- per-site view


def site_rows(tables: PlanTables, cost: WidthCost, plan: Plan,
              uniform: list[int] | None = None) -> list[dict]:
    """One row per site: its `label`, planned width (`dim`) and uniform's (`dim_uniform`), the loss increase
    charged there under each (`dloss`, `dloss_uniform`, nats), the parameters one more kept direction costs
    at the plan (`params_per_dim`), the energy its dense PCA keeps there (`energy_kept`) and the `price` that
    chose the width: the predicted loss decrease per parameter of the next wider grid step (nats per
    parameter; the Lagrange multiplier is the going rate), NaN at full width."""
    grid, dims = tables.grid, plan.dims
    idx = tables.index(dims)
    base = tables.delta_loss(dims)
    u = uniform or dims
    u_loss = tables.site_dloss(u) if uniform else [float("nan")] * len(dims)
    rows = []
    for s, d in enumerate(dims):
        j = idx[s]
        price = float("nan")
        if j + 1 < len(grid):
            wider = dims[:s] + [grid[j + 1]] + dims[s + 1:]
            price = (base - tables.delta_loss(wider)) / (cost.count(wider) - cost.count(dims))
        rows.append({"site": s, "label": tables.labels[s] if tables.labels else str(s), "dim": d,
                     "dim_uniform": u[s], "dloss": plan.site_dloss[s], "dloss_uniform": u_loss[s],
                     "params_per_dim": cost.marginal(dims, s), "price": price,
                     "energy_kept": float(tables.energy[s, j])})
    return rows
