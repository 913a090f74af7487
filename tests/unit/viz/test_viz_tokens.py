"""The token views from a hand-made token table (no model): colours by loss increase, the hover card, the
kind filter, escaping, the worst-tokens order, the by-kind bars and the scatter."""

from __future__ import annotations

import pandas as pd
import pytest

from slicedim_lab.flow.tokens import TOKEN_COLUMNS, token_summary
from slicedim_lab.viz import style
from slicedim_lab.viz import tokens as vt


@pytest.fixture
def table() -> pd.DataFrame:
    rows = [("def", "word", 1.0, 3.0), (" <b>", "punctuation", 2.0, 1.5), ("_x", "identifier", 0.5, 0.5),
            ("\n", "whitespace", 1.0, 5.0)]
    return pd.DataFrame([{
        "basis": "dense", "dim": 48, "window": 0, "pos": i + 1, "token": tok, "kind": kind, "context": "ab",
        "loss_dense": ld, "loss_sliced": ls, "dloss": ls - ld, "p_dense": 0.1, "p_sliced": 0.2,
        "top_dense": "x", "p_top_dense": 0.5, "top_sliced": "&", "p_top_sliced": 0.25, "site": 3,
        "site_label": "L1 attn", "site_share": 0.6} for i, (tok, kind, ld, ls) in enumerate(rows)],
        columns=TOKEN_COLUMNS)


def test_colours_follow_the_loss_increase() -> None:
    assert vt.dloss_color(2.0, 2.0) == style.translucent(style.SLICED_COLOR, 0.85)
    assert vt.dloss_color(-1.0, 2.0) == style.translucent(style.DENSE_COLOR, 0.425)
    assert vt.dloss_color(0.0, 2.0).endswith(",0.0)") and vt.dloss_color(9.0, 2.0) == vt.dloss_color(2.0, 2.0)


def test_token_html(table: pd.DataFrame) -> None:
    page = vt.token_html(table, vmax=2.0)
    assert page.count("class='sdl-tok'") == 4 and "[window 0]" in page
    assert "&lt;b&gt;" in page and " <b>" not in page  # token text escaped
    assert "loss 1.000 → 3.000 nats (Δ +2.000)" in page
    assert "entered at site 3 (L1 attn, 60% of the charges)" in page
    assert "sliced top-1: &#x27;&amp;&#x27;" in page  # the hover card escaped for its attribute
    assert "↵" in page  # a newline token stays visible
    only = vt.token_html(table, kind="identifier")
    assert only.count("class='sdl-tok'") == 1 and only.count("class='sdl-tok sdl-off'") == 3


def test_worst_tokens(table: pd.DataFrame) -> None:
    assert vt.worst_tokens(table, 2)["token"].tolist() == ["\n", "def"]
    assert vt.worst_tokens(table, 1, sort="largest decrease")["token"].tolist() == [" <b>"]
    assert vt.worst_tokens(table, 9, kind="identifier")["token"].tolist() == ["_x"]
    assert vt.worst_tokens(table, 9, sort="text order")["pos"].tolist() == [1, 2, 3, 4]
    html = vt.worst_tokens_html(table, 2)
    assert html.count("<tr>") == 3 and "+4.000" in html and "L1 attn (60%)" in html


def test_kind_and_scatter_figures(table: pd.DataFrame) -> None:
    bars = vt.token_kinds_figure(token_summary(table), dim=48)
    assert [list(t.x) for t in bars.data] == [["word", "identifier", "punctuation", "whitespace"]] * 2
    assert list(bars.data[0].y) == [2.0, 0.0, -0.5, 4.0] and "d' = 48" in bars.layout.title.text
    assert sum(bars.data[1].y) == pytest.approx(1.0)
    scatter = vt.token_scatter_figure(table, kind="word")
    kinds = {t.name: t for t in scatter.data}
    assert set(kinds) == {"word", "punctuation", "identifier", "whitespace", "no change"}
    assert kinds["word"].marker.opacity > kinds["identifier"].marker.opacity
    assert list(kinds["word"].x) == [1.0] and list(kinds["word"].y) == [3.0]
