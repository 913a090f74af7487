"""The names every table, file and figure shares: bases, metrics, estimators and column names.

A sweep's `results.csv`, `slicedim predict --json`, the report and the widgets all build and read their
column names here, so a predictor registered in `predict/registry.py` shows up everywhere with no other edit.

Columns of a results row, for a predictor `p` and an estimator `e`:
- `{metric}_measured`, `{metric}_pred_{p}` for metric in ppl | acc | mc_acc; `mc_acc_norm_measured`, the
  length-normalised multiple-choice accuracy (measured only);
- `ppl_err_{p}`: signed % error of the predicted perplexity against the measured one;
- `dloss_pred_{p}`: predicted increase of the mean next-token loss (nats), `dloss_measured` (`measured`
  of "dloss": ln(PPL / PPL₀));
- `energy_discarded_mean` (`ENERGY_DISCARDED`): the energy the dense PCA discards at d', mean over the charged
  sites (a diagnostic the Fisher statistic adds to measured rows);
- `ppl_est_{e}`, `ppl_err_est_{e}`: estimators, which run the sliced model (never predictions);
- `ppl_lo_{who}`, `ppl_hi_{who}`: the 90% interval of a prediction (`who` = a predictor) or of a measured
  value (`who` = `measured`, from its eval windows);
- `{p}_anchored` is the predictor name of `p` corrected by measured anchor widths (`predict/anchor.py`):
  it runs a sliced model, so it is never a dense-only prediction and never shares `p`'s columns;
- `plan_{column}` (`planned`): `slicedim sweep --plan`'s schedule planned for the row's parameter count,
  measured like the row (`plan_ppl_measured`, `plan_params`, ...), its widths (`plan_dims`), budget and the
  plan statistic's predictions for it and for uniform slicing (`plan_ppl_pred`, `plan_ppl_pred_uniform`).
"""

from __future__ import annotations

from collections.abc import Iterable

BASES = ("interleaved", "dense")  # interleaved: SliceGPT's calibration; dense: the dense model's PCA
METRICS = ("ppl", "acc", "mc_acc")  # perplexity, next-token top-1, multiple-choice accuracy
ESTIMATORS = ("calibration", "cal_ratio")
ENERGY_DISCARDED = "energy_discarded_mean"


def measured(metric: str) -> str:
    return f"{metric}_measured"


def pred(metric: str, predictor: str) -> str:
    return f"{metric}_pred_{predictor}"


def err(predictor: str) -> str:
    return f"ppl_err_{predictor}"


def dloss(predictor: str) -> str:
    return f"dloss_pred_{predictor}"


def lo(metric: str, who: str) -> str:
    return f"{metric}_lo_{who}"


def hi(metric: str, who: str) -> str:
    return f"{metric}_hi_{who}"


def anchored(predictor: str) -> str:
    return f"{predictor}_anchored"


def planned(column: str) -> str:
    return f"plan_{column}"


PLAN_COLUMNS = tuple(planned(c) for c in (
    "params", measured("ppl"), lo("ppl", "measured"), hi("ppl", "measured"), measured("acc"),
    measured("mc_acc"), measured("mc_acc_norm"), "ppl_pred", "ppl_pred_uniform", "dloss_pred",
    "dloss_pred_uniform", "budget", "dims", "cal_loss", "seconds"))


def est(estimator: str) -> str:
    return f"ppl_est_{estimator}"


def est_err(estimator: str) -> str:
    return f"ppl_err_est_{estimator}"


PREDICTION_PREFIXES = tuple(f"{m}_pred_" for m in METRICS) + ("dloss_pred_", "ppl_err_")
PREDICTION_PREFIXES += tuple(f"{m}_{b}_" for m in METRICS for b in ("lo", "hi"))


def is_derived(column: str) -> bool:
    """Whether a column is computed from measured values and the predictors (a prediction, an error), so it
    is dropped and recomputed whenever the predictors change."""
    return column.startswith(PREDICTION_PREFIXES) and not column.endswith("_measured")


def predictors_in(columns: Iterable[str], metric: str = "ppl") -> list[str]:
    """The predictors that have a `{metric}_pred_*` column among `columns`, in order of appearance."""
    prefix = f"{metric}_pred_"
    return [c[len(prefix):] for c in columns if c.startswith(prefix)]
