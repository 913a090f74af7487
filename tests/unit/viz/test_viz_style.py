"""Colours and visibility come from the predictor registry: one colour per predictor, stable, `paper` the
same everywhere, shown predictors drawn and the others in the legend."""

from __future__ import annotations

from slicedim_lab.predict.registry import predictor_names, shown_names
from slicedim_lab.viz import style


def test_every_registered_predictor_has_its_own_colour() -> None:
    names = predictor_names()
    colors = [style.predictor_color(p) for p in names]
    assert len(set(colors)) == len(names)
    assert style.MEASURED_COLOR not in colors and not set(colors) & set(style.ESTIMATOR_COLORS.values())
    assert colors == [style.predictor_color(p) for p in names]  # stable across calls


def test_paper_keeps_the_first_palette_colour() -> None:
    assert predictor_names()[0] == "paper"
    assert style.predictor_color("paper") == style.PREDICTOR_PALETTE[0] == "#d62728"


def test_unknown_predictor_is_grey_not_an_error() -> None:
    assert style.predictor_color("not_registered") == style.UNKNOWN_COLOR


def test_visibility_follows_the_registry() -> None:
    shown = set(shown_names())
    assert shown and shown != set(predictor_names())
    for p in predictor_names():
        assert style.visibility(p) == (True if p in shown else "legendonly")


def test_log_value_makes_gaps_for_non_positive_values() -> None:
    assert [style.log_value(v) for v in (0.5, 0.0, -1.0, None)] == [0.5, None, None, None]
