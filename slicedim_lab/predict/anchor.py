"""Anchored predictions: a predictor's curve corrected by a few widths measured for real.

The rule (one number per anchor, nothing fitted across widths): at each anchor width a, the ratio
r_a = ΔL_measured(a) / ΔL_predicted(a) of the loss increases (ΔL = ln PPL − ln PPL₀) says how far the
predictor's loss scale is off there. At any width d, the prediction's loss increase is multiplied by r(d),
the ratio linearly interpolated in d between anchors and held constant beyond the outermost ones:
PPL_anchored(d) = PPL₀ · exp(r(d) · ΔL_predicted(d)). At an anchor it returns the measured value.
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


def ratio_at(dim: int, anchors: list[Anchor]) -> float:
    """r(d): the anchors' ratios linearly interpolated in d, constant beyond the outermost anchors."""
    if not anchors:
        raise UsageError("anchored prediction needs at least one anchor width below the full width")
    a = sorted(anchors, key=lambda x: x.dim)
    if dim <= a[0].dim:
        return a[0].ratio
    if dim >= a[-1].dim:
        return a[-1].ratio
    for lo, hi in zip(a, a[1:]):
        if lo.dim <= dim <= hi.dim:
            t = (dim - lo.dim) / (hi.dim - lo.dim)
            return (1 - t) * lo.ratio + t * hi.ratio
    raise AssertionError("unreachable: anchors are sorted")


def anchored_ppl(ppl0: float, dloss_predicted: float, dim: int, anchors: list[Anchor]) -> float:
    """PPL₀ · exp(r(d) · ΔL_predicted(d))."""
    return ppl0 * math.exp(ratio_at(dim, anchors) * dloss_predicted)
