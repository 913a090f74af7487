"""The quickstart notebook's pieces: a table and bars of dense vs sliced metrics, and a chat box that asks
every model the same prompt."""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go
import torch.nn as nn
from transformers import PreTrainedTokenizerBase

from ..eval.generate import generate_text
from ..eval.metrics import EvalResult
from ..viz import quick
from ..viz.style import TABLE_CSS
from .base import Explorer, counted


def compare_table(results: dict[str, EvalResult], params: dict[str, int]) -> pd.DataFrame:
    """One row per named model: perplexity, top-1 accuracy, parameters, and change against the first row."""
    base = next(iter(results.values()))
    base_params = next(iter(params.values()))
    rows = {
        name: {
            "perplexity": r.ppl,
            "ppl vs first": f"{r.ppl / base.ppl - 1:+.1%}",
            "top-1 accuracy": r.accuracy,
            "parameters (M)": params[name] / 1e6,
            "params vs first": f"{params[name] / base_params - 1:+.1%}",
            "eval seconds": r.seconds,
        }
        for name, r in results.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index").round(4)


def metrics_figure(results: dict[str, EvalResult], params: dict[str, int]) -> go.Figure:
    """Bars of perplexity, next-token top-1 accuracy and parameter count for each named model
    (`viz.quick.metrics_figure` of their numbers)."""
    r0 = next(iter(results.values()))
    models = [{"name": n, "ppl": r.ppl, "accuracy": r.accuracy, "params": params[n]}
              for n, r in results.items()]
    return quick.metrics_figure(models, r0.windows, r0.seqlen)


def generation_explorer(
    models: dict[str, nn.Module], tokenizer: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int = 32
) -> Explorer:
    """A prompt box, a token slider and a Generate button; a click writes every model's greedy answer."""
    text = W.Textarea(value=prompt, description="prompt", layout=W.Layout(width="95%", height="60px"))
    tokens = W.IntSlider(value=max_new_tokens, min=4, max=128, step=4, description="new tokens")
    button = W.Button(description="Generate", button_style="primary", icon="play")
    answers = W.HTML(value="<i>click Generate</i>")
    ex = Explorer(box=W.VBox([text, W.HBox([tokens, button]), answers]),
                  controls={"prompt": text, "tokens": tokens, "generate": button}, figures={},
                  outputs={"answers": answers})

    def update(_: Any = None) -> None:
        answers.value = "<i>generating…</i>"
        rows = []
        for name, model in models.items():
            t0 = time.perf_counter()
            reply = generate_text(model, tokenizer, text.value, tokens.value)
            dt = time.perf_counter() - t0
            ex.state[name] = reply
            rows.append(f"<tr><td><b>{html.escape(name)}</b><br><small>{dt:.1f} s</small></td>"
                        f"<td style='text-align:left'>{html.escape(reply)}</td></tr>")
        answers.value = f"{TABLE_CSS}<table class='sdl-table'>{''.join(rows)}</table>"

    button.on_click(counted(ex, update))
    return ex
