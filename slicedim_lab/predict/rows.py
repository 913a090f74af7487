"""Rows: every derived column of a table row at one kept width, built in one place.

`predict_point` is the one function that turns the registry into columns: the predictions of every
registered predictor whose statistic is present; beside a measured row, the estimators, every signed error,
the measured loss increase and the statistics' diagnostics; with an `Anchoring`, the headline predictor
corrected by the widths measured for real (its own columns). `predict` is it over a list of widths, `curves`
over the widths a figure draws. Nothing here runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import schema
from ..errors import UsageError
from .anchor import Anchor, anchored_ppl, make_anchors
from .registry import DenseMetrics, Prediction, Predictor, get_predictor, predictor_names, predictors
from .statistics import statistics

Stats = Mapping[str, Any]  # the dense statistics by name (`Predictor.needs`); a missing one is None or absent


@dataclass(frozen=True)
class Anchoring:
    """The headline predictor `predictor` corrected by the widths `widths` measured for real: `anchors` are
    those where it predicts a loss increase (`predict/anchor.py`)."""

    predictor: str
    widths: tuple[int, ...]
    anchors: tuple[Anchor, ...]


def anchoring(dense: DenseMetrics, stats: Stats, predictor: str, widths: Sequence[int],
              measured: Mapping[int, float]) -> Anchoring:
    """The anchoring of `predictor` from the perplexities `measured` at every anchor width."""
    missing = [d for d in widths if d not in measured]
    if missing:
        raise UsageError(f"anchor widths {missing} were not measured")
    p = get_predictor(predictor)
    predicted = {}
    for d in widths:
        pr = _predict(p, dense, d, stats)
        if pr is not None and pr.dloss is not None:
            predicted[d] = pr.dloss
    anchors = make_anchors({d: measured[d] for d in widths}, predicted, dense.ppl)
    return Anchoring(predictor, tuple(widths), tuple(anchors))


def _predict(p: Predictor, dense: DenseMetrics, dim: int, stats: Stats) -> Prediction | None:
    """`p` at `dim`, or None where its statistic is missing or it has no answer there."""
    stat = stats.get(p.needs) if p.needs is not None else None
    if p.needs is not None and stat is None:
        return None
    return p.fn(dense, dim, stat)


def _predictions(dense: DenseMetrics, dim: int, stats: Stats) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in predictors():
        pr = _predict(p, dense, dim, stats)
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


def _beside_measured(out: dict, dense: DenseMetrics, dim: int, stats: Stats, measured: Mapping) -> None:
    """Estimators from the sliced calibration loss, signed errors, the measured loss increase, diagnostics."""
    ppl = measured[schema.measured("ppl")]
    cal_loss = measured.get("cal_loss")
    if cal_loss is not None:
        out[schema.est("calibration")] = math.exp(cal_loss)
        out[schema.est("cal_ratio")] = dense.ppl * math.exp(cal_loss - dense.cal_nll)
    for p in predictor_names():  # some predictors answer only at some widths (semi-interleaved tables)
        if out.get(schema.pred("ppl", p)) is not None:
            out[schema.err(p)] = 100 * (out[schema.pred("ppl", p)] / ppl - 1)
    for e in schema.ESTIMATORS:
        if out.get(schema.est(e)) is not None:
            out[schema.est_err(e)] = 100 * (out[schema.est(e)] / ppl - 1)
    out[schema.measured("dloss")] = math.log(ppl / dense.ppl)
    for st in statistics():
        if st.diagnostics is not None and stats.get(st.name) is not None:
            out.update(st.diagnostics(stats[st.name], dim))


def _anchored(out: dict, dense: DenseMetrics, dim: int, stats: Stats, a: Anchoring,
              measured: Mapping | None) -> None:
    """The anchored headline's columns (`schema.anchored`), its interval where the predictor states one."""
    out["anchor"] = dim in a.widths
    dl = out.get(schema.dloss(a.predictor))
    if dl is None or not a.anchors:
        return
    name, p = schema.anchored(a.predictor), get_predictor(a.predictor)
    ppl = out[schema.pred("ppl", name)] = anchored_ppl(dense.ppl, dl, dim, list(a.anchors), dense.hidden)
    stat = stats.get(p.needs) if p.needs is not None else None
    if p.anchored_interval is not None and stat is not None:
        lo, hi = p.anchored_interval(stat, dense, dim, list(a.anchors), ppl)
        out[schema.lo("ppl", name)], out[schema.hi("ppl", name)] = lo, hi
    if measured is not None and measured.get(schema.measured("ppl")) is not None:
        out[schema.err(name)] = 100 * (ppl / measured[schema.measured("ppl")] - 1)


def predict_point(dense: DenseMetrics, dim: int, stats: Stats | None = None, *,
                  measured: Mapping | None = None, anchoring: Anchoring | None = None) -> dict[str, float]:
    """Every derived column of a row at kept width `dim`.

    Always: `ppl_pred_<p>`, `acc_pred_<p>`, `mc_acc_pred_<p>` (if the dense multiple-choice accuracy is
    known), the interval `ppl_lo_<p>`/`ppl_hi_<p>` where the predictor states one and `dloss_pred_<p>` for
    predictors that model the loss; a predictor whose statistic is missing from `stats` is skipped. With
    `measured` (a row holding `ppl_measured`, and `cal_loss` if the slice tracked it): the estimators,
    every signed error, `dloss_measured` and the statistics' diagnostics. With `anchoring`: `anchor` and the
    anchored headline's prediction, interval and error.
    """
    if not 1 <= dim <= dense.hidden:
        raise UsageError(f"kept width must be in [1, {dense.hidden}], got {dim}")
    stats = stats or {}
    out = _predictions(dense, dim, stats)
    if measured is not None and measured.get(schema.measured("ppl")) is not None:
        _beside_measured(out, dense, dim, stats, measured)
    if anchoring is not None:
        _anchored(out, dense, dim, stats, anchoring, measured)
    return out


def predict(dense: DenseMetrics, dims: Iterable[int], stats: Stats | None = None,
            anchoring: Anchoring | None = None) -> list[dict]:
    """`predict_point` for every width, each row starting with `dim` and `sparsity` = 1 − d'/D."""
    return [{"dim": d, "sparsity": 1 - d / dense.hidden,
             **predict_point(dense, d, stats, anchoring=anchoring)} for d in dims]


def curve_dims(hidden: int, min_dim: int, step: int = 4, extra: Iterable[int] = ()) -> list[int]:
    """The widths a curve is drawn at: min_dim … D every `step`, D itself and `extra`, all within [1, D]."""
    dims = set(range(min_dim, hidden + 1, step)) | {hidden} | {int(d) for d in extra}
    return sorted(d for d in dims if 1 <= d <= hidden)


def curves(dense: DenseMetrics, stats: Stats | None, min_dim: int, measured: Iterable[int] = (),
           step: int = 4) -> list[dict]:
    """Every predictor along d' (what the figures draw): `predict` on `curve_dims`, with the measured widths
    and the widths where a statistic answers only (`Statistic.widths`) added, so a partial predictor
    appears wherever it is known."""
    stats = stats or {}
    only = [d for st in statistics() if stats.get(st.name) is not None
            for d in (st.widths(stats[st.name]) or [])]
    return predict(dense, curve_dims(dense.hidden, min_dim, step, [*measured, *only]), stats)


__all__ = ["Anchoring", "Stats", "anchoring", "curve_dims", "curves", "predict", "predict_point"]
