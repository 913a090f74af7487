"""The paper's law with a free slope: ln PPL₀ / ln PPL(d') = 1 − κ·s, s = 1 − d'/D (κ = 1 is the paper's).

Used by the theory notebook to ask which slope one measured point implies; the registered `paper` predictor
(`predict/paper.py`) is the κ = 1 case.
"""

from __future__ import annotations

import math


def kappa_ppl(ppl0: float, hidden: int, dim: int, kappa: float, floor: float = 0.2) -> float | None:
    """PPL(d') under slope κ; None where 1 − κ·s falls below `floor` (PPL > PPL₀^(1/floor); the relation
    diverges at s = 1/κ)."""
    ratio = 1 - kappa * (1 - dim / hidden)  # ln PPL_0 / ln PPL
    return math.exp(math.log(ppl0) / ratio) if ratio >= floor else None


def implied_kappa(ppl0: float, ppl: float, hidden: int, dim: int) -> float:
    """The slope κ for which ln PPL_0 / ln PPL = 1 − κ·s holds at one measured point (NaN at s = 0)."""
    s = 1 - dim / hidden
    return (1 - math.log(ppl0) / math.log(ppl)) / s if s > 0 else float("nan")
