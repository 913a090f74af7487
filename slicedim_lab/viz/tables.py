"""Tidy tables the figures draw, built from what a sweep holds: the dense metrics, the Fisher tables and the
measured rows. Pure data in, pandas out — no model runs here (the predictors are table lookups).

- `prediction_curves`: one row per d' with every predictor's `{metric}_pred_{p}` (schema); a predictor known
  only at some widths (e.g. the semi-interleaved Fisher kinds) has NaN elsewhere, which the figures read as
  "draw markers at the known widths".
- `site_table`: one row per site × d' with the Fisher increment the predictor charges there and the energy
  the dense PCA discards.
- `measured_table`: the measured rows, narrowest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from ..core.sites import site_at
from ..predict import Tables, predict, stats_by_name
from ..predict.fisher import FisherTables
from ..predict.registry import DenseMetrics


def curve_dims(hidden: int, min_dim: int, step: int = 4, extra: Iterable[int] = ()) -> list[int]:
    """The widths a curve is drawn at: min_dim … D every `step`, D itself and `extra` (e.g. the measured
    widths and those some predictor knows only), all within [1, D]."""
    dims = set(range(min_dim, hidden + 1, step)) | {hidden} | {int(d) for d in extra}
    return sorted(d for d in dims if 1 <= d <= hidden)


def prediction_curves(dense: DenseMetrics, tables: Tables, dims: Sequence[int]) -> pd.DataFrame:
    """Every registered predictor at every width of `dims` (`predict.predict`): one row per d', NaN where a
    predictor has no answer."""
    return pd.DataFrame(predict(dense, sorted(dims), tables))


def default_curves(dense: DenseMetrics, tables: Tables, min_dim: int,
                   measured: Iterable[int] = (), step: int = 4) -> pd.DataFrame:
    """`prediction_curves` on `curve_dims`, with the measured widths and the tables' semi-interleaved widths
    added (so partial predictors appear wherever they are known)."""
    fisher = stats_by_name(tables).get("fisher")
    semi = fisher.semi_dims if fisher is not None else []
    return prediction_curves(dense, tables, curve_dims(dense.hidden, min_dim, step, [*measured, *semi]))


def site_table(tables: FisherTables, dims: Sequence[int]) -> pd.DataFrame:
    """One row per site × d': `site`, `label` (e.g. `L3 mlp`), `dim`, `dloss` = ½·Σ_t (g_s·δ_s)² / T (nats,
    what the `fisher` predictor charges to the site) and `discarded` = 1 − retained dense-PCA energy."""
    S = tables.diag.shape[0]
    labels = tables.settings.get("site_labels") or [site_at(s).label for s in range(S)]  # older tables
    rows = []
    for d in dims:
        dloss = (0.5 * tables.diag[:, d] / tables.tokens).tolist()
        kept = tables.energy[:, d].tolist()
        rows += [{"site": s, "label": labels[s], "dim": int(d), "dloss": dloss[s],
                  "discarded": max(0.0, 1.0 - kept[s])} for s in range(S)]
    return pd.DataFrame(rows, columns=["site", "label", "dim", "dloss", "discarded"])


def measured_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The measured rows as a table sorted by d' (an empty one keeps a `dim` column)."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame({"dim": pd.Series([], dtype=int)})
    return df.sort_values("dim").reset_index(drop=True)
