"""`jvp_power`: a dense JVP at a mild cut carried to any d' by a power law (`ours` v1/v2, the headline of
interleaved sweeps until v3 chose by evidence; experiments/results/ours_v3.md).

    ΔL(d') = ΔL_J · (s / s_J)^β,   s = 1 − d'/D,   PPL(d') = PPL₀ · exp(ΔL(d')),   ΔL(D) = 0.

- ΔL_J, a first-order anchor at the mild cut s_J (d'_J = SliceGPT's width for s_J): the exact mean
  cross-entropy increase CE(z + Δz, y) − CE(z, y) over every predicted token of the eval windows (y the true
  next tokens), with z the dense logits and Δz the dense model's linearised logit change: its derivative
  (JVP, computed by a central difference of the dense model) along every charged site's increment at once,
  δ_s = −(I−P̃_s)(x_s − (I−P̃_{s−1})x_{s−1}) (`predict/increments.py`; x the dense residual). P̃ are the
  semi-interleaved bases at d'_J (`increments.semi_bases`, from the dense moments of the calibration
  windows).
  The primal is the dense model; nothing sliced or projected runs.
- β, the growth exponent of ΔL in s, fitted once on the python-docs tuning corpus (the only fitted constant).
The prediction was frozen before the held-out corpora were run (docs/predictors.md; the frozen text is
experiments/results/ours_frozen.md, its code the reference implementation tests/reference/ours_v1.py).

Interval (nominal 90 %; revised after the validation, experiments/results/ours_v2.md): multiplicative in ΔL,
ΔL·exp(±z·σ) with σ = √(σ_J² + σ_A² + (ln(s/s_J)·σ_β)²): σ_J the bootstrap relative standard error of ΔL_J
over the eval windows; σ_A the anchor's model error and σ_β the exponent's, both as large as the six
validation corpora showed them (RMS of ln(ΔL_J/ΔL_measured) at d'_J, and of β_corpus − β).

Its statistic is the registered "jvp" (interleaved sweeps only; it reads no prediction setting).
`JVP_SETTINGS` is the one place of every constant of the definition, its interval included.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..core.nll import next_token_ce
from ..core.replay import run_sites
from ..errors import UsageError
from ..eval.uncertainty import Z, bootstrap_means
from ..files import atomic_file
from .anchor import Anchor, anchored_rel_sigma
from .increments import increment, semi_bases
from .moments import BATCH_SIZE, DenseMoments
from .registry import DenseMetrics, Prediction, Predictor, from_dloss, register_predictor
from .statistics import DenseInputs, Statistic, register_statistic

# every setting of the definition (frozen: experiments/results/ours_frozen.md; interval v2: ours_v2.md)
JVP_SETTINGS = {
    "anchor_sparsity": 1 / 9,  # s_J: d'_J = 512 of 576, where first-order theory is trusted
    "beta": 1.44,  # least-squares slope of log ΔL_measured on log s, python-docs, d' = 512 … 288
    # interval model errors (ours v2, experiments/results/ours_v2.md), from the six corpora of the first
    # validation:
    "sigma_beta": 0.22,  # RMS of β_corpus − β (measured exponents 1.43 … 1.85); the frozen prior was 0.10
    "sigma_anchor": 0.70,  # RMS of ln(ΔL_J / ΔL_measured) at d'_J (ratios 1.24 … 3.89)
    "sigma_point": 0.015,  # relative scatter of a measured ΔL about its corpus's power law (anchored mode)
    "batch_size": BATCH_SIZE,  # windows per batch of the linearisation (its numbers depend on it)
    "fd_eps": 1e-2,  # step of the central difference that computes the linearisation (a numerical setting)
    "bootstrap": 2000,
    "seed": 0,
}
INTERVAL_KEYS = ("sigma_beta", "sigma_anchor", "sigma_point")  # the interval's model errors


@dataclass
class JvpTables:
    """The dense-only statistics of `jvp_power`: the anchor width and each eval window's mean CE increase."""

    hidden: int
    anchor_dim: int
    window_dl: list[float]
    settings: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)

    @property
    def dloss_anchor(self) -> float:
        return sum(self.window_dl) / len(self.window_dl)

    @property
    def anchor_sparsity(self) -> float:
        return 1 - self.anchor_dim / self.hidden

    def rel_se(self) -> float:
        """Bootstrap relative standard error of ΔL_J over the eval windows (resampled once, then kept: every
        width's interval and every slider move reads it)."""
        if "_rel_se" not in self.__dict__:
            w = torch.tensor(self.window_dl, dtype=torch.float64)
            se = 0.0
            if w.numel() >= 2 and float(w.mean()) != 0:
                b = bootstrap_means(w, self.settings["bootstrap"], self.settings["seed"])
                se = float(b.std() / w.mean())
            self.__dict__["_rel_se"] = se
        return self.__dict__["_rel_se"]

    def dloss(self, dim: int) -> float:
        """ΔL(d') = ΔL_J (s/s_J)^β (0 at full width)."""
        s = 1 - dim / self.hidden
        return 0.0 if s <= 0 else self.dloss_anchor * (s / self.anchor_sparsity) ** self.settings["beta"]

    def rel_sigma(self, dim: int) -> float:
        """Standard deviation of ln ΔL(d') of the dense-only prediction (0 at full width)."""
        s = 1 - dim / self.hidden
        if s <= 0:
            return 0.0
        st = self.settings
        return math.sqrt(self.rel_se() ** 2 + st["sigma_anchor"] ** 2
                         + (math.log(s / self.anchor_sparsity) * st["sigma_beta"]) ** 2)

    def anchored_rel_sigma(self, dim: int, anchors: list[Anchor]) -> float:
        """Standard deviation of ln ΔL of the anchored prediction at `dim` (`anchor.anchored_rel_sigma` with
        this predictor's exponent and point errors; 0 at an anchor and at full width)."""
        return anchored_rel_sigma(dim, anchors, self.hidden, self.settings["sigma_point"],
                                  self.settings["sigma_beta"])

    def save(self, path: str | Path) -> None:
        with atomic_file(path, "wb") as f:
            torch.save(asdict(self), f)

    @classmethod
    def load(cls, path: str | Path) -> JvpTables:
        """Tables saved by any version; the interval's model errors are the definition's, not data, so the
        current ones apply (a sweep folder written before v2 gets v2 intervals when its rows refresh)."""
        raw = torch.load(path, weights_only=False)
        raw["settings"] = {**raw.get("settings", {}), **{k: JVP_SETTINGS[k] for k in INTERVAL_KEYS}}
        return cls(**raw)


def anchor_dim(hidden: int, sparsity: float, round_interval: int = 8) -> int:
    """d'_J = (1 − s_J)·D rounded to the nearest integer, then down to a multiple of `round_interval`
    (512 of 576 at s_J = 1/9; `int()` alone would floor 511.99999 to 504)."""
    d = round((1 - sparsity) * hidden)
    return max(round_interval, d - d % round_interval) if hidden >= round_interval else max(1, d)


@torch.no_grad()
def linearised_logits(
    model: nn.Module, ids: Int[Tensor, "b pos"], bases: list[Float[Tensor, "d k"]], eps: float | None = None
) -> tuple[Float[Tensor, "b pos vocab"], Float[Tensor, "b pos vocab"]]:
    """Dense logits z and the linearised logit change Δz = J·δ of the increments of the charged sites (one
    basis per charged site, in site order), J the dense replay's derivative.

    δ_s comes from the dense residuals; Δz is the central difference (z(+εδ) − z(−εδ)) / 2ε of the dense
    replay with ±εδ_s added at every charged site (ε = `fd_eps`, 1e-2): the directional derivative to O(ε²)
    — within 4e-4 (relative, float32 SmolLM2) of the forward-mode JVP, which costs three times as much on a
    CPU (eager attention, dual tensors). The ±1 %-scaled increments are a derivative probe, not a slice."""
    eps = JVP_SETTINGS["fd_eps"] if eps is None else eps
    charged = len(bases)
    sites, z = run_sites(model, ids)
    bs = [b.to(z) for b in bases]
    deltas = [increment(sites[s], sites[s - 1] if s else None, bs[s], bs[s - 1] if s else None)
              for s in range(charged)]
    del sites

    def shifted(step: float) -> Tensor:
        return run_sites(model, ids, project=lambda s, x: x + step * deltas[s] if s < charged else x)[1]

    return z, (shifted(eps) - shifted(-eps)) / (2 * eps)


def jvp_tables(model: nn.Module, eval_ids: Int[Tensor, "n pos"], moments: DenseMoments,
                settings: dict | None = None, slice_head: bool = False, progress: bool = True) -> JvpTables:
    """`JvpTables` from the dense moments of the calibration windows and one JVP over the eval windows (the
    timing records the moments' own pass, `DenseMoments.seconds`)."""
    st = {**JVP_SETTINGS, **(settings or {})}
    if moments.second is None or moments.cross is None:
        raise UsageError("jvp_power needs the second and cross moments of the calibration windows")
    D = model.config.hidden_size
    anchor = anchor_dim(D, st["anchor_sparsity"])
    if moments.tokens < D:
        warnings.warn(f"jvp: {moments.tokens} calibration tokens < width {D}: the moments are "
                      "rank-deficient and the semi-interleaved bases (and the anchor) unreliable",
                      stacklevel=2)
    charged = len(moments.second) if slice_head else len(moments.second) - 1
    t0 = time.perf_counter()
    bases = semi_bases(moments.second, moments.cross, anchor, charged)
    timing = {"moments": moments.seconds, "semi_bases": time.perf_counter() - t0}
    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    per: list[float] = []
    for ids in tqdm(torch.split(eval_ids, st["batch_size"]), desc="jvp", disable=not progress):
        ids = ids.to(dev)
        z, dz = linearised_logits(model, ids, bases, st["fd_eps"])
        dl = next_token_ce(z + dz, ids) - next_token_ce(z, ids)  # [b, pos-1]
        per += dl.double().mean(1).tolist()
        del z, dz
    timing["jvp"] = time.perf_counter() - t0
    return JvpTables(hidden=D, anchor_dim=anchor, window_dl=per, settings=st, timing=timing)


def _jvp_power(dense: DenseMetrics, dim: int, tables: Any) -> Prediction:
    t: JvpTables = tables
    if t.hidden != dense.hidden:
        raise UsageError(f"jvp tables are for width {t.hidden}, the model has {dense.hidden}")
    dl = t.dloss(dim)
    pr = from_dloss(dense, dl)
    pr.ppl_lo, pr.ppl_hi = interval(dense.ppl, dl, t.rel_sigma(dim))
    return pr


def interval(ppl0: float, dloss: float, rel_sigma: float) -> tuple[float, float]:
    """The nominal-90 % perplexity interval of a predicted loss increase with relative error `rel_sigma`:
    PPL₀·exp(ΔL·exp(∓z·σ)) (the bounds keep ΔL's sign: no interval crosses the dense perplexity). A bound
    past the float range (a ΔL_J indistinguishable from 0 has a huge relative error) saturates at e^700."""
    spread = math.exp(min(Z * rel_sigma, 700.0))
    lo, hi = sorted((dloss / spread, dloss * spread))
    ln0 = math.log(ppl0)
    return math.exp(min(ln0 + lo, 700.0)), math.exp(min(ln0 + hi, 700.0))


def _build(inp: DenseInputs, widths: Sequence[int]) -> JvpTables:
    """`jvp_tables` from the shared dense pass and the eval windows (every width: `widths` is not needed)."""
    del widths
    return jvp_tables(inp.model, inp.eval_ids, inp.moments(), slice_head=inp.settings["slice_head"],
                       progress=inp.progress)


def _anchored_interval(t: JvpTables, dense: DenseMetrics, dim: int, anchors: list[Anchor],
                       ppl: float) -> tuple[float, float]:
    """The interval of the anchored `jvp_power` at `dim` (`JvpTables.anchored_rel_sigma`), around its PPL."""
    return interval(dense.ppl, math.log(ppl / dense.ppl), t.anchored_rel_sigma(dim, anchors))


register_statistic(Statistic(
    "jvp", _build, JvpTables.save, JvpTables.load,
    "jvp: semi-interleaved bases at d'_J from the dense moments, one linearisation over the eval windows",
    bases=("interleaved",)))
register_predictor(Predictor("jvp_power", _jvp_power,
                             "ΔL_J (s/s_J)^β: a dense JVP at s_J = 1/9, β from python-docs (ours v2)",
                             needs="jvp", interval=True, anchored_interval=_anchored_interval))
