"""Widget builders and small helpers for the notebooks in `notebooks/`: plotly FigureWidgets driven by
ipywidgets controls, over the package's own computations.

Every builder returns an `Explorer`: display it (or `.box`), read its `.controls` and `.figures` by name,
and `.calls`, the number of callback runs so far. Setting a control's value from code
(`ex.controls["dim"].value = 432`) or clicking a button from code (`ex.controls["measure"].click()`) runs
the same callbacks a user's drag or click does — that is how the notebooks run headless
(`INTERACTIVE=False`), and `save_run` writes their figures (HTML) and a JSON record of what ran.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn as nn
from jaxtyping import Float, Int
from plotly.subplots import make_subplots
from torch import Tensor

from .calibrate import SitePCA, random_rotation, site_name
from .metrics import EvalResult

DENSE_COLOR, SLICED_COLOR, PAPER_COLOR, FISHER_COLOR = "#1f77b4", "#d62728", "#7f7f7f", "#2ca02c"
FIG_HEIGHT = 360


# ----------------------------------------------------------------------------- explorers and saving


@dataclass
class Explorer:
    """A widget box with named controls, plotly FigureWidgets and output widgets; `calls` counts callbacks."""

    box: W.Box
    controls: dict[str, W.Widget]
    figures: dict[str, go.FigureWidget]
    outputs: dict[str, W.Widget] = field(default_factory=dict)
    calls: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.box._repr_mimebundle_(**kwargs)

    def save(self, folder: str | Path, prefix: str) -> list[Path]:
        """Write every figure to `folder/<prefix>_<name>.html` (plotly.js once per folder, offline)."""
        return save_figures(folder, {f"{prefix}_{k}": v for k, v in self.figures.items()})


def _counted(ex: Explorer, update: Callable[..., None]) -> Callable[..., None]:
    """Wrap a callback so that every run is counted in `ex.calls`."""

    def run(*args: Any) -> None:
        update(*args)
        ex.calls += 1

    return run


def save_figures(folder: str | Path, figures: dict[str, go.Figure]) -> list[Path]:
    """Write each figure to `folder/<name>.html`; plotly.js goes once into `folder/plotly.min.js`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = folder / f"{name}.html"
        go.Figure(fig).write_html(path, include_plotlyjs="directory", full_html=True)
        paths.append(path)
    return paths


def save_run(
    folder: str | Path,
    notebook: str,
    explorers: dict[str, Explorer] | None = None,
    figures: dict[str, go.Figure] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save every explorer's and figure's plots under `folder` and write `folder/<notebook>.json`:
    `{"notebook", "callbacks" (sum of the explorers' `calls`), "figures" (file names), **extra}`."""
    explorers, figures = explorers or {}, figures or {}
    paths = save_figures(folder, {f"{notebook}_{k}": v for k, v in figures.items()})
    for name, ex in explorers.items():
        paths += ex.save(folder, f"{notebook}_{name}")
    record = {
        "notebook": notebook,
        "callbacks": sum(ex.calls for ex in explorers.values()),
        "callbacks_by_explorer": {k: ex.calls for k, ex in explorers.items()},
        "figures": [p.name for p in paths],
        **(extra or {}),
    }
    (Path(folder) / f"{notebook}.json").write_text(json.dumps(record, indent=1, default=str))
    return record


def show(obj: Any, interactive: bool) -> None:
    """Display a widget or figure in a live notebook; headless (`interactive=False`) show a plain figure
    (so the executed notebook still holds a static plot) and skip widget boxes."""
    from IPython.display import display

    if isinstance(obj, Explorer):
        if interactive:
            display(obj.box)
        else:
            for fig in obj.figures.values():
                display(go.Figure(fig))
    else:
        display(obj)


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    fig.update_layout(title=title, height=FIG_HEIGHT, margin=dict(l=60, r=20, t=60, b=50),
                      template="plotly_white", legend=dict(orientation="h", y=-0.2), **kwargs)
    return fig


# ----------------------------------------------------------------------------- 00 quickstart


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
    """Bars of perplexity, next-token top-1 accuracy and parameter count for each named model."""
    names = list(results)
    colors = [DENSE_COLOR if i == 0 else SLICED_COLOR for i in range(len(names))]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("perplexity (lower is better)", "top-1 accuracy",
                                                        "parameters (millions)"))
    cols = [
        [results[n].ppl for n in names],
        [results[n].accuracy for n in names],
        [params[n] / 1e6 for n in names],
    ]
    fmts = ["{:.2f}", "{:.3f}", "{:.1f}"]
    for j, (vals, fmt) in enumerate(zip(cols, fmts)):
        fig.add_trace(go.Bar(x=names, y=vals, marker_color=colors, text=[fmt.format(v) for v in vals],
                             textposition="auto", showlegend=False), row=1, col=j + 1)
    r0 = next(iter(results.values()))
    return _layout(fig, f"dense vs sliced on {r0.windows} windows × {r0.seqlen} tokens")


@torch.no_grad()
def generate_text(
    model: nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int = 32, chat: bool = True
) -> str:
    """Greedy continuation of `prompt` (wrapped in the tokenizer's chat template when it has one)."""
    if chat and getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
    else:
        enc = tokenizer(prompt, return_tensors="pt")
    dev = next(model.parameters()).device
    enc = {k: v.to(dev) for k, v in enc.items()}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def generation_explorer(
    models: dict[str, nn.Module], tokenizer: Any, prompt: str, max_new_tokens: int = 32
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
        answers.value = f"<table>{''.join(rows)}</table>"

    button.on_click(_counted(ex, update))
    return ex


def spectrum_explorer(
    pcas: Sequence[SitePCA | None], dims: Sequence[int] | None = None, dim: int | None = None, site: int = 1,
    title: str = "",
) -> Explorer:
    """Eigen-spectrum of one site (log scale, the cut at d' marked) and the retained energy of every site.

    With `dims` (one width per site, e.g. a `SliceResult`'s) the widths are fixed and only the site moves;
    otherwise a d' slider sets one width for all sites (dense PCA bases: no recalibration per move).
    Sites whose PCA is None (a full-width last site in its original basis) are skipped.
    """
    valid = [s for s, p in enumerate(pcas) if p is not None]
    D = pcas[valid[0]].eigvals.shape[0]
    site_s = W.SelectionSlider(options=[(f"{s}: {site_name(s)}", s) for s in valid],
                               value=site if site in valid else valid[0], description="site",
                               continuous_update=False, layout=W.Layout(width="60%"))
    dim_s = W.IntSlider(value=dim or D * 3 // 4, min=1, max=D, step=8 if D >= 64 else 1, description="d'",
                        continuous_update=False, layout=W.Layout(width="60%"))
    controls: dict[str, W.Widget] = {"site": site_s}
    if dims is None:
        controls["dim"] = dim_s
    spec = go.FigureWidget()
    spec.add_trace(go.Scatter(mode="lines", name="kept", line=dict(color=DENSE_COLOR)))
    spec.add_trace(go.Scatter(mode="lines", name="discarded", line=dict(color=SLICED_COLOR),
                              fill="tozeroy", fillcolor="rgba(214,39,40,0.15)"))
    _layout(spec, "", xaxis_title="eigen-direction (descending)", yaxis_title="eigenvalue",
            yaxis_type="log")
    energy = go.FigureWidget()
    energy.add_trace(go.Scatter(mode="lines+markers", name="retained energy", marker=dict(size=4),
                                line=dict(color=DENSE_COLOR)))
    energy.add_trace(go.Scatter(mode="markers", name="selected site",
                                marker=dict(size=12, color=SLICED_COLOR)))
    _layout(energy, "", xaxis_title="site (0 = embeddings, 2i+1 = after attn i, 2i+2 = after MLP i)",
            yaxis_title="fraction of energy kept")
    ex = Explorer(box=W.VBox([*controls.values(), W.HBox([spec, energy])]), controls=controls,
                  figures={"spectrum": spec, "energy": energy})

    def width(s: int) -> int:
        return int(dims[s]) if dims is not None else int(dim_s.value)

    def update(_: Any = None) -> None:
        s = site_s.value
        p = pcas[s]
        d = width(s)
        lam = p.eigvals.clamp_min(1e-12).tolist()
        idx = list(range(1, len(lam) + 1))
        kept = [float(pcas[v].retained_energy()[width(v) - 1]) for v in valid]
        ex.state.update(site=s, dim=d, retained=float(p.retained_energy()[d - 1]))
        with spec.batch_update():
            spec.data[0].x, spec.data[0].y = idx[:d], lam[:d]
            spec.data[1].x, spec.data[1].y = idx[d - 1:], lam[d - 1:]
            spec.layout.title = (f"{title}site {s} ({site_name(s)}): d' = {d} of {D} keeps "
                                 f"{ex.state['retained']:.4%} of the energy")
        with energy.batch_update():
            energy.data[0].x, energy.data[0].y = valid, kept
            energy.data[1].x, energy.data[1].y = [s], [ex.state["retained"]]
            energy.layout.title = (f"retained energy per site at d' = {d}" if dims is None
                                   else "retained energy per site at the sliced widths")

    cb = _counted(ex, update)
    for c in controls.values():
        c.observe(cb, names="value")
    update()
    return ex


# ----------------------------------------------------------------------------- 04 theory: live checks


def rmsnorm_invariance(x: Float[Tensor, "... d"], eps: float = 1e-5, seed: int = 0) -> dict[str, float]:
    """Check RMSNorm(xQ) = RMSNorm(x)Q for a seeded random orthogonal Q on real residuals `x` (float64):
    the max |difference| next to the max |RMSNorm(x)|, and ‖QᵀQ − I‖_max."""
    from .modeling_sliced import DimRMSNorm

    x = x.detach().double()
    D = x.shape[-1]
    q = random_rotation(D, seed)
    norm = DimRMSNorm(D, eps)
    lhs, rhs = norm(x @ q), norm(x) @ q
    return {
        "max_abs_diff": (lhs - rhs).abs().max().item(),
        "max_abs_value": rhs.abs().max().item(),
        "orthogonality_error": (q.T @ q - torch.eye(D, dtype=q.dtype)).abs().max().item(),
    }


@torch.no_grad()
def logit_gap(a: nn.Module, b: nn.Module, ids: Int[Tensor, "n pos"]) -> dict[str, float]:
    """Max |logits_a − logits_b| on `ids`, next to max |logits_a| and the share of positions whose top-1
    token agrees."""
    la = a(input_ids=ids.to(next(a.parameters()).device), use_cache=False).logits.double().cpu()
    lb = b(input_ids=ids.to(next(b.parameters()).device), use_cache=False).logits.double().cpu()
    return {
        "max_abs_diff": (la - lb).abs().max().item(),
        "max_abs_logit": la.abs().max().item(),
        "top1_agreement": (la.argmax(-1) == lb.argmax(-1)).double().mean().item(),
    }


def paper_law_figure(ppl0: float, hidden: int, measured: dict[int, float] | None = None,
                     kappas: Sequence[float] = (1.0, 0.7, 0.5)) -> go.Figure:
    """ln PPL_0 / ln PPL(d') = 1 − κ·s for a few slopes κ (κ = 1 is the paper's law), with measured points."""
    ds = list(range(max(8, hidden // 10), hidden + 1, max(1, hidden // 100)))
    fig = go.Figure()
    for k in kappas:
        ys = [math.exp(math.log(ppl0) / (1 - k * (1 - d / hidden))) for d in ds]
        name = f"κ = {k:g}" + (" (paper)" if k == 1 else "")
        line = dict(color=PAPER_COLOR, dash=None) if k == 1 else dict(dash="dot")
        fig.add_trace(go.Scatter(x=ds, y=ys, mode="lines", name=name, line=line))
    if measured:
        fig.add_trace(go.Scatter(x=list(measured), y=list(measured.values()), mode="markers", name="measured",
                                 marker=dict(size=11, color=SLICED_COLOR, symbol="diamond")))
    return _layout(fig, "perplexity against kept width: ln PPL₀ / ln PPL = 1 − κ·s", xaxis_title="d'",
                   yaxis_title="perplexity", yaxis_type="log")


def implied_kappa(ppl0: float, ppl: float, hidden: int, dim: int) -> float:
    """The slope κ for which ln PPL_0 / ln PPL = 1 − κ·s holds at one measured point (s = 1 − d'/D)."""
    s = 1 - dim / hidden
    return (1 - math.log(ppl0) / math.log(ppl)) / s if s > 0 else float("nan")
