"""The widgets draw the report's figures: same trace names, colours and visibility from the same tidy data;
a redraw updates a live figure in place and keeps the user's legend choices; the explorers' controls move
their figures (no model: the sweep explorer runs over a stand-in runner)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import plotly.graph_objects as go
import pytest

from slicedim_lab import schema
from slicedim_lab import widgets as sw
from slicedim_lab.predict.fisher import FisherTables
from slicedim_lab.predict.registry import DenseMetrics, predictor_names
from slicedim_lab.viz import report, style
from slicedim_lab.widgets.base import live, redraw


def style_of(fig) -> dict:
    """name → (colour, visible) of every predictor curve of a figure."""
    preds = {style.predicted_name(p) for p in predictor_names()}
    return {t.name: (t.line.color, t.visible) for t in fig.data if t.name in preds}


@dataclass
class StandInRunner:
    """What `sweep_explorer` reads of a `SweepRunner`; `measure` answers from a fixed perplexity law."""

    dense: DenseMetrics
    tables: FisherTables
    make_row: object
    ours: object = None
    rows: list[dict] = field(default_factory=list)
    cfg: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(basis="interleaved",
                                                                         round_interval=8))

    @property
    def hidden(self) -> int:
        return self.dense.hidden

    def measured(self) -> dict[int, dict]:
        return {int(r["dim"]): r for r in self.rows}

    @property
    def stats(self) -> dict:
        return {"fisher": self.tables, "jvp": self.ours}

    def cover(self, dims) -> None:  # the stand-in's tables answer everywhere already
        pass

    def measured_ppl(self) -> dict[int, float]:
        return {d: r[schema.measured("ppl")] for d, r in self.measured().items()}

    def measure(self, dim: int) -> dict:
        row = {**self.make_row(self.dense, self.tables, dim, 12.0 * 64 / dim, 0.4 * dim / 64), "seconds": 1.0}
        self.rows = [r for r in self.rows if r["dim"] != dim] + [row]
        return row


def test_report_and_sweep_explorer_draw_the_same_predictor_traces(dense, tables, rows, make_row) -> None:
    figs = report._figures(rows, dense, {"fisher": tables})
    runner = StandInRunner(dense, tables, make_row, rows=list(rows))
    ex = sw.sweep_explorer(runner, dim=40)
    for k, metric in enumerate(("ppl", "acc")):
        assert style_of(figs[k]) == style_of(ex.figures[metric]) != {}
        assert style_of(figs[k])[style.predicted_name("paper")][0] == style.predictor_color("paper")
    err_names = [t.name for t in figs[2].data]
    assert err_names == [t.name for t in ex.figures["error"].data]
    assert [t.marker.color for t in figs[2].data] == [t.marker.color for t in ex.figures["error"].data]


def test_report_renders_from_a_sweep_folder(tmp_path, dense, tables, rows) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "dense.json").write_text(json.dumps({"ppl": dense.ppl, "acc": dense.acc}))
    settings = {"model": "m", "corpus": "c", "basis": "interleaved", "cal_samples": 2, "cal_seqlen": 8,
                "eval_seqlen": 8, "max_eval_windows": 2}
    (tmp_path / "settings.json").write_text(json.dumps({"settings": settings}))
    tables.save(tmp_path / "fisher.pt")
    html = report.write_report(tmp_path).read_text()
    assert "PPL ours" in html and f"{rows[1][schema.pred('ppl', 'fisher_semi')]:.4g}" in html
    assert html.count('class="plotly-graph-div"') == 4  # ppl, top-1, errors, sites


def test_redraw_updates_in_place_and_keeps_legend_choices() -> None:
    first = go.Figure([go.Scatter(x=[1, 2], y=[3, 4], name="a", text=["p", "q"]),
                       go.Bar(x=[1], y=[1], name="b")])
    first.update_layout(title="one", yaxis_range=[0, 1], shapes=[style.cursor(1)])
    w = live(first)
    w.data[0].visible = "legendonly"  # a legend click in the front end
    second = go.Figure([go.Scatter(x=[1, 2, 3], y=[5, 6, 7], name="a"), go.Bar(x=[2], y=[2], name="b")])
    second.update_layout(title="two")
    redraw(w, second)
    assert list(w.data[0].y) == [5, 6, 7] and w.data[0].visible == "legendonly"
    assert w.data[0].text is None  # a property the new figure lacks is cleared, not left stale
    assert w.layout.title.text == "two" and w.layout.yaxis.range is None and not w.layout.shapes
    third = go.Figure([go.Scatter(x=[0], y=[0], name="c")])
    redraw(w, third)  # another structure: traces replaced
    assert [t.name for t in w.data] == ["c"]


def test_sweep_explorer_slider_and_measure_button(dense, tables, make_row) -> None:
    runner = StandInRunner(dense, tables, make_row)
    ex = sw.sweep_explorer(runner, dim=40, min_dim=16)
    ppl = ex.figures["ppl"]
    assert "measured" not in [t.name for t in ppl.data] and not ex.figures["error"].data
    before = list(ppl.data[-1].x)
    ex.controls["dim"].value = 48
    assert list(ppl.data[-1].x) != before and ex.state["dim"] == 48 and ex.calls == 1
    ex.controls["measure"].click()
    meas = {t.name: t for t in ppl.data}["measured"]
    assert list(meas.x) == [48] and list(meas.y) == [pytest.approx(16.0)]
    names = [t.name for t in ex.figures["error"].data]
    answered = [p for p in predictor_names() if runner.rows[0].get(schema.err(p)) is not None]
    assert names[: len(answered)] == answered  # registry order, every predictor with an answer here
    assert "PPL error" in ex.outputs["table"].value and "+" in ex.outputs["table"].value
    assert sw.sweep_table(runner)["dim"].tolist() == [48]


def test_sweep_explorer_target_box_finds_the_width(dense, tables, make_row) -> None:
    """PPL = 12·64/d' on D = 64: `ppl<=1.5x` (18) is met at 48 (16) and missed at 40 (19.2); the box measures
    at most three widths, prints the answer and moves the slider there; a malformed target is one line."""
    runner = StandInRunner(dense, tables, make_row)
    ex = sw.sweep_explorer(runner, dim=32, min_dim=16)
    ex.controls["target"].value = "ppl<=1.5x"
    ex.controls["find"].click()
    assert ex.state["target_answer"] == 48 and ex.controls["dim"].value == 48
    assert len(runner.rows) <= 3 and {40, 48} <= {r["dim"] for r in runner.rows}
    assert "answer: d'=48" in ex.outputs["answer"].value
    ex.controls["target"].value = "ppl>=2"
    ex.controls["find"].click()
    assert "malformed target" in ex.outputs["answer"].value and ex.controls["dim"].value == 48


def test_theory_explorer_moves_the_slider_marker_and_site_bars(dense, tables) -> None:
    ex = sw.theory_explorer(dense, tables, measured={48: 14.0}, dim=40, min_dim=16)
    ppl, sites = ex.figures["ppl"], ex.figures["sites"]
    first = list(sites.data[0].y)
    ex.controls["dim"].value = 32
    assert list(ppl.data[-1].x) == [32] * len(ppl.data[-1].x) and ppl.layout.shapes[0].x0 == 32
    assert list(sites.data[0].y) != first
    assert ex.state[schema.pred("ppl", "fisher")] == pytest.approx(ppl.data[-1].y[1])
    ex.controls["dim"].value = 48
    assert "measured" in ex.outputs["table"].value and ex.calls == 2


def test_save_run_writes_every_figure_and_a_record(tmp_path, dense, tables) -> None:
    ex = sw.theory_explorer(dense, tables, dim=40, min_dim=16)
    ex.controls["dim"].value = 32
    law = sw.paper_law_figure(dense.ppl, dense.hidden, {32: 30.0})
    record = sw.save_run(tmp_path, "nb", explorers={"theory": ex}, figures={"law": law}, extra={"dim": 32})
    assert record["callbacks"] == 1 and record["dim"] == 32
    assert sorted(record["figures"]) == ["nb_law.html", "nb_theory_ppl.html", "nb_theory_sites.html"]
    assert (tmp_path / "plotly.min.js").exists() and json.loads((tmp_path / "nb.json").read_text()) == record
