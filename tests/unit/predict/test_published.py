"""The paper's perplexity law against published SliceGPT numbers (data/slicegpt_published.csv)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

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


def test_paper_law_on_published_points() -> None:
    """With D/d' = 1/(1-s), the law's error and the slope kappa each point implies (kappa = 1 is the law)."""
    for model in ("Llama-2-7B", "OPT-13B"):
        rs = sorted((r for r in rows() if r["model"] == model), key=lambda r: r["sparsity"])
        ppl0 = rs[0]["ppl"]
        for r in rs[1:]:
            s = r["sparsity"]
            pred = paper_ppl(ppl0, 1000, round(1000 * (1 - s)))
            kappa = (1 - math.log(ppl0) / math.log(r["ppl"])) / s
            err = 100 * (pred / r["ppl"] - 1)
            print(f"{model:<11} s={s:.2f} ppl {r['ppl']:6.2f} law {pred:6.2f} ({err:+5.1f}%) κ {kappa:.2f}")
            assert err > 0 and 0 < kappa < 1  # the law over-predicts every published point
