"""`paper`: the relations of Xu, Alazraki & Mandic (arXiv 2503.04377) as PAPER.md reads them.

ln PPL(d') = (D/d') · ln PPL_0, and — our reading of "ln(acc/acc_0) ∝ 1 − s" that is consistent with s = 0
and with the perplexity law — acc(d') = acc_0^(D/d'), applied alike to next-token and multiple-choice
accuracy. Costs nothing beyond the dense metrics.
"""

from __future__ import annotations

import math
from typing import Any

from .registry import DenseMetrics, Prediction, Predictor, register_predictor


def paper_ppl(ppl0: float, hidden: int, dim: int) -> float:
    """ln PPL(d') = (D/d') · ln PPL_0."""
    return math.exp(hidden / dim * math.log(ppl0))


def paper_acc(acc0: float, hidden: int, dim: int) -> float:
    """acc(d') = acc_0^(D/d') — our reading of the paper's "ln(acc/acc_0) ∝ 1 − s" (exact at s = 0)."""
    return acc0 ** (hidden / dim)


def _paper(dense: DenseMetrics, dim: int, tables: Any = None) -> Prediction:
    D = dense.hidden
    mc = paper_acc(dense.mc_acc, D, dim) if dense.mc_acc is not None else None
    return Prediction(ppl=paper_ppl(dense.ppl, D, dim), acc=paper_acc(dense.acc, D, dim), mc_acc=mc)


register_predictor(Predictor("paper", _paper, "ln PPL = (D/d') ln PPL₀; acc = acc₀^(D/d') (our reading)",
                             shown=True))
