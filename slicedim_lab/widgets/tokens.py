"""The tokens explorer: which tokens a kept width d' hurts, over a `FlowSession` (`FlowSession.tokens`: the
token table at d', made once per d' and cached) drawn by the `viz.tokens` functions."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as W
import pandas as pd

from ..flow.session import FlowSession
from ..flow.tokens import KINDS, token_summary
from ..viz import tokens as vt
from .base import Explorer, counted, live, redraw, slider

ALL = "all kinds"


def tokens_status(table: pd.DataFrame, dim: int, seconds: float) -> str:
    """One line over the token table: mean loss dense → sliced, the share of tokens that got worse and of
    top-1 predictions that changed."""
    worse = float((table["dloss"] > 0).mean())
    flipped = float((table["top_dense"] != table["top_sliced"]).mean())
    return (f"<b>d' = {dim}</b>: mean loss {table['loss_dense'].mean():.3f} → "
            f"<b>{table['loss_sliced'].mean():.3f}</b> nats over {len(table)} tokens; {worse:.0%} of them "
            f"got worse, {flipped:.0%} changed their top-1 prediction ({seconds:.1f} s). Hover a token for "
            "its predictions and the site where its loss increase entered.")


def tokens_explorer(session: FlowSession, dim: int, basis: str = "dense", nodes: int = 1,
                    vmax: float = 2.0, top: int = 20) -> Explorer:
    """A d' slider over the token table: the eval text coloured by each token's loss increase (hover: both
    models' top-1 prediction and the site where the damage entered), the worst tokens (sorted and filtered
    by kind), the loss increase by token kind and sliced against dense loss per token. A d' move costs one
    emulated forward and the decomposition's gradient passes (`nodes`); the other controls are instant."""
    D = session.D
    dim_s = slider(dim, 8, D, "d'", step=8 if D >= 64 else 1)
    kind_s = W.Dropdown(options=[ALL, *KINDS], value=ALL, description="kind")
    sort_s = W.Dropdown(options=list(vt.SORTS), value="largest increase", description="sort")
    top_s = slider(top, 5, 100, "rows", step=5)
    status, text, worst = W.HTML(), W.HTML(), W.HTML()
    figures = {"kinds": live(), "scatter": live()}
    ex = Explorer(box=W.VBox([dim_s, W.HBox([kind_s, sort_s]), status, text, figures["kinds"], top_s, worst,
                              figures["scatter"]]),
                  controls={"dim": dim_s, "kind": kind_s, "sort": sort_s, "rows": top_s}, figures=figures,
                  outputs={"status": status, "text": text, "worst": worst})

    def draw_view(_: Any = None) -> None:
        t, d = ex.state["table"], ex.state["dim"]
        kind = None if kind_s.value == ALL else kind_s.value
        text.value = vt.token_html(t, vmax, kind)
        worst.value = vt.worst_tokens_html(t, int(top_s.value), kind, sort_s.value)
        redraw(figures["scatter"], vt.token_scatter_figure(t, kind, d))
        ex.state["worst"] = vt.worst_tokens(t, int(top_s.value), kind, sort_s.value)

    def draw_dim(_: Any = None) -> None:
        d = int(dim_s.value)
        status.value = f"<i>computing d' = {d}…</i>"
        t0 = time.perf_counter()
        t = session.tokens(d, basis, nodes)
        summary = token_summary(t)
        ex.state.update(dim=d, table=t, summary=summary, seconds=time.perf_counter() - t0)
        status.value = tokens_status(t, d, ex.state["seconds"])
        redraw(figures["kinds"], vt.token_kinds_figure(summary, d))
        draw_view()

    dim_s.observe(counted(ex, draw_dim), names="value")
    view_cb = counted(ex, draw_view)
    for c in (kind_s, sort_s, top_s):
        c.observe(view_cb, names="value")
    draw_dim()
    return ex
