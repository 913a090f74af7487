"""The Fisher-increment predictors: dense forward/backward passes over CALIBRATION windows only (see
docs/predictors.md for the measured errors).

- `fisher`: the Fisher-increment estimate. Each site s is charged only for the perturbation it newly adds,
  δ_s = −(I−P_s)(x_s − (I−P_{s−1})x_{s−1}) (`predict/increments.py`; x_s the dense residual, P_s the
  projector on the top-d' dense PCA directions of site s, x_{−1} = 0), weighted by the Gauss-Newton
  curvature through the gradient g_{s,t} of the loss with labels SAMPLED from the model's own softmax:
  ΔL(d') = Σ_s ½ mean_t (g_{s,t}·δ_{s,t})²,  PPL(d') = PPL_0 · exp(ΔL(d')).
- `fisher_cross`: keeps the cross-site terms at each position, ΔL = ½ mean_t (Σ_s g_{s,t}·δ_{s,t})².
- `fisher_full`: keeps all cross terms (sites and positions) of the linearised perturbation:
  ΔL = ½ (1/T) Σ_windows (Σ_{s,t} g_{s,t}·δ_{s,t})². With one sampled label per position this is an unbiased
  estimate of the Gauss-Newton quadratic form ½ E_t[Δz_tᵀ F_t Δz_t] of the linearised logit change (the
  sampled-label gradients of different positions are independent and have mean zero); `fisher_cross`
  drops the cross-position terms, which do not vanish in expectation (a perturbation at position t also
  moves the logits of later positions).
  Next-token accuracy for the fisher predictors is the paper's coupling applied to our perplexity,
  acc(d') = acc_0^(ln PPL(d') / ln PPL_0). Multiple-choice accuracy: its part above chance c is assumed to
  shrink like the predicted next-token accuracy, mc(d') = c + (mc_0 − c) · acc(d')/acc_0 (an assumption,
  chosen after seeing python-docs; checked on corpora it was not chosen on, see docs/predictors.md).
  Cost: one dense forward over the calibration windows (PCA), one dense forward+backward per gradient
  window, and O(T·D²) matrix products per site; afterwards ΔL at EVERY d' = 0..D is a table lookup.
- `fisher_semi`, `fisher_semi_cross`: the same sums (per site / across sites) with SEMI-INTERLEAVED bases
  P̃_s instead of the dense ones — a derived, constant-free model of SliceGPT's interleaved calibration:
  P̃_s is the top-d' PCA of u_s = x_s − (I−P̃_{s−1})x_{s−1}, computed from the dense second moments H_s and
  the neighbour cross moments C_s = Σ x_sᵀx_{s−1} alone. `fisher_semi_geo` = √(semi · semi_cross): a
  heuristic between incoherent and fully coherent increments, chosen after seeing python-docs (declared
  before the held-out corpora were measured). Only at widths named in advance (the bases differ for
  every d'): per width a chain of 2L eigendecompositions and ~4 products per site and gradient window.

Making it d'-independent. In site s's eigenbasis V_s (c = V_sᵀg, p_s = V_sᵀx_s, z = p_{s−1},
M = V_sᵀV_{s−1}), with the kept set {k < d'} and 0-based indices,
  g·δ_s(d') = −Σ_{k≥d'} r_k,   r = c ⊙ (p_s − triu(M) z) − z ⊙ (tril(M, −1)ᵀ c),
an exact identity (the cross-basis staircase sum Σ_{k≥d'} Σ_{j<d'} c_k M_kj z_j telescopes into the
strictly-triangular products), so one suffix sum over r gives g·δ_s at all d' at once.

The tables are the registered statistic "fisher" (made for both sweep bases; the held-out gradient settings
invalidate a saved copy; the semi-interleaved kinds answer at the widths the tables were built for).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .. import schema
from ..adapters import adapter_for
from ..core.nll import next_token_ce
from ..core.pca import SitePCA, pca
from ..core.replay import run_sites
from ..core.sites import model_sites, site_at
from ..errors import UsageError
from ..files import atomic_file
from .increments import increment_dot, semi_bases
from .moments import BATCH_SIZE, DenseMoments, dense_moments
from .registry import DenseMetrics, Prediction, Predictor, from_dloss, register_predictor
from .statistics import DenseInputs, Statistic, register_statistic

FISHER_KINDS = ("fisher", "fisher_cross", "fisher_full")
SEMI_KINDS = ("fisher_semi", "fisher_semi_cross", "fisher_semi_geo")


# ----------------------------------------------------------------------------- Fisher tables


@dataclass
class FisherTables:
    """d'-independent statistics of the Fisher-increment predictors; `delta_loss(d, kind)` for any d in 0..D.

    `diag[s, d]`: Σ_tokens (g_s·δ_s(d))²; `cross[w, d]`: Σ_tokens (Σ_s g_s·δ_s(d))² of window w;
    `full[w, d]`: (Σ_{tokens,s} g_s·δ_s(d))² of window w; `tokens`: predicted tokens over all windows.
    `energy[s, d]`: retained energy of site s's dense PCA at width d (index 0 = nothing kept).
    `semi_diag[i, s]`, `semi_cross[w, i]`: the same sums with semi-interleaved bases at width `semi_dims[i]`
    (only at those widths: the bases differ for every d').
    """

    hidden: int
    diag: Float[Tensor, "sites d1"]
    cross: Float[Tensor, "windows d1"]
    full: Float[Tensor, "windows d1"]
    tokens: int
    energy: Float[Tensor, "sites d1"]
    cal_nll: float
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    semi_dims: list[int] = field(default_factory=list)
    semi_diag: Float[Tensor, "dims sites"] | None = None
    semi_cross: Float[Tensor, "windows dims"] | None = None

    def has(self, dim: int, kind: str) -> bool:
        """Whether `kind` can be predicted at `dim` (the semi-interleaved kinds only at `semi_dims`)."""
        return kind in FISHER_KINDS or (kind in SEMI_KINDS and (dim in self.semi_dims or dim == self.hidden))

    def delta_loss(self, dim: int, kind: str = "fisher") -> float:
        """Predicted increase of the mean next-token loss (nats) when every site keeps `dim` directions."""
        if not 1 <= dim <= self.hidden:
            raise UsageError(f"kept width must be in [1, {self.hidden}], got {dim}")
        if kind in SEMI_KINDS:
            if dim == self.hidden:
                return 0.0
            if dim not in self.semi_dims:
                raise UsageError(f"{kind} was computed only at widths {self.semi_dims}, not {dim}")
            i = self.semi_dims.index(dim)
            diag = 0.5 * self.semi_diag[i].sum().item() / self.tokens
            cross = 0.5 * self.semi_cross[:, i].sum().item() / self.tokens
            return {"fisher_semi": diag, "fisher_semi_cross": cross,
                    "fisher_semi_geo": math.sqrt(diag * cross)}[kind]
        if kind == "fisher":
            return 0.5 * self.diag[:, dim].sum().item() / self.tokens
        if kind == "fisher_cross":
            return 0.5 * self.cross[:, dim].sum().item() / self.tokens
        if kind == "fisher_full":
            return 0.5 * self.full[:, dim].sum().item() / self.tokens
        raise UsageError(f"unknown Fisher predictor {kind!r}; choose one of: "
                         f"{', '.join(FISHER_KINDS + SEMI_KINDS)}")

    def delta_loss_stderr(self, dim: int, kind: str = "fisher") -> float:
        """Standard error of `delta_loss` across gradient windows (sampling noise of the windows and labels);
        `fisher` has no per-window split stored and uses `fisher_cross`'s relative error."""
        if kind in SEMI_KINDS:
            if dim not in self.semi_dims:
                return float("nan")
            per = self.semi_cross[:, self.semi_dims.index(dim)].double()
        else:
            per = {"fisher_cross": self.cross, "fisher_full": self.full, "fisher": self.cross}[kind][:, dim]
            per = per.double()
        n = per.shape[0]
        if n < 2 or per.mean() == 0:
            return float("nan")
        rel = per.std().item() / math.sqrt(n) / per.mean().item()
        return rel * self.delta_loss(dim, kind)

    def site_dloss(self, dim: int) -> list[float]:
        """The loss increase `fisher` charges to each site at width `dim`: ½·Σ_t (g_s·δ_s)² / T (nats)."""
        return (0.5 * self.diag[:, dim] / self.tokens).tolist()

    def site_rows(self, dims: Sequence[int]) -> list[dict]:
        """One row per site × d': `site`, `label` (e.g. `L3 mlp`), `dim`, `dloss` (`site_dloss`) and
        `discarded` = 1 − the energy the dense PCA retains there."""
        S = self.diag.shape[0]
        labels = self.settings.get("site_labels") or [site_at(s).label for s in range(S)]  # older tables
        rows = []
        for d in dims:
            dloss, kept = self.site_dloss(d), self.energy[:, d].tolist()
            rows += [{"site": s, "label": labels[s], "dim": int(d), "dloss": dloss[s],
                      "discarded": max(0.0, 1.0 - kept[s])} for s in range(S)]
        return rows

    def discarded_mean(self, dim: int) -> float:
        """The energy the dense PCA discards at width `dim`, averaged over the charged sites."""
        charged = self.energy[:-1] if not self.settings.get("slice_head") else self.energy
        return 1 - charged[:, dim].mean().item()

    def save(self, path: str | Path) -> None:
        with atomic_file(path, "wb") as f:
            torch.save(dict(asdict(self).items()), f)

    @classmethod
    def load(cls, path: str | Path) -> FisherTables:
        return cls(**torch.load(path, weights_only=False))


def _site_tables(
    xs: list[Float[Tensor, "n d"]],
    gs: list[Float[Tensor, "n d"]],
    vecs: list[Float[Tensor, "d d"]],
    tri: list[tuple[Tensor, Tensor] | None],
    n_sites_charged: int,
) -> tuple[Float[Tensor, "sites d1"], Float[Tensor, "n d1"]]:
    """g·δ_s(d) for every site and d = 0..D over n tokens: returns Σ_tokens (g·δ_s)² per site, and
    Q[t, d] = Σ_s g_{s,t}·δ_{s,t}(d)."""
    n, D = xs[0].shape
    diag = torch.zeros(len(xs), D + 1, dtype=torch.float64)
    Q = torch.zeros(n, D + 1, dtype=torch.float64)
    z = None
    for s in range(n_sites_charged):
        V = vecs[s]
        p = xs[s] @ V
        c = gs[s] @ V
        if z is None:
            r = c * p
        else:
            upper, strict_lower = tri[s]
            r = c * (p - z @ upper.T) - z * (c @ strict_lower)
        # suffix sums: q[:, d] = -sum_{k >= d} r[:, k], q[:, D] = 0
        q = torch.zeros(n, D + 1, dtype=torch.float64)
        q[:, :D] = -r.double().flip(1).cumsum(1).flip(1)
        diag[s] = q.square().sum(0)
        Q += q
        z = p
    return diag, Q


def _semi_q(
    xs: list[Float[Tensor, "n d"]], gs: list[Float[Tensor, "n d"]], bases: list[Float[Tensor, "d k"]]
) -> Float[Tensor, "sites n"]:
    """g_s·δ_s in the semi-interleaved bases P̃ for the charged sites (one row each)."""
    return torch.stack([increment_dot(gs[s], xs[s], xs[s - 1] if s else None, b, bases[s - 1] if s else None)
                        .double() for s, b in enumerate(bases)])


def fisher_tables(
    model: nn.Module,
    cal_ids: Int[Tensor, "n pos"],
    grad_windows: int | None = None,
    *,
    slice_head: bool = False,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    pcas: list[SitePCA] | None = None,
    semi_dims: list[int] | None = None,
    grad_ids: Int[Tensor, "m pos"] | None = None,
    grad_heldout: bool | None = None,
    moments: DenseMoments | None = None,
    progress: bool = True,
) -> FisherTables:
    """Dense-only statistics for the Fisher-increment predictors.

    1. dense PCA of every site on all `cal_ids` (skipped if `pcas` is given) and the dense calibration loss;
    2. on the first `grad_windows` of `grad_ids` (default: of `cal_ids`; the sweep passes calibration
       windows the PCA did not see, so that the charged perturbation is out-of-sample as on the eval text):
       one forward+backward with labels sampled (seeded) from the model's own softmax; gradients and
       activations are reduced window by window into tables over d' = 0..D, so memory does
       not grow with the number of windows.
    With `slice_head=False` the last site keeps full width (as `slicing.site_dims` does) and is not charged.
    `semi_dims`: widths at which to also accumulate the semi-interleaved tables (needs the cross moments of
    neighbouring sites in step 1, and per width one chain of eigendecompositions and a few products per site).
    `grad_heldout`: whether `grad_ids` are disjoint from `cal_ids`, recorded in the settings when given.
    `moments`: the dense pass of step 1 when the caller already made it (with cross moments if `semi_dims`).
    """
    t0 = time.perf_counter()
    adapter = adapter_for(model)
    dev = next(model.parameters()).device
    grad_ids = cal_ids if grad_ids is None else grad_ids
    n_grad = grad_ids.shape[0] if grad_windows is None else min(grad_windows, grad_ids.shape[0])
    if n_grad < 1:
        raise UsageError("need at least one gradient window")
    semi_dims = sorted({int(d) for d in semi_dims or [] if d < model.config.hidden_size})
    dm = moments or dense_moments(model, cal_ids, batch_size, second=pcas is None or bool(semi_dims),
                                  cross=bool(semi_dims), progress=progress)
    if math.isnan(dm.nll_sum):
        raise UsageError("the Fisher tables need dense moments with the calibration loss (logits=True)")
    moments, crosses, cal_nll, count = dm.second, dm.cross, dm.nll_sum, dm.tokens
    timing = {"dense_pass": dm.seconds}
    pcas = pcas if pcas is not None else [pca(m) for m in moments]
    D = pcas[0].vectors.shape[0]
    n_s = len(pcas)
    work = torch.float64 if next(model.parameters()).dtype == torch.float64 else torch.float32
    vecs = [p.vectors.to(work) for p in pcas]
    tri: list[tuple[Tensor, Tensor] | None] = [None]
    for s in range(1, n_s):
        M = vecs[s].T @ vecs[s - 1]
        tri.append((torch.triu(M), torch.tril(M, -1)))
    charged = n_s if slice_head else n_s - 1
    tic = time.perf_counter()
    semi = {d: [b.to(work) for b in semi_bases(moments, crosses, d, charged)] for d in semi_dims}
    del moments, crosses
    timing["semi_bases"] = time.perf_counter() - tic
    timing.update(gradients=0.0, tables=0.0, semi_tables=0.0)
    semi_diag = torch.zeros(len(semi_dims), n_s, dtype=torch.float64)
    semi_cross = []

    gen = torch.Generator().manual_seed(seed)
    diag = torch.zeros(n_s, D + 1, dtype=torch.float64)
    cross, full, tokens = [], [], 0
    grad_batches = torch.split(grad_ids[:n_grad], batch_size)
    for ids in tqdm(grad_batches, desc="Fisher gradients", disable=not progress):
        tic = time.perf_counter()
        ids = ids.to(dev)
        sites, logits = run_sites(model, ids, adapter, keep_grad=True)
        b, p = ids.shape
        with torch.no_grad():
            probs = rearrange(logits[:, :-1].float().softmax(-1), "b p v -> (b p) v").cpu().double()
            labels = rearrange(torch.multinomial(probs, 1, generator=gen)[:, 0], "(b p) -> b p", b=b)
        next_token_ce(logits, ids, targets=labels).sum().backward()
        xs = [rearrange(x.detach().to(work).cpu(), "b p d -> (b p) d") for x in sites]
        gs = [rearrange(x.grad.to(work).cpu(), "b p d -> (b p) d") if x.grad is not None
              else torch.zeros(b * p, D, dtype=work) for x in sites]
        del sites, logits
        timing["gradients"] += time.perf_counter() - tic
        tic = time.perf_counter()
        with torch.no_grad():
            d_s, Q = _site_tables(xs, gs, vecs, tri, charged)
        diag += d_s
        Q = rearrange(Q, "(b p) d -> b p d", b=b)
        cross.append(Q.square().sum(1))
        full.append(Q.sum(1).square())
        tokens += b * (p - 1)
        timing["tables"] += time.perf_counter() - tic
        tic = time.perf_counter()
        sc = torch.zeros(b, len(semi_dims), dtype=torch.float64)
        with torch.no_grad():
            for i, d in enumerate(semi_dims):
                q = _semi_q(xs, gs, semi[d])
                semi_diag[i, :charged] += q.square().sum(1)
                sc[:, i] = rearrange(q.sum(0), "(b p) -> b p", b=b).square().sum(1)
        semi_cross.append(sc)
        timing["semi_tables"] += time.perf_counter() - tic
    energy = torch.stack([torch.cat([torch.zeros(1, dtype=torch.float64), p.retained_energy().double()])
                          for p in pcas])
    settings = {"site_labels": [s.label for s in model_sites(model)],
                "cal_windows": int(cal_ids.shape[0]), "cal_seqlen": int(cal_ids.shape[1]),
                "grad_windows": n_grad, "slice_head": slice_head, "seed": seed, "timing_s": timing}
    if grad_heldout is not None:
        settings["grad_heldout"] = grad_heldout
    return FisherTables(hidden=D, diag=diag, cross=torch.cat(cross), full=torch.cat(full), tokens=tokens,
                        energy=energy, cal_nll=cal_nll / count, settings=settings,
                        seconds=time.perf_counter() - t0, semi_dims=semi_dims, semi_diag=semi_diag,
                        semi_cross=torch.cat(semi_cross))


# ----------------------------------------------------------------------------- registrations


def _build(inp: DenseInputs, widths: Sequence[int]) -> FisherTables:
    """The tables from the shared dense pass, gradients on the held-out calibration windows (in-sample, said
    in the log, when the split has none to spare), semi-interleaved sums at `widths`."""
    st = inp.settings
    if st["grad_heldout"] and not inp.grad_heldout:
        inp.log(f"note: the calibration split has no windows besides the {inp.cal_ids.shape[0]} of the PCA; "
                "Fisher gradients are taken in-sample (predictions tend to be optimistic)")
    return fisher_tables(inp.model, inp.cal_ids, slice_head=st["slice_head"], seed=st["seed"], pcas=inp.pcas,
                         semi_dims=list(widths), grad_ids=inp.grad_ids, grad_heldout=inp.grad_heldout,
                         moments=inp.moments(), progress=inp.progress)


def _semi_widths(tables: FisherTables) -> list[int]:
    return tables.semi_dims


register_statistic(Statistic(
    "fisher", _build, FisherTables.save, FisherTables.load,
    "Fisher tables: dense PCA per site, sampled-label gradients on held-out calibration windows, every d'",
    depends_on=("grad_windows", "grad_heldout"), widths=_semi_widths,
    diagnostics=lambda t, dim: {schema.ENERGY_DISCARDED: t.discarded_mean(dim)},
    diagnostic_columns=(schema.ENERGY_DISCARDED,), sites=FisherTables.site_rows,
    sites_title="Fisher predictor: loss increase charged to each site (nats), beside the energy the dense "
                "PCA discards"))


def _kind(name: str):
    def fn(dense: DenseMetrics, dim: int, tables: Any) -> Prediction | None:
        if tables.hidden != dense.hidden:
            raise UsageError(f"Fisher tables are for width {tables.hidden}, the model has {dense.hidden}")
        return from_dloss(dense, tables.delta_loss(dim, name)) if tables.has(dim, name) else None

    return fn


_SUMMARIES = {
    "fisher": "Σ_s ½ mean_t (g·δ_s)², dense bases",
    "fisher_cross": "½ mean_t (Σ_s g·δ_s)², dense bases",
    "fisher_full": "½ (1/T) Σ_windows (Σ_{s,t} g·δ_s)², dense bases",
    "fisher_semi": "Σ_s ½ mean_t (g·δ_s)², semi-interleaved bases",
    "fisher_semi_cross": "½ mean_t (Σ_s g·δ_s)², semi-interleaved bases",
    "fisher_semi_geo": "√(semi · semi_cross) (a heuristic chosen after seeing python-docs)",
}
# drawn when a figure opens: the cross-term variants (errors up to 1000× larger) wait in the legend;
# the headline of dense-basis sweeps is the constant-free Fisher sum in the dense bases
_SHOWN = ("fisher",)  # drawn beside paper and the headline; the other variants wait in the legend
_HEADLINE = {"fisher": ("dense",)}  # for interleaved sweeps the headline is `ours` (predict/ours.py)
for _name in FISHER_KINDS + SEMI_KINDS:
    register_predictor(Predictor(_name, _kind(_name), _SUMMARIES[_name], needs="fisher",
                                 shown=_name in _SHOWN, headline_for=_HEADLINE.get(_name, ())))
