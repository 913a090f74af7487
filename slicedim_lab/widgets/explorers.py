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

from ..core.modeling_sliced import DimRMSNorm
from ..core.pca import SitePCA, random_rotation
from ..core.sites import layer_of_map, site_at
from ..eval.metrics import EvalResult
from ..flow.session import map_weight
from ..load.models import keep_first_layers
from ..predict import predict, predict_point
from ..predict.fisher import FisherTables
from ..predict.registry import DenseMetrics, predictor_names, shown_names
from ..sweep.runner import SweepRunner

PREDICTORS = predictor_names()
SHOWN = shown_names()
keep_layers = keep_first_layers
SweepBench = SweepRunner

DENSE_COLOR, SLICED_COLOR, PAPER_COLOR, FISHER_COLOR = "#1f77b4", "#d62728", "#7f7f7f", "#2ca02c"
FIG_HEIGHT = 360
TABLE_CSS = ("<style>.sdl-table td, .sdl-table th {padding: 2px 12px; text-align: left; "
             "border-bottom: 1px solid #ddd; vertical-align: top}</style>")


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
    fig.update_yaxes(minorloglabels="none")  # log axes: label 1, 2, 5 × powers of ten, not every digit
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
    _layout(fig, f"dense vs sliced on {r0.windows} eval windows × {r0.seqlen} tokens")
    fig.update_layout(margin=dict(t=90))
    return fig


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
        answers.value = f"{TABLE_CSS}<table class='sdl-table'>{''.join(rows)}</table>"

    button.on_click(_counted(ex, update))
    return ex


def _discarded(p: SitePCA, d: int) -> float:
    """Fraction of a site's energy that the top-d directions leave out."""
    return max(0.0, 1.0 - float(p.retained_energy()[d - 1]))


def _log_or_none(v: float) -> float | None:
    """A value for a log axis: None (a gap) for zero, which only rank-deficient calibration produces."""
    return v if v > 0 else None


def spectrum_explorer(
    pcas: Sequence[SitePCA | None], dims: Sequence[int] | None = None, dim: int | None = None, site: int = 1,
    title: str = "",
) -> Explorer:
    """Eigen-spectrum of one site (each direction's share of the energy, log scale, the cut at d' marked)
    and the fraction of energy every site discards.

    With `dims` (one width per site, e.g. a `SliceResult`'s) the widths are fixed and only the site moves;
    otherwise a d' slider sets one width for all sites (dense PCA bases: no recalibration per move).
    Sites whose PCA is None (a full-width last site in its original basis) are skipped.
    """
    valid = [s for s, p in enumerate(pcas) if p is not None]
    D = pcas[valid[0]].eigvals.shape[0]
    wide = W.Layout(width="70%")
    site_s = W.IntSlider(value=site if site in valid else valid[0], min=valid[0], max=valid[-1],
                         description="site", continuous_update=False, layout=wide)
    dim_s = W.IntSlider(value=dim or D * 3 // 4, min=1, max=D, step=8 if D >= 64 else 1, description="d'",
                        continuous_update=False, layout=wide)
    controls: dict[str, W.Widget] = {"site": site_s}
    if dims is None:
        controls["dim"] = dim_s
    spec = go.FigureWidget()
    spec.add_trace(go.Scatter(mode="lines", name="kept directions", line=dict(color=DENSE_COLOR)))
    spec.add_trace(go.Scatter(mode="lines", name="discarded directions", line=dict(color=SLICED_COLOR),
                              fill="tozeroy", fillcolor="rgba(214,39,40,0.15)"))
    _layout(spec, "", xaxis_title="eigen-direction (descending eigenvalue)",
            yaxis_title="share of the energy", yaxis_type="log", yaxis_exponentformat="power")
    energy = go.FigureWidget()
    energy.add_trace(go.Scatter(mode="lines+markers", name="energy discarded", marker=dict(size=5),
                                line=dict(color=DENSE_COLOR)))
    energy.add_trace(go.Scatter(mode="markers", name="selected site",
                                marker=dict(size=13, color=SLICED_COLOR)))
    _layout(energy, "", xaxis_title="site (0 = embeddings, 2i+1 = after attention i, 2i+2 = after MLP i)",
            yaxis_title="fraction of energy discarded", yaxis_type="log", yaxis_exponentformat="power")
    status = W.HTML()
    ex = Explorer(box=W.VBox([*controls.values(), status, spec, energy]), controls=controls,
                  figures={"spectrum": spec, "energy": energy}, outputs={"status": status})

    def width(s: int) -> int:
        return int(dims[s]) if dims is not None else int(dim_s.value)

    def update(_: Any = None) -> None:
        s = site_s.value
        p = pcas[s]
        if p is None:
            status.value = f"<i>site {s} keeps its full width in its original basis: no PCA</i>"
            return
        d = width(s)
        lam = p.eigvals.clamp_min(0)
        share = (lam / lam.sum()).tolist()
        idx = list(range(1, len(share) + 1))
        ex.state.update(site=s, dim=d, discarded=_discarded(p, d))
        status.value = (f"site {s} (<code>{site_at(s).hook}</code>): d' = {d} of {D} discards "
                        f"<b>{ex.state['discarded']:.3%}</b> of the energy")
        with spec.batch_update():
            spec.data[0].x, spec.data[0].y = idx[:d], [_log_or_none(v) for v in share[:d]]
            spec.data[1].x, spec.data[1].y = idx[d - 1:], [_log_or_none(v) for v in share[d - 1:]]
            spec.layout.title = f"{title}eigen-spectrum of site {s} ({site_at(s).hook}), cut at d' = {d}"
        with energy.batch_update():
            energy.data[0].x = valid
            energy.data[0].y = [_log_or_none(_discarded(pcas[v], width(v))) for v in valid]
            energy.data[1].x, energy.data[1].y = [s], [_log_or_none(ex.state["discarded"])]
            energy.layout.title = (f"{title}energy discarded per site at d' = {d}" if dims is None
                                   else f"{title}energy discarded per site at the sliced widths")

    cb = _counted(ex, update)
    for c in controls.values():
        c.observe(cb, names="value")
    update()
    return ex


# ----------------------------------------------------------------------------- 04 theory: live checks


def rmsnorm_invariance(x: Float[Tensor, "... d"], eps: float = 1e-5, seed: int = 0) -> dict[str, float]:
    """Check RMSNorm(xQ) = RMSNorm(x)Q for a seeded random orthogonal Q on real residuals `x` (float64):
    the max |difference| next to the max |RMSNorm(x)|, and ‖QᵀQ − I‖_max."""
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
def model_logits(model: nn.Module, ids: Int[Tensor, "n pos"]) -> Float[Tensor, "n pos vocab"]:
    """Logits of a transformers-style model on `ids` (no cache), on the CPU."""
    return model(input_ids=ids.to(next(model.parameters()).device), use_cache=False).logits.cpu()


def compare_logits(a: Tensor, b: Tensor) -> dict[str, float]:
    """Max |a − b| next to max |a|, and the share of positions whose top-1 token agrees."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return {
        "max_abs_diff": (a - b).abs().max().item(),
        "max_abs_logit": a.abs().max().item(),
        "top1_agreement": (a.argmax(-1) == b.argmax(-1)).double().mean().item(),
    }


def paper_law_figure(ppl0: float, hidden: int, measured: dict[int, float] | None = None,
                     kappas: Sequence[float] = (1.0, 0.7, 0.5)) -> go.Figure:
    """ln PPL_0 / ln PPL(d') = 1 − κ·s for a few slopes κ (κ = 1 is the paper's law), with measured points.
    A curve stops where 1 − κ·s falls below 0.2 (PPL > PPL_0⁵; the relation diverges at s = 1/κ)."""
    ds = list(range(max(8, hidden // 4), hidden + 1, max(1, hidden // 144)))
    fig = go.Figure()
    for k in kappas:
        ratio = [1 - k * (1 - d / hidden) for d in ds]  # ln PPL_0 / ln PPL
        ys = [math.exp(math.log(ppl0) / r) if r >= 0.2 else None for r in ratio]
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


# ----------------------------------------------------------------------------- predictions against d'

PRED_COLORS = {"paper": PAPER_COLOR, "fisher": FISHER_COLOR, "fisher_cross": "#9467bd",
               "fisher_full": "#ff7f0e"}
MEASURED_STYLE = dict(size=12, color="black", symbol="diamond")
ERR_CLIP = 300.0  # error bars beyond ±300% are clipped (their labels keep the value)


def prediction_curves(
    dense: DenseMetrics, tables: FisherTables | None, min_dim: int, step: int = 4
) -> pd.DataFrame:
    """`predict.predict` at d' = min_dim … D (every `step`, D included): one row per d'."""
    D = dense.hidden
    dims = sorted(set(range(min_dim, D + 1, step)) | {D})
    return pd.DataFrame(predict(dense, dims, tables))


EXTRA_COLORS = ("#17becf", "#bcbd22", "#8c564b", "#e377c2", "#393b79", "#637939")


def _color(p: str) -> str:
    """A fixed colour per predictor (predictors added to `predict.PREDICTORS` later get spare colours)."""
    if p in PRED_COLORS:
        return PRED_COLORS[p]
    extra = [q for q in PREDICTORS if q not in PRED_COLORS]
    return EXTRA_COLORS[(extra.index(p) if p in extra else len(extra)) % len(EXTRA_COLORS)]


def _curve_predictors(curves: pd.DataFrame, metric: str = "ppl") -> list[str]:
    """Predictors with a value of `metric` at some width of `curves` below the full one, in `PREDICTORS`
    order (a predictor known only at full width, where every predictor is exact, says nothing)."""
    cols = {p: f"{metric}_pred_{p}" for p in PREDICTORS}
    narrow = curves["dim"] < curves["dim"].max()
    return [p for p, c in cols.items() if c in curves and curves.loc[narrow, c].notna().any()]


class _CurveFigure:
    """A FigureWidget of one metric against d': a line per predictor available at every width (markers for one
    available only at some widths, e.g. the semi-interleaved kinds), the measured points, and each
    predictor's value at the slider's d'. Trace order: predictors, measured, current."""

    def __init__(self, curves: pd.DataFrame, metric: str, title: str, ytitle: str, log: bool):
        self.metric, self.log = metric, log
        self.preds = _curve_predictors(curves, metric)
        own = [curves[f"{metric}_pred_{p}"].dropna() for p in self.preds if p != "paper" and p in SHOWN]
        self.own_range = (min(float(c.min()) for c in own), max(float(c.max()) for c in own)) if own else None
        self.fig = go.FigureWidget()
        for p in self.preds:
            col = curves[f"{metric}_pred_{p}"]
            full = bool(col.notna().all())
            self.fig.add_trace(go.Scatter(
                x=curves["dim"][col.notna()], y=col.dropna(), mode="lines" if full else "markers",
                name=f"predicted: {p}", line=dict(color=_color(p), width=2),
                marker=dict(color=_color(p), size=9, symbol="x"),
                visible=True if p in SHOWN else "legendonly"))
        self.fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="measured", marker=MEASURED_STYLE))
        self.fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="at the slider", showlegend=False,
                                      marker=dict(size=11, line=dict(color="white", width=1))))
        _layout(self.fig, title, xaxis_title="kept width d'", yaxis_title=ytitle,
                yaxis_type="log" if log else "linear")

    def update(self, dim: int, pred: dict[str, float], measured: list[tuple[int, float]]) -> None:
        here = [p for p in self.preds if p in SHOWN and pred.get(f"{self.metric}_pred_{p}") is not None]
        with self.fig.batch_update():
            n = len(self.preds)
            self.fig.data[n].x = [d for d, _ in measured]
            self.fig.data[n].y = [v for _, v in measured]
            self.fig.data[n + 1].x = [dim] * len(here)
            self.fig.data[n + 1].y = [pred[f"{self.metric}_pred_{p}"] for p in here]
            self.fig.data[n + 1].marker.color = [_color(p) for p in here]
            self.fig.layout.shapes = [dict(type="line", xref="x", yref="paper", x0=dim, x1=dim, y0=0, y1=1,
                                           line=dict(color="rgba(0,0,0,0.35)", dash="dash"))]
            if self.log and self.own_range is not None:
                # the paper's curve grows like PPL0^(D/d') and would flatten everything else: the axis spans
                # our predictors and the measured points (zoom out to follow the paper's curve up)
                vals = [*self.own_range, *(v for _, v in measured)]
                lo, hi = max(min(vals), 1e-300) / 1.15, max(vals) * 2.0
                self.fig.layout.yaxis.range = [math.log10(lo), math.log10(hi)]


def _pred_table(dim: int, hidden: int, pred: dict[str, float], row: dict | None) -> str:
    """HTML: each predictor's PPL (and accuracy) at d', with the signed error when d' was measured."""
    head = f"<b>d' = {dim}</b> (s = {1 - dim / hidden:.3f})"
    cells = ["<tr><th>predictor</th><th>PPL</th><th>top-1 acc</th><th>PPL error</th></tr>"]
    for p in PREDICTORS:
        ppl, acc = pred.get(f"ppl_pred_{p}"), pred.get(f"acc_pred_{p}")
        if ppl is None:
            continue
        err = "" if row is None else f"{100 * (ppl / row['ppl_measured'] - 1):+.1f}%"
        acc_s = "" if acc is None else f"{acc:.4f}"
        cells.append(f"<tr><td>{p}</td><td>{ppl:.3f}</td><td>{acc_s}</td><td>{err}</td></tr>")
    if row is not None:
        acc = row.get("acc_measured")
        cells.append(f"<tr><td><b>measured</b></td><td><b>{row['ppl_measured']:.3f}</b></td>"
                     f"<td>{'' if acc is None else f'{acc:.4f}'}</td><td></td></tr>")
    else:
        cells.append("<tr><td colspan=4><i>not measured at this d'</i></td></tr>")
    return f"{head}{TABLE_CSS}<table class='sdl-table'>{''.join(cells)}</table>"


def theory_explorer(dense: DenseMetrics, tables: FisherTables, measured: dict[int, float] | None = None,
                    dim: int = 432, min_dim: int | None = None) -> Explorer:
    """A d' slider over the paper's law and the Fisher-increment predictions of perplexity, with measured
    points; below, where along depth the Fisher estimate charges the loss at that d' (½·mean_t (g_s·δ_s)²
    per site) next to the fraction of energy each site discards. Moves are table lookups, nothing else."""
    D = dense.hidden
    min_dim = min_dim or max(8, D // 4)
    curves = prediction_curves(dense, tables, min_dim)
    measured = dict(measured or {})
    slider = W.IntSlider(value=dim, min=min_dim, max=D, step=8 if D >= 64 else 1, description="d'",
                         continuous_update=True, layout=W.Layout(width="70%"))
    ppl = _CurveFigure(curves, "ppl", "perplexity against kept width d'", "perplexity", log=True)
    sites = go.FigureWidget(make_subplots(specs=[[{"secondary_y": True}]]))
    S = tables.diag.shape[0]
    sites.add_trace(go.Bar(x=list(range(S)), y=[0.0] * S, name="Fisher increment ½·mean (g·δ)² (nats)",
                           marker_color=FISHER_COLOR), secondary_y=False)
    sites.add_trace(go.Scatter(x=list(range(S)), y=[None] * S, mode="lines+markers", name="energy discarded",
                               marker=dict(size=4), line=dict(color=SLICED_COLOR)), secondary_y=True)
    _layout(sites, "", xaxis_title="site (0 = embeddings, 2i+1 = after attention i, 2i+2 = after MLP i)")
    sites.update_yaxes(title_text="nats", secondary_y=False)
    sites.update_yaxes(title_text="fraction of energy discarded", type="log", exponentformat="power",
                       secondary_y=True)
    table = W.HTML()
    ex = Explorer(box=W.VBox([slider, table, ppl.fig, sites]), controls={"dim": slider},
                  figures={"ppl": ppl.fig, "sites": sites}, outputs={"table": table})

    def update(_: Any = None) -> None:
        d = int(slider.value)
        pred = predict_point(dense, d, tables)
        ex.state.update(dim=d, **pred)
        ppl.update(d, pred, sorted(measured.items()))
        per_site = (0.5 * tables.diag[:, d] / tables.tokens).tolist()
        with sites.batch_update():
            sites.data[0].y = per_site
            sites.data[1].y = [_log_or_none(1 - float(e)) for e in tables.energy[:, d]]
            sites.layout.title = (f"where the loss is charged at d' = {d}: ΔL = {sum(per_site):.4f} nats "
                                  f"(PPL × {math.exp(sum(per_site)):.3f})")
        row = {"ppl_measured": measured[d]} if d in measured else None
        table.value = _pred_table(d, D, pred, row)

    slider.observe(_counted(ex, update), names="value")
    update()
    return ex


# ----------------------------------------------------------------------------- 03 dimension sweep


def sweep_explorer(bench: SweepBench, dim: int = 432, min_dim: int | None = None) -> Explorer:
    """Predicted vs measured perplexity and accuracy against d'. The slider moves the predictions instantly
    (table lookups); "Measure d'" measures the slider's d' for real (`SweepBench.measure`) and adds the
    point; the error of every predictor at the measured points is shown below."""
    dense, tables, D = bench.dense, bench.tables, bench.hidden
    min_dim = min_dim or max(8, D // 4)
    curves = prediction_curves(dense, tables, min_dim)
    preds = _curve_predictors(curves)
    slider = W.IntSlider(value=dim, min=min_dim, max=D, step=8 if D >= 64 else 1, description="d'",
                         continuous_update=True, layout=W.Layout(width="70%"))
    button = W.Button(description="Measure d'", button_style="warning", icon="flask",
                      tooltip=f"slice to the slider's d' ({bench.cfg.basis} bases) and evaluate")
    log = W.Output(layout=W.Layout(max_height="120px", overflow="auto"))
    table = W.HTML()
    ppl = _CurveFigure(curves, "ppl", "perplexity against kept width d'", "perplexity", log=True)
    acc = _CurveFigure(curves, "acc", "next-token top-1 accuracy against d'", "top-1 accuracy", log=False)
    figures = {"ppl": ppl.fig, "acc": acc.fig}
    mc = None
    if dense.mc_acc is not None:
        mc = _CurveFigure(curves, "mc_acc", "multiple-choice accuracy (corpus-mc) against d'", "accuracy",
                          log=False)
        figures["mc_acc"] = mc.fig
    err = go.FigureWidget()
    for p in preds:
        err.add_trace(go.Bar(x=[], y=[], name=p, marker_color=_color(p), textposition="outside",
                             cliponaxis=False))
    _layout(err, f"perplexity error at the measured points (signed %, bars clipped at ±{ERR_CLIP:.0f}%)",
            xaxis_title="kept width d'", yaxis_title="predicted / measured − 1 (%)", barmode="group")
    err.update_xaxes(type="category")
    figures["error"] = err
    ex = Explorer(box=W.VBox([W.HBox([slider, button]), table, log, *figures.values()]),
                  controls={"dim": slider, "measure": button}, figures=figures,
                  outputs={"table": table, "log": log})

    def update(_: Any = None) -> None:
        d = int(slider.value)
        pred = predict_point(dense, d, tables)
        meas = bench.measured()
        ex.state.update(dim=d, **pred)
        pts = sorted(meas)
        ppl.update(d, pred, [(k, meas[k]["ppl_measured"]) for k in pts])
        acc.update(d, pred, [(k, meas[k]["acc_measured"]) for k in pts])
        if mc is not None:
            mc.update(d, pred, [(k, meas[k]["mc_acc_measured"]) for k in pts
                                if meas[k].get("mc_acc_measured") is not None])
        with err.batch_update():
            for i, p in enumerate(preds):
                vals = [meas[k].get(f"ppl_err_{p}") for k in pts]
                err.data[i].x = [str(k) for k in pts]
                err.data[i].y = [None if v is None else max(-ERR_CLIP, min(ERR_CLIP, v)) for v in vals]
                err.data[i].text = [None if v is None else f"{v:+.3g}%" for v in vals]
        summary = ""
        if pts:
            errs = {p: [abs(meas[k][f"ppl_err_{p}"]) for k in pts if meas[k].get(f"ppl_err_{p}") is not None]
                    for p in preds}
            summary = ("<br>mean |PPL error| over the measured points: "
                       + ", ".join(f"{p} {sum(v) / len(v):.1f}% ({len(v)})" for p, v in errs.items() if v))
        table.value = _pred_table(d, D, pred, meas.get(d)) + summary

    def measure_now(_: Any = None) -> None:
        d = int(slider.value)
        button.disabled, button.description = True, f"measuring d'={d}…"
        failed: BaseException | None = None
        try:
            with log:  # progress bars show in the box; an Output context would swallow an exception
                try:
                    row = bench.measure(d)
                    print(f"measured d'={d}: PPL {row['ppl_measured']:.3f}, top-1 {row['acc_measured']:.4f} "
                          f"({row['seconds']:.0f} s, {bench.cfg.basis} bases)")
                    ex.state["last_measured"] = row
                except Exception as e:  # shown in the box, then raised to the caller
                    print(f"measuring d'={d} failed: {type(e).__name__}: {e}")
                    failed = e
        finally:
            button.disabled, button.description = False, "Measure d'"
        if failed is not None:
            raise failed
        update()

    slider.observe(_counted(ex, update), names="value")
    button.on_click(_counted(ex, measure_now))
    update()
    return ex


# ----------------------------------------------------------------------------- 01 activation flow


def _site_series(table: pd.DataFrame, metric: str) -> tuple[list[int], list[float]]:
    """(sites, values) of one site-level metric of a flow table."""
    t = table[(table["map"] == "") & (table["metric"] == metric)].sort_values("site")
    return t["site"].astype(int).tolist(), t["value"].astype(float).tolist()


def _layer_band(layer: int) -> list[dict]:
    """A shaded band over the two sites of decoder layer `layer` (2i+1 attention, 2i+2 MLP)."""
    return [dict(type="rect", xref="x", yref="paper", x0=2 * layer + 0.5, x1=2 * layer + 2.5, y0=0, y1=1,
                 fillcolor="rgba(255,165,0,0.18)", line=dict(width=0), layer="below")]


class _ReportCache:
    """FlowSession reports by (basis, d', extra options), so revisiting a slider position costs nothing."""

    def __init__(self, session: Any, **kwargs: Any):
        self.session, self.kwargs, self.reports = session, kwargs, {}

    def get(self, dim: int, basis: str, **kwargs: Any) -> Any:
        opts = {**self.kwargs, **kwargs}
        key = (basis, dim, tuple(sorted(opts.items())))
        if key not in self.reports:
            if basis == "interleaved":  # one interleaved calibration is held at a time: keep its reports few
                self.reports = {k: v for k, v in self.reports.items() if k[0] == "dense"}
            self.reports[key] = self.session.report(dim, basis, **opts)
        return self.reports[key]


def flow_explorer(session: Any, dim: int = 432, layer: int = 14, basis: str = "dense",
                  attribution: bool = False, nodes: int = 2) -> Explorer:
    """Sliders for d' and layer over a `flow.FlowSession`: the layer's eigen-spectra with the cut, and along
    depth the energy discarded, the residual stream's relative error and cosine, the logit-lens KL and loss,
    and — while the "prediction decomposition" box is ticked (`attribution`; gradient passes with `nodes`
    Gauss-Legendre nodes, several times slower) — each site's share of the loss increase. A d' move costs one
    emulated forward pass with dense bases (no recalibration); "interleaved" recalibrates per d'. Moving the
    layer is instant."""
    D, L = session.D, session.L
    cache = _ReportCache(session, maps=False)
    wide = W.Layout(width="70%")
    dim_s = W.IntSlider(value=dim, min=8, max=D, step=8, description="d'", continuous_update=False,
                        layout=wide)
    layer_s = W.IntSlider(value=min(layer, L - 1), min=0, max=L - 1, description="layer", layout=wide)
    basis_s = W.ToggleButtons(options=["dense", "interleaved"], value=basis, description="bases",
                              tooltips=["dense PCA: no recalibration per d'",
                                        "SliceGPT: one calibration per d'"])
    attr_box = W.Checkbox(value=attribution, description="prediction decomposition (slower)", indent=False)
    status = W.HTML()
    spectra = go.FigureWidget()
    for name, color in (("attention site", DENSE_COLOR), ("MLP site", FISHER_COLOR)):
        spectra.add_trace(go.Scatter(mode="lines", name=name, line=dict(color=color)))
    _layout(spectra, "", xaxis_title="eigen-direction (descending)", yaxis_title="share of the energy",
            yaxis_type="log", yaxis_exponentformat="power")
    energy = go.FigureWidget()
    for name, color in (("calibration PCA", PAPER_COLOR), ("eval, dense activations", DENSE_COLOR),
                        ("eval, sliced activations", SLICED_COLOR)):
        energy.add_trace(go.Scatter(mode="lines+markers", name=name, marker=dict(size=4),
                                    line=dict(color=color)))
    _layout(energy, "", xaxis_title="site", yaxis_title="fraction of energy discarded", yaxis_type="log",
            yaxis_exponentformat="power")
    error = go.FigureWidget(make_subplots(specs=[[{"secondary_y": True}]]))
    error.add_trace(go.Scatter(mode="lines+markers", name="relative error ‖x̃ − x‖/‖x‖", marker=dict(size=4),
                               line=dict(color=SLICED_COLOR)), secondary_y=False)
    error.add_trace(go.Scatter(mode="lines+markers", name="cosine(x̃, x)", marker=dict(size=4),
                               line=dict(color=DENSE_COLOR)), secondary_y=True)
    _layout(error, "", xaxis_title="site")
    error.update_yaxes(title_text="relative error", secondary_y=False)
    error.update_yaxes(title_text="cosine", secondary_y=True)
    kl = go.FigureWidget(make_subplots(specs=[[{"secondary_y": True}]]))
    kl.add_trace(go.Scatter(mode="lines+markers", name="KL(dense ‖ sliced), logit lens", marker=dict(size=5),
                            line=dict(color=SLICED_COLOR)), secondary_y=False)
    for name, color in (("lens loss, dense", DENSE_COLOR), ("lens loss, sliced", SLICED_COLOR)):
        kl.add_trace(go.Scatter(mode="lines", name=name, line=dict(color=color, dash="dot")),
                     secondary_y=True)
    _layout(kl, "", xaxis_title="site")
    kl.update_yaxes(title_text="KL (nats)", secondary_y=False)
    kl.update_yaxes(title_text="next-token loss (nats)", type="log", secondary_y=True)
    attr = go.FigureWidget()
    attr.add_trace(go.Bar(name="integrated gradients", marker_color=FISHER_COLOR))
    attr.add_trace(go.Bar(name="first order", marker_color=PAPER_COLOR))
    _layout(attr, "", xaxis_title="site", yaxis_title="Δ loss attributed (nats/token)", barmode="group")
    figures = {"spectra": spectra, "energy": energy, "error": error, "kl": kl, "attribution": attr}
    ex = Explorer(box=W.VBox([dim_s, layer_s, W.HBox([basis_s, attr_box]), status, *figures.values()]),
                  controls={"dim": dim_s, "layer": layer_s, "basis": basis_s, "attribution": attr_box},
                  figures=figures, outputs={"status": status})

    def draw_layer(_: Any = None) -> None:
        i, d = layer_s.value, dim_s.value
        with spectra.batch_update():
            for k, s in enumerate((2 * i + 1, 2 * i + 2)):
                lam = session.pcas[s].eigvals.clamp_min(0)
                share = (lam / lam.sum()).tolist()
                spectra.data[k].x = list(range(1, D + 1))
                spectra.data[k].y = [_log_or_none(v) for v in share]
            spectra.layout.title = f"layer {i}: dense eigen-spectra of its two sites, cut at d' = {d}"
            spectra.layout.shapes = [dict(type="line", xref="x", yref="paper", x0=d + 0.5, x1=d + 0.5, y0=0,
                                          y1=1, line=dict(color="black", dash="dash"))]
        for fig in figures.values():
            if fig is not spectra:
                fig.layout.shapes = _layer_band(i)
        rep = ex.state.get("report")
        if rep is not None:
            row = rep.per_layer().set_index("layer").loc[i]
            keys = ("rel_error", "cosine", "lens_kl", "retained_eval")
            shown = {k: float(row[k]) for k in keys if k in row}
            ex.state["layer_row"] = shown
            status.value = (ex.state["summary_html"] + f"<br>layer {i} (its MLP site): "
                            + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))

    def draw_dim(_: Any = None) -> None:
        d, b = int(dim_s.value), basis_s.value
        status.value = f"<i>computing d' = {d} ({b} bases)…</i>"
        t0 = time.perf_counter()
        rep = cache.get(d, b, attribution=nodes if attr_box.value else None)
        t = rep.table
        sm = rep.summary
        ex.state.update(report=rep, dim=d, basis=b, seconds=time.perf_counter() - t0, **sm)
        ex.state["summary_html"] = (
            f"<b>d' = {d}</b>, {b} bases: PPL {sm['ppl_dense']:.3f} → <b>{sm['ppl_sliced']:.3f}</b>, top-1 "
            f"{sm['accuracy_dense']:.4f} → {sm['accuracy_sliced']:.4f}, KL {sm['kl']:.4f} nats "
            f"({ex.state['seconds']:.1f} s)")
        with energy.batch_update():
            for k, metric in enumerate(("retained_cal", "retained_eval_dense", "retained_eval")):
                x, y = _site_series(t, metric)
                energy.data[k].x, energy.data[k].y = x, [_log_or_none(1 - v) for v in y]
            energy.layout.title = f"energy discarded along depth at d' = {d}"
        with error.batch_update():
            for k, metric in enumerate(("rel_error", "cosine")):
                error.data[k].x, error.data[k].y = _site_series(t, metric)
            error.layout.title = f"the residual stream against the dense one at d' = {d}"
        with kl.batch_update():
            for k, metric in enumerate(("lens_kl", "lens_loss_dense", "lens_loss_sliced")):
                kl.data[k].x, kl.data[k].y = _site_series(t, metric)
            kl.layout.title = f"logit lens along depth at d' = {d}"
        with attr.batch_update():
            for k, metric in enumerate(("attr_loss_integrated", "attr_loss_first")):
                attr.data[k].x, attr.data[k].y = _site_series(t, metric)
            if attr_box.value:
                attr.layout.title = (f"prediction decomposition at d' = {d}: "
                                     f"Δloss {sm['attr_loss_change']:.4f} = Σ integrated "
                                     f"{sm['attr_loss_integrated_sum']:.4f} + remainder "
                                     f"{sm['attr_loss_integrated_remainder']:.4f} nats/token")
            else:
                attr.layout.title = "prediction decomposition: tick the box above to compute it"
        draw_layer()

    dim_cb = _counted(ex, draw_dim)
    for c in (dim_s, basis_s, attr_box):
        c.observe(dim_cb, names="value")
    layer_s.observe(_counted(ex, draw_layer), names="value")
    draw_dim()
    return ex


# ----------------------------------------------------------------------------- 02 linear maps


map_layer = layer_of_map


def map_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-map rows of a flow table, with `map_layer` (see `map_layer`) and a readable `label`."""
    t = table[table["map"] != ""].copy()
    t["map_layer"] = [map_layer(r, s) for r, s in zip(t["role"], t["site"])]
    t["label"] = [f"{m}<br>({r})" for m, r in zip(t["map"], t["role"])]
    return t


def map_singular_values(
    session: Any, dim: int, map_index: int, basis: str = "dense"
) -> tuple[Tensor, Tensor]:
    """Singular values (descending) of one map of `flow.linear_maps` at full width and sliced to `dim` with
    `basis` bases: a reader keeps W B (its input restricted to the kept directions), a writer BᵀW."""
    m = session.maps[map_index]
    bases, _ = session.bases(dim, basis)
    B = bases[m["site"]].double()
    w = map_weight(m)
    ws = w @ B if m["role"] == "reader" else B.T @ w
    return torch.linalg.svdvals(w), torch.linalg.svdvals(ws)


def maps_explorer(session: Any, dim: int = 432, layer: int = 14, basis: str = "dense") -> Explorer:
    """How a layer's linear maps split into kept and dropped directions at d' (`flow.FlowSession` map rows):
    the share of each map's output energy (on dense eval activations) carried by the kept / dropped
    directions and the share of its weight energy that survives (from the singular values of the layer's
    maps, computed on demand); along depth, the dropped share of every map; and the singular values of one
    map, full against sliced. Sliders for d' and layer, a dropdown for the map."""
    D, L = session.D, session.L
    cache = _ReportCache(session, attribution=None, maps=True)
    wide = W.Layout(width="70%")
    dim_s = W.IntSlider(value=dim, min=8, max=D, step=8, description="d'", continuous_update=False,
                        layout=wide)
    layer_s = W.IntSlider(value=min(layer, L - 1), min=0, max=L - 1, description="layer", layout=wide)

    def layer_maps(i: int) -> list[tuple[str, int]]:
        return [(f"{m['map']} ({m['role']})", k) for k, m in enumerate(session.maps)
                if map_layer(m["role"], m["site"]) == i]

    map_s = W.Dropdown(options=layer_maps(layer_s.value), description="map")
    status = W.HTML()
    bars = go.FigureWidget()
    for name, color in (("output energy on kept directions", DENSE_COLOR),
                        ("output energy on dropped directions", SLICED_COLOR),
                        ("weight energy kept", PAPER_COLOR)):
        bars.add_trace(go.Bar(name=name, marker_color=color))
    _layout(bars, "", yaxis_title="fraction", barmode="group")
    depth = go.FigureWidget()
    _layout(depth, "", xaxis_title="layer", yaxis_title="output energy on dropped directions",
            yaxis_type="log", yaxis_exponentformat="power")
    sv = go.FigureWidget()
    sv.add_trace(go.Scatter(mode="lines", name="full map", line=dict(color=DENSE_COLOR)))
    sv.add_trace(go.Scatter(mode="lines", name="sliced map", line=dict(color=SLICED_COLOR)))
    _layout(sv, "", xaxis_title="index", yaxis_title="singular value", yaxis_type="log", yaxis_dtick="D2")
    figures = {"maps": bars, "depth": depth, "singular": sv}
    ex = Explorer(box=W.VBox([dim_s, layer_s, map_s, status, *figures.values()]),
                  controls={"dim": dim_s, "layer": layer_s, "map": map_s}, figures=figures,
                  outputs={"status": status})

    sv_cache: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def singular(d: int, k: int) -> tuple[Tensor, Tensor]:
        if (d, k) not in sv_cache:
            sv_cache[(d, k)] = map_singular_values(session, d, k, basis)
        return sv_cache[(d, k)]

    def draw_sv(_: Any = None) -> None:
        if map_s.value is None or ex.state.get("quiet"):
            return
        d = int(dim_s.value)
        full, sliced = singular(d, map_s.value)
        m = session.maps[map_s.value]
        ratio = float(sliced[0] / full[0])
        with sv.batch_update():
            sv.data[0].x, sv.data[0].y = list(range(1, len(full) + 1)), full.tolist()
            sv.data[1].x, sv.data[1].y = list(range(1, len(sliced) + 1)), sliced.tolist()
            sv.layout.title = (f"singular values of layer {layer_s.value} {m['map']} ({m['role']} of site "
                               f"{m['site']}): σ₁ sliced/full = {ratio:.4f}, rank ≤ {min(d, len(full))}")
        ex.state.update(map=m["map"], sigma1_ratio=ratio)

    def draw_layer(_: Any = None) -> None:
        i, d = layer_s.value, ex.state["dim"]
        mt = ex.state["maps"]
        mt = mt[mt["map_layer"] == i]
        kept_w = {}
        for _label, k in layer_maps(i):  # ‖sliced W‖²_F / ‖W‖²_F = Σσ_sliced² / Σσ_full²
            full, sliced = singular(d, k)
            kept_w[(session.maps[k]["map"], session.maps[k]["role"])] = float(sliced.square().sum()
                                                                             / full.square().sum())
        with bars.batch_update():
            for k, metric in enumerate(("act_kept", "act_dropped")):
                sel = mt[mt["metric"] == metric]
                bars.data[k].x, bars.data[k].y = sel["label"].tolist(), sel["value"].tolist()
            sel = mt[mt["metric"] == "act_kept"]
            bars.data[2].x = sel["label"].tolist()
            bars.data[2].y = [kept_w.get((m, r)) for m, r in zip(sel["map"], sel["role"])]
            bars.layout.title = f"layer {i} at d' = {d}: kept vs dropped directions, per map"
        ex.state["weight_kept"] = kept_w
        depth.layout.shapes = [dict(type="line", xref="x", yref="paper", x0=i, x1=i, y0=0, y1=1,
                                    line=dict(color="orange", width=2))]
        options = layer_maps(i)
        current = map_s.value
        ids = [k for _, k in options]
        ex.state["quiet"] = True  # the dropdown's own callback stays quiet while its options change
        try:
            map_s.options = options
            if current in ids:
                map_s.value = current
        finally:
            ex.state["quiet"] = False
        draw_sv()

    def draw_dim(_: Any = None) -> None:
        d = int(dim_s.value)
        status.value = f"<i>computing d' = {d}…</i>"
        t0 = time.perf_counter()
        rep = cache.get(d, basis)
        mt = map_table(rep.table)
        ex.state.update(report=rep, maps=mt, dim=d, seconds=time.perf_counter() - t0)
        dropped = mt[(mt["metric"] == "act_dropped") & (mt["map_layer"] >= 0) & (mt["map_layer"] < L)]
        with depth.batch_update():
            depth.data = []
            for name in sorted(set(dropped["map"])):
                sel = dropped[dropped["map"] == name].sort_values("map_layer")
                ys = [_log_or_none(v) for v in sel["value"]]
                depth.add_trace(go.Scatter(x=sel["map_layer"].tolist(), y=ys, mode="lines+markers", name=name,
                                           marker=dict(size=4)))
            depth.layout.title = f"output energy each map sends through dropped directions, d' = {d}"
        sm = rep.summary
        status.value = (f"<b>d' = {d}</b> ({basis} bases): PPL {sm['ppl_dense']:.3f} → "
                        f"{sm['ppl_sliced']:.3f}, KL {sm['kl']:.4f} nats ({ex.state['seconds']:.1f} s)")
        draw_layer()

    dim_s.observe(_counted(ex, draw_dim), names="value")
    layer_s.observe(_counted(ex, draw_layer), names="value")
    map_s.observe(_counted(ex, draw_sv), names="value")
    draw_dim()
    return ex


def layer_maps_table(maps: pd.DataFrame, layer: int, weight_kept: dict | None = None) -> pd.DataFrame:
    """One row per map of decoder layer `layer` (rows of `map_table`), one column per metric; with
    `weight_kept` ((map, role) -> share, a maps explorer's `state["weight_kept"]`) that column too."""
    t = maps[maps["map_layer"] == layer]
    df = t.pivot_table(index=["map", "role", "site"], columns="metric", values="value").reset_index()
    if weight_kept:
        df["weight_kept"] = [weight_kept.get((m, r)) for m, r in zip(df["map"], df["role"])]
    df.columns.name = None
    return df
