"""schema.py: one place builds and parses every column name."""

from __future__ import annotations

from slicedim_lab import schema


def test_names_round_trip() -> None:
    cols = [schema.measured("ppl"), schema.pred("ppl", "paper"), schema.err("paper"),
            schema.pred("ppl", "x_y"), schema.pred("acc", "paper"), schema.est("calibration"),
            schema.est_err("calibration")]
    assert cols[:3] == ["ppl_measured", "ppl_pred_paper", "ppl_err_paper"]
    assert schema.predictors_in(cols) == ["paper", "x_y"]
    assert schema.predictors_in(cols, "acc") == ["paper"]
    assert schema.predictors_in([schema.pred("mc_acc", "q")], "acc") == []  # mc_acc is not acc


def test_derived_columns() -> None:
    derived = [schema.pred(m, "p") for m in schema.METRICS] + [schema.dloss("p"), schema.err("p"),
                                                                 schema.est_err("calibration")]
    kept = [schema.measured(m) for m in schema.METRICS] + [schema.est("calibration"), "dim", "cal_loss"]
    assert all(schema.is_derived(c) for c in derived)
    assert not any(schema.is_derived(c) for c in kept)
