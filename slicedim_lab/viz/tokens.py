"""Which tokens suffer: pure functions of a token table (`flow.tokens.TOKEN_COLUMNS`, one row per predicted
eval token at one d') and of its roll-up by kind (`flow.tokens.token_summary`).

- `token_html`: the eval text with every token coloured by its loss increase (red: the sliced model is
  worse, blue: better; full colour at `vmax` nats), a hover card per token with the dense and the sliced
  model's top prediction and the site where the damage entered; tokens outside a kind filter stay grey;
- `worst_tokens_html`: the tokens sorted by loss increase (or decrease), with their context;
- `token_kinds_figure`: mean loss increase per token kind and each kind's share of the whole increase;
- `token_scatter_figure`: sliced against dense loss per token, by kind (hover: the token in its context).
The HTML is self-contained (inline CSS, no script), so it works in JupyterLab and in a static page alike.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style

KIND_COLORS = {"word": "#1f77b4", "word piece": "#17becf", "identifier": "#9467bd", "number": "#bcbd22",
               "punctuation": "#ff7f0e", "whitespace": "#7f7f7f"}
SORTS = {"largest increase": ("dloss", False), "largest decrease": ("dloss", True),
         "text order": (["window", "pos"], True)}
TOKEN_CSS = """<style>
.sdl-tokens {font-family: monospace; font-size: 12px; white-space: pre-wrap; line-height: 1.8;
  border: 1px solid #ddd; padding: 6px; max-height: 360px; overflow: auto}
.sdl-tok {position: relative; border-radius: 2px}
.sdl-tok.sdl-off {color: #aaa}
.sdl-tok:hover {outline: 1px solid #333}
.sdl-tok:hover::after {content: attr(data-tip); position: absolute; left: 0; top: 1.7em; z-index: 20;
  white-space: pre; background: #222; color: #fff; padding: 4px 6px; font-size: 11px; border-radius: 3px;
  line-height: 1.4; pointer-events: none}
.sdl-window {color: #888; font-style: italic}
</style>"""


def shown_text(text: str) -> str:
    """A token's text as shown inline: newlines marked (↵) and kept, tabs as →."""
    return text.replace("\n", "↵\n").replace("\t", "→\t")


def quoted(text: str) -> str:
    """A token's text for a hover card or a table cell: repr-like, one line."""
    return repr(text)[1:-1] if text.strip() else repr(text)


def dloss_color(dloss: float, vmax: float) -> str:
    """Red for a loss increase, blue for a decrease, transparent at 0, full colour at |dloss| ≥ vmax."""
    alpha = min(abs(dloss) / vmax, 1.0) * 0.85 if vmax > 0 else 0.0
    return style.translucent(style.SLICED_COLOR if dloss > 0 else style.DENSE_COLOR, round(alpha, 3))


def hover_card(row: pd.Series) -> str:
    """The hover text of one token row."""
    return (f"'{quoted(row['token'])}' ({row['kind']}), window {row['window']} position {row['pos']}\n"
            f"loss {row['loss_dense']:.3f} → {row['loss_sliced']:.3f} nats (Δ {row['dloss']:+.3f})\n"
            f"dense top-1: '{quoted(row['top_dense'])}' (p {row['p_top_dense']:.2f})\n"
            f"sliced top-1: '{quoted(row['top_sliced'])}' (p {row['p_top_sliced']:.2f})\n"
            f"entered at site {row['site']} ({row['site_label']}, {row['site_share']:.0%} of the charges)")


def token_html(table: pd.DataFrame, vmax: float = 2.0, kind: str | None = None) -> str:
    """The text of every window, each predicted token coloured by its loss increase (`dloss_color`) with a
    hover card (`hover_card`); with `kind`, tokens of other kinds are grey. Window starts are marked."""
    parts = [TOKEN_CSS, "<div class='sdl-tokens'>"]
    for w, rows in table.sort_values(["window", "pos"]).groupby("window", sort=True):
        parts.append(f"<span class='sdl-window'>[window {w}]</span> ")
        for _, r in rows.iterrows():
            text = html.escape(shown_text(r["token"]))
            if kind is not None and r["kind"] != kind:
                parts.append(f"<span class='sdl-tok sdl-off'>{text}</span>")
                continue
            tip = html.escape(hover_card(r), quote=True)
            parts.append(f"<span class='sdl-tok' style='background:{dloss_color(r['dloss'], vmax)}' "
                         f"data-tip=\"{tip}\">{text}</span>")
        parts.append("\n\n")
    parts.append("</div>")
    return "".join(parts)


def worst_tokens(table: pd.DataFrame, n: int = 20, kind: str | None = None,
                 sort: str = "largest increase") -> pd.DataFrame:
    """The first `n` rows of `table` (of one `kind`, if given) in the order `sort` (a key of `SORTS`)."""
    t = table if kind is None else table[table["kind"] == kind]
    by, ascending = SORTS[sort]
    return t.sort_values(by, ascending=ascending).head(n)


def worst_tokens_html(table: pd.DataFrame, n: int = 20, kind: str | None = None,
                      sort: str = "largest increase") -> str:
    """`worst_tokens` as an HTML table: context and token, kind, losses, both top-1 predictions, the site."""
    head = ("<tr><th>#</th><th>context → <b>token</b></th><th>kind</th><th>loss dense</th><th>sliced</th>"
            "<th>Δ</th><th>dense top-1</th><th>sliced top-1</th><th>entered at</th></tr>")
    body = []
    for rank, (_, r) in enumerate(worst_tokens(table, n, kind, sort).iterrows(), 1):
        ctx = html.escape(quoted(r["context"])[-40:])
        body.append(
            f"<tr><td>{rank}</td><td><code>{ctx}<b style='background:{dloss_color(r['dloss'], 2.0)}'>"
            f"{html.escape(quoted(r['token']))}</b></code></td><td>{r['kind']}</td>"
            f"<td>{r['loss_dense']:.3f}</td><td>{r['loss_sliced']:.3f}</td><td>{r['dloss']:+.3f}</td>"
            f"<td><code>{html.escape(quoted(r['top_dense']))}</code> {r['p_top_dense']:.2f}</td>"
            f"<td><code>{html.escape(quoted(r['top_sliced']))}</code> {r['p_top_sliced']:.2f}</td>"
            f"<td>{html.escape(r['site_label'])} ({r['site_share']:.0%})</td></tr>")
    return f"{style.TABLE_CSS}<table class='sdl-table'>{head}{''.join(body)}</table>"


def token_kinds_figure(summary: pd.DataFrame, dim: int | None = None) -> go.Figure:
    """Per token kind: the mean loss increase per token (left) and the kind's share of the summed increase
    (right), each bar labelled with its number of tokens."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("mean loss increase per token (nats)",
                                                        "share of the whole loss increase"))
    colors = [KIND_COLORS.get(k, style.NEUTRAL_COLOR) for k in summary["kind"]]
    counts = [f"{n} tokens" for n in summary["tokens"]]
    fig.add_trace(go.Bar(x=summary["kind"].tolist(), y=summary["dloss_mean"].tolist(), marker_color=colors,
                         hovertext=counts, name="mean Δloss"), row=1, col=1)
    fig.add_trace(go.Bar(x=summary["kind"].tolist(), y=summary["dloss_share"].tolist(), marker_color=colors,
                         hovertext=counts, name="share of Δloss"), row=1, col=2)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    at = "" if dim is None else f" at d' = {dim}"
    return style.layout(fig, f"which kinds of token suffer{at}", showlegend=False)


def token_scatter_figure(table: pd.DataFrame, kind: str | None = None, dim: int | None = None) -> go.Figure:
    """Sliced against dense next-token loss, one point per token, one trace per kind (hover: the token in
    its context); with `kind`, the other kinds are faded. The diagonal is "no change"."""
    fig = go.Figure()
    for k, sel in table.groupby("kind", sort=False):
        hover = [f"{html.escape(quoted(c)[-30:])}<b>{html.escape(quoted(t))}</b><br>Δ {d:+.3f} nats, "
                 f"{html.escape(s)}" for c, t, d, s in zip(sel["context"], sel["token"], sel["dloss"],
                                                           sel["site_label"])]
        fig.add_trace(go.Scatter(
            x=sel["loss_dense"].tolist(), y=sel["loss_sliced"].tolist(), mode="markers", name=str(k),
            marker={"size": 5, "color": KIND_COLORS.get(str(k), style.NEUTRAL_COLOR),
                    "opacity": 0.8 if kind in (None, k) else 0.12},
            hovertext=hover, hoverinfo="text"))
    top = float(max(table["loss_dense"].max(), table["loss_sliced"].max(), 1.0)) if len(table) else 1.0
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="no change",
                             line={"color": "black", "dash": "dot", "width": 1}, hoverinfo="skip"))
    at = "" if dim is None else f" at d' = {dim}"
    return style.layout(fig, f"next-token loss per token: sliced against dense{at}",
                        xaxis_title="dense loss (nats)", yaxis_title="sliced loss (nats)")
