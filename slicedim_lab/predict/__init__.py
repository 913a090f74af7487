"""Predict a sliced model's perplexity and accuracy WITHOUT running any sliced or projected model.

`registry.py` holds the predictor registry and the dense inputs; each predictor module registers itself on
import (`paper.py`: the paper's relations; `fisher.py`: the Fisher-increment family and its tables). This
module turns the registry into table rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import schema
from ..errors import UsageError
from . import paper  # noqa: F401  (registers `paper` first: every table starts with the paper's law)

# isort: split
from . import fisher  # noqa: F401  (registers the Fisher family)

# isort: split
from . import ours  # noqa: F401  (registers `ours`, the headline of interleaved sweeps)
from .registry import DenseMetrics, predictors

Tables = fisher.FisherTables | Mapping[str, Any] | None


def stats_by_name(tables: Tables) -> Mapping[str, Any]:
    """Dense statistics by the name predictors ask for them (`Predictor.needs`); bare Fisher tables are
    the "fisher" statistics."""
    if tables is None:
        return {}
    return {"fisher": tables} if isinstance(tables, fisher.FisherTables) else tables


def predict_point(dense: DenseMetrics, dim: int, tables: Tables = None) -> dict[str, float]:
    """All predictions at one kept width: `ppl_pred_<p>`, `acc_pred_<p>`, `mc_acc_pred_<p>` (if the dense
    multiple-choice accuracy is known), the interval `ppl_lo_<p>`/`ppl_hi_<p>` where the predictor states
    one and, for predictors that model the loss, `dloss_pred_<p>` in nats. `tables`: the dense statistics
    by name (or bare Fisher tables); a predictor whose statistics are missing is skipped."""
    if not 1 <= dim <= dense.hidden:
        raise UsageError(f"kept width must be in [1, {dense.hidden}], got {dim}")
    stats = stats_by_name(tables)
    out: dict[str, float] = {}
    for p in predictors():
        if p.needs is not None and stats.get(p.needs) is None:
            continue
        pr = p.fn(dense, dim, stats.get(p.needs))
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


def predict(dense: DenseMetrics, dims: list[int], tables: Tables = None) -> list[dict]:
    """`predict_point` for every width, each row starting with `dim` and `sparsity` = 1 − d'/D."""
    return [{"dim": d, "sparsity": 1 - d / dense.hidden, **predict_point(dense, d, tables)} for d in dims]
