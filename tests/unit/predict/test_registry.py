"""predict/registry.py: a predictor is one function and one registration; every consumer picks it up."""

from __future__ import annotations

import math

import pytest

from slicedim_lab import schema
from slicedim_lab.errors import UsageError
from slicedim_lab.predict import predict_point
from slicedim_lab.predict import registry as R
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.folder import columns

DENSE = R.DenseMetrics(ppl=20.0, acc=0.4, hidden=64, mc_acc=0.9, mc_chance=0.25)


def test_registered_order_and_headline() -> None:
    names = R.predictor_names()
    assert names[0] == "paper" and {"fisher", "fisher_semi"} <= set(names)
    assert R.headline("interleaved") == "ours" and R.headline("dense") == "fisher"
    assert set(R.shown_names()) <= set(names) and "paper" in R.shown_names()
    assert R.get_predictor("paper").needs is None and not R.get_predictor("paper").needs_tables
    with pytest.raises(UsageError, match="unknown predictor"):
        R.get_predictor("nope")
    with pytest.raises(ValueError):
        R.register_predictor(R.Predictor("paper", lambda d, k, t: None, "duplicate"))


def test_a_new_predictor_reaches_rows_and_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering one function is all it takes: predict_point and the sweep's CSV columns carry it."""
    def half(dense: R.DenseMetrics, dim: int, tables: object) -> R.Prediction:
        return R.from_dloss(dense, 0.5 * (1 - dim / dense.hidden))

    monkeypatch.setattr(R, "_REGISTRY", dict(R._REGISTRY))  # registration undone after the test
    R.register_predictor(R.Predictor("half", half, "a test predictor"))
    row = predict_point(DENSE, 32)
    assert row[schema.pred("ppl", "half")] == pytest.approx(20.0 * math.exp(0.25))
    assert row[schema.dloss("half")] == pytest.approx(0.25)
    assert schema.pred("ppl", "paper") in row and schema.pred("ppl", "fisher") not in row  # no tables given
    cols = columns(SweepConfig())
    assert {schema.pred("ppl", "half"), schema.err("half"), schema.pred("mc_acc", "half")} <= set(cols)


def test_from_dloss_couplings() -> None:
    p = R.from_dloss(DENSE, math.log(2))
    assert p.ppl == pytest.approx(40.0) and p.dloss == pytest.approx(math.log(2))
    assert p.acc == pytest.approx(0.4 ** (math.log(40) / math.log(20)))
    assert p.mc_acc == pytest.approx(0.25 + (0.9 - 0.25) * p.acc / 0.4)
    no_chance = R.from_dloss(R.DenseMetrics(ppl=20.0, acc=0.4, hidden=64, mc_acc=0.9), 0.0)
    assert no_chance.mc_acc == pytest.approx(0.9) and no_chance.ppl == pytest.approx(20.0)
    assert R.from_dloss(R.DenseMetrics(ppl=20.0, acc=0.4, hidden=64), 0.1).mc_acc is None
