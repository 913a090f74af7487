"""Predict a sliced model's perplexity and accuracy WITHOUT running any sliced or projected model.

`registry.py` holds the predictor registry and the dense inputs; each predictor module registers itself on
import (`paper.py`: the paper's relations; `fisher.py`: the Fisher-increment family and its tables). This
module turns the registry into table rows.
"""

from __future__ import annotations

from .. import schema
from ..errors import UsageError
from . import paper  # noqa: F401  (registers `paper` first: every table starts with the paper's law)

# isort: split
from . import fisher  # noqa: F401  (registers the Fisher family)
from .registry import DenseMetrics, predictors


def predict_point(
    dense: DenseMetrics, dim: int, tables: fisher.FisherTables | None = None
) -> dict[str, float]:
    """All predictions at one kept width: `ppl_pred_<p>`, `acc_pred_<p>`, `mc_acc_pred_<p>` (if the dense
    multiple-choice accuracy is known) and, for predictors that model the loss, `dloss_pred_<p>` in nats."""
    if not 1 <= dim <= dense.hidden:
        raise UsageError(f"kept width must be in [1, {dense.hidden}], got {dim}")
    out: dict[str, float] = {}
    for p in predictors():
        if p.needs_tables and tables is None:
            continue
        pr = p.fn(dense, dim, tables)
        if pr is None:
            continue
        if pr.dloss is not None:
            out[schema.dloss(p.name)] = pr.dloss
        out[schema.pred("ppl", p.name)] = pr.ppl
        if pr.ppl_lo is not None and pr.ppl_hi is not None:
            out[schema.lo("ppl", p.name)], out[schema.hi("ppl", p.name)] = pr.ppl_lo, pr.ppl_hi
        out[schema.pred("acc", p.name)] = pr.acc
        if pr.mc_acc is not None:
            out[schema.pred("mc_acc", p.name)] = pr.mc_acc
    return out


def predict(dense: DenseMetrics, dims: list[int], tables: fisher.FisherTables | None = None) -> list[dict]:
    """`predict_point` for every width, each row starting with `dim` and `sparsity` = 1 − d'/D."""
    return [{"dim": d, "sparsity": 1 - d / dense.hidden, **predict_point(dense, d, tables)} for d in dims]
