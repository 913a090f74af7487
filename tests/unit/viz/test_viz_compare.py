"""Two models on one figure from hand-made tables (no model): relative axes, the energy discarded at each
model's own width, measured and predicted perplexity ratios, a colour per model."""

from __future__ import annotations

import pandas as pd
import pytest

from slicedim_lab import schema
from slicedim_lab.viz import compare as vc


def spectra(model: str, hidden: int, sites: int) -> pd.DataFrame:
    """Spectrum rows: share of direction i ∝ 2^-i at every site (retained = cumulative share)."""
    rows = []
    for s in range(sites):
        w = [2.0 ** -(i + s) for i in range(hidden)]
        total, cum = sum(w), 0.0
        for i, v in enumerate(w):
            cum += v / total
            rows.append({"model": model, "site": s, "layer": (s - 1) // 2, "index": i + 1, "share": v / total,
                         "retained": cum})
    return pd.DataFrame(rows)


@pytest.fixture
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    sp = pd.concat([spectra("small", 8, 5), spectra("wide", 16, 7)], ignore_index=True)
    measured = pd.DataFrame([["small", 6, 0.25, 12.0, 10.0], ["wide", 8, 0.5, 30.0, 20.0]],
                            columns=vc.MEASURED_COLUMNS)
    curves = pd.DataFrame({"dim": [4, 6, 8], schema.pred("ppl", "paper"): [20.0, 13.0, 10.0],
                           schema.pred("ppl", "fisher"): [15.0, None, 10.0]})
    predicted = vc.predicted_rows(curves, "small", 8, 10.0, ["paper", "fisher", "absent"])
    return sp, measured, predicted


def test_predicted_rows(tables) -> None:
    _, _, predicted = tables
    assert list(predicted.columns) == vc.PREDICTED_COLUMNS
    assert predicted.groupby("predictor").size().to_dict() == {"fisher": 2, "paper": 3}  # NaN: no row
    assert predicted.loc[predicted["dim"] == 4, "sparsity"].tolist() == [0.5, 0.5]


def test_discarded_along_depth() -> None:
    sp = spectra("m", 8, 3)
    lost = vc.discarded_along_depth(sp, 6)
    assert lost["depth"].tolist() == [0.0, 0.5, 1.0]
    expected = 1 - sp[(sp["site"] == 0) & (sp["index"] == 6)]["retained"].item()
    assert lost["discarded"][0] == pytest.approx(expected)
    assert (vc.discarded_along_depth(sp, 8)["discarded"] == 0).all()  # full width discards nothing


def test_two_models_figure(tables) -> None:
    sp, measured, predicted = tables
    fig = vc.two_models_figure(sp, measured, predicted, {"small": 6, "wide": 8}, 0.25)
    names = [t.name for t in fig.data]
    assert names == ["small (D = 8)", "small: d' = 6", "small: predicted (paper)",
                     "small: predicted (fisher)", "small: measured", "wide (D = 16)", "wide: d' = 8",
                     "wide: measured"]
    by = {t.name: t for t in fig.data}
    assert by["small (D = 8)"].line.color != by["wide (D = 16)"].line.color
    assert by["small: measured"].marker.color == by["small (D = 8)"].line.color
    assert list(by["wide (D = 16)"].x)[-1] == 1.0  # direction / D
    assert list(by["small: measured"].y) == [1.2] and list(by["wide: measured"].y) == [1.5]  # PPL / dense PPL
    assert by["small: predicted (paper)"].line.dash != by["small: predicted (fisher)"].line.dash
    assert [t.xaxis for t in fig.data[:3]] == ["x", "x2", "x3"]
    wide_lost = vc.discarded_along_depth(sp[sp["model"] == "wide"], 8)
    assert list(by["wide: d' = 8"].y) == pytest.approx(wide_lost["discarded"].tolist())
    assert "s = 0.25" in fig.layout.annotations[1].text
    assert fig.layout.yaxis3.type == "log" and fig.layout.yaxis3.minorloglabels == "complete"  # never 1 tick
