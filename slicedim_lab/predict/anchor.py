"""Anchored predictions: a predictor's curve corrected by a few widths measured for real.

The rule (one number per anchor, no constant fitted): at each anchor width a, the ratio
r_a = ΔL_measured(a) / ΔL_predicted(a) of the loss increases (ΔL = ln PPL − ln PPL₀) says how far the
predictor's loss scale is off there. At any width d the prediction's loss increase is multiplied by r(d):
- one anchor: r(d) = r_a everywhere (the predictor's shape, rescaled);
- two or more: ln r is linear in ln s (s = 1 − d/D) between neighbouring anchors, and the nearest pair's
  line continues beyond the outermost ones. For a power-law predictor this is the power law through the
  anchors: its exponent comes from the measured points, not from the predictor. (Where a ratio is ≤ 0 the
  pair is interpolated in r itself and held constant beyond.)
PPL_anchored(d) = PPL₀ · exp(r(d) · ΔL_predicted(d)); at an anchor it returns the measured value.
An anchored value runs a sliced model (the anchors), so it is reported apart from every dense-only
prediction (`schema.anchored`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class Anchor:
    """A width measured for real, beside the predictor's loss increase there."""

    dim: int
    dloss_measured: float
    dloss_predicted: float

    @property
    def ratio(self) -> float:
        return self.dloss_measured / self.dloss_predicted


def make_anchors(measured: dict[int, float], predicted: dict[int, float], ppl0: float) -> list[Anchor]:
    """Anchors from measured perplexities and predicted loss increases at the same widths (widths where the
    predictor foresees no loss increase carry no information about its scale and are left out)."""
    out = []
    for d, ppl in sorted(measured.items()):
        if d not in predicted:
            raise UsageError(f"anchor width {d} has no prediction")
        if predicted[d] > 0:
            out.append(Anchor(d, math.log(ppl / ppl0), predicted[d]))
    return out


def _log_s(dim: int, hidden: int) -> float:
    return math.log(max(1 - dim / hidden, 1e-12))


def nearest_pair(dim: int, anchors: list[Anchor], hidden: int) -> tuple[Anchor, Anchor, float]:
    """The two anchors whose line serves `dim` (the bracketing pair, else the outermost pair on its side)
    and t, the position of ln s between them (0 at the first, 1 at the second; outside [0, 1] beyond)."""
    a = sorted(anchors, key=lambda x: -x.dim)  # ascending s
    u = _log_s(dim, hidden)
    i = 0
    while i < len(a) - 2 and u > _log_s(a[i + 1].dim, hidden):
        i += 1
    lo, hi = a[i], a[i + 1]
    u0, u1 = _log_s(lo.dim, hidden), _log_s(hi.dim, hidden)
    return lo, hi, (u - u0) / (u1 - u0)


def ratio_at(dim: int, anchors: list[Anchor], hidden: int) -> float:
    """r(d) of the rule above."""
    if not anchors:
        raise UsageError("anchored prediction needs at least one anchor width below the full width")
    if len(anchors) == 1:
        return anchors[0].ratio
    lo, hi, t = nearest_pair(dim, anchors, hidden)
    if lo.ratio > 0 and hi.ratio > 0:
        return math.exp((1 - t) * math.log(lo.ratio) + t * math.log(hi.ratio))
    t = min(max(t, 0.0), 1.0)
    return (1 - t) * lo.ratio + t * hi.ratio


def anchored_ppl(ppl0: float, dloss_predicted: float, dim: int, anchors: list[Anchor], hidden: int) -> float:
    """PPL₀ · exp(r(d) · ΔL_predicted(d))."""
    return ppl0 * math.exp(ratio_at(dim, anchors, hidden) * dloss_predicted)


def anchored_rel_sigma(dim: int, anchors: list[Anchor], hidden: int, sigma_point: float,
                       sigma_beta: float) -> float:
    """Standard deviation of ln ΔL_anchored(d) for a power-law predictor, 0 at an anchor and at full width.

    Each measured ΔL scatters about a smooth power law by a relative `sigma_point` (its eval windows'
    sampling and the law's misfit). One anchor: the predictor's exponent is off by `sigma_beta`, carried
    over |ln(s/s_a)|, beside both points' scatter: √((ln(s/s_a)·σ_β)² + 2σ_p²). Two or more: the line
    through the nearest pair at position t, against the point's own scatter: σ_p·√((1−t)² + t² + 1)."""
    if dim >= hidden or any(a.dim == dim for a in anchors):
        return 0.0
    if len(anchors) == 1:
        far = _log_s(dim, hidden) - _log_s(anchors[0].dim, hidden)
        return math.hypot(far * sigma_beta, math.sqrt(2) * sigma_point)
    _, _, t = nearest_pair(dim, anchors, hidden)
    return sigma_point * math.sqrt((1 - t) ** 2 + t ** 2 + 1)
