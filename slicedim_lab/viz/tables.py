"""Tidy tables the figures draw: rows made elsewhere, turned into pandas — nothing here predicts or
normalises (the rows come from `predict` and the statistics themselves).

- `curve_table`: one row per d' of `predict.curves` (every predictor's `{metric}_pred_{p}`, schema names); a
  predictor known only at some widths (e.g. the semi-interleaved Fisher kinds) has NaN elsewhere, which the
  figures read as "draw markers at the known widths".
- `site_table`: a statistic's per-site rows (`Statistic.sites`: site × d', the loss increase charged there
  and the energy the dense PCA discards).
- `measured_table`: the measured rows, narrowest first.
- `error_summary`: mean and max |% error| (and interval coverage) of every predictor and estimator over the
  measured rows — the one summary the CLI, the report and the sweep widget show.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .. import schema
from ..predict.registry import predictor_names

SITE_COLUMNS = ["site", "label", "dim", "dloss", "discarded"]


def curve_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Prediction rows (`predict.curves`, `predict.predict`) as a table: one row per d', NaN where a predictor
    has no answer."""
    return pd.DataFrame(list(rows))


def site_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Per-site rows (`Statistic.sites`, e.g. `FisherTables.site_rows`) as a table."""
    return pd.DataFrame(list(rows), columns=SITE_COLUMNS)


def measured_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The measured rows as a table sorted by d' (an empty one keeps a `dim` column)."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame({"dim": pd.Series([], dtype=int)})
    return df.sort_values("dim").reset_index(drop=True)


def error_summary(rows: Sequence[dict]) -> list[dict]:
    """Mean and max |% error| of every PPL predictor/estimator over the rows with sparsity > 0 (an anchored
    prediction over the rows that were not its anchors), and for predictors with intervals the share of
    those rows whose measured value lies inside (`coverage`)."""
    pts = [r for r in rows if r["sparsity"] > 1e-9] or list(rows)
    names = [(p, schema.err(p)) for p in predictor_names()]
    names += [(schema.anchored(p), schema.err(schema.anchored(p))) for p in predictor_names()]
    out = []
    for name, col in names + [(f"est:{e}", schema.est_err(e)) for e in schema.ESTIMATORS]:
        use = [r for r in pts if not (name.endswith("_anchored") and r.get("anchor"))]
        errs = [abs(r[col]) for r in use if r.get(col) is not None]
        if errs:
            s = {"name": name, "mean_abs_err": sum(errs) / len(errs), "max_abs_err": max(errs),
                 "points": len(errs)}
            inside = [r[schema.lo("ppl", name)] <= r[schema.measured("ppl")] <= r[schema.hi("ppl", name)]
                      for r in use if r.get(schema.lo("ppl", name)) is not None]
            if inside:
                s["coverage"] = sum(inside) / len(inside)
            out.append(s)
    return out
