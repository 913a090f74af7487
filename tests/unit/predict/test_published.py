"""The paper's perplexity law against published SliceGPT numbers (data/slicegpt_published.csv)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from slicedim_lab.predict.law import implied_kappa, kappa_ppl
from slicedim_lab.predict.paper import paper_ppl

DATA = Path(__file__).resolve().parents[3] / "data" / "slicegpt_published.csv"


def rows() -> list[dict]:
    with DATA.open() as f:
        return [dict(r, sparsity=float(r["sparsity"]), ppl=float(r["ppl"])) for r in csv.DictReader(f)]


def test_published_table_is_complete_and_monotone() -> None:
    by_model: dict[str, list[dict]] = {}
    for r in rows():
        by_model.setdefault(r["model"], []).append(r)
    assert set(by_model) == {"Llama-2-7B", "OPT-13B"}
    for rs in by_model.values():
        rs.sort(key=lambda r: r["sparsity"])
        assert rs[0]["sparsity"] == 0.0
        assert all(a["ppl"] < b["ppl"] for a, b in zip(rs, rs[1:]))


def test_slope_law_inverts_on_published_points() -> None:
    """On every published point (D/d' = 1/(1-s)), `implied_kappa` is the slope for which `kappa_ppl` gives
    back the measured perplexity, and κ = 1 is the paper's law (`paper_ppl`)."""
    D = 1000
    for model in ("Llama-2-7B", "OPT-13B"):
        rs = sorted((r for r in rows() if r["model"] == model), key=lambda r: r["sparsity"])
        ppl0 = rs[0]["ppl"]
        for r in rs[1:]:
            dim = round(D * (1 - r["sparsity"]))
            kappa = implied_kappa(ppl0, r["ppl"], D, dim)
            assert kappa_ppl(ppl0, D, dim, kappa, floor=0.0) == pytest.approx(r["ppl"], rel=1e-12)
            paper = paper_ppl(ppl0, D, dim)
            assert kappa_ppl(ppl0, D, dim, 1.0, floor=0.0) == pytest.approx(paper, rel=1e-12)
        assert math.isnan(implied_kappa(ppl0, ppl0, D, D))  # no slope at s = 0
