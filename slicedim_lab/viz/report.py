"""`DIR/report.html`: a self-contained plotly report of a sweep (plotly.js inline, opens offline).

It opens with measured values beside the paper's prediction and ours (signed errors), then the error
summary of every predictor and estimator and the points. Panels: measured and predicted perplexity against
d' (the Fisher predictions drawn as continuous curves: their tables give every d'), next-token and
multiple-choice accuracy, the signed % errors (the cross-term variants hidden until clicked in the legend),
the retained PCA energy of every site and the loss increase the Fisher predictor charges to each site.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go

from ..predict import predict_point
from ..predict.fisher import SEMI_KINDS, FisherTables
from ..predict.registry import DenseMetrics, ours, predictor_names, shown_names

PREDICTORS = predictor_names()
SHOWN = shown_names()

COLORS = {"measured": "black", "paper": "#d62728", "fisher": "#1f77b4", "fisher_cross": "#2ca02c",
          "fisher_full": "#9467bd", "fisher_semi": "#17becf", "fisher_semi_cross": "#bcbd22",
          "fisher_semi_geo": "#e377c2", "calibration": "#8c564b", "cal_ratio": "#ff7f0e"}


def error_summary(rows: list[dict]) -> list[dict]:
    """Mean and max |% error| of every PPL predictor/estimator over the rows with sparsity > 0."""
    pts = [r for r in rows if r["sparsity"] > 1e-9] or rows
    out = []
    for name, col in [(p, f"ppl_err_{p}") for p in PREDICTORS] + [
            (f"est:{e}", f"ppl_err_est_{e}") for e in ("calibration", "cal_ratio")]:
        errs = [abs(r[col]) for r in pts if r.get(col) is not None]
        if errs:
            out.append({"name": name, "mean_abs_err": sum(errs) / len(errs), "max_abs_err": max(errs),
                        "points": len(errs)})
    return out


def headline(rows: list[dict], basis: str) -> list[dict]:
    """Per point (widest first): measured, `paper` and ours (`ours(basis)`) side by side with signed errors
    (% for perplexity, points for accuracies): keys `<m>_measured`, `<m>_<tag>`, `<m>_err_<tag>` for
    m in ppl / acc / mc_acc and tag in paper / ours."""
    out = []
    for r in sorted(rows, key=lambda r: -r["dim"]):
        h = {"dim": r["dim"], "sparsity": r["sparsity"]}
        for m in ("ppl", "acc", "mc_acc"):
            meas = h[f"{m}_measured"] = r.get(f"{m}_measured")
            for tag, name in (("paper", "paper"), ("ours", ours(basis))):
                v = h[f"{m}_{tag}"] = r.get(f"{m}_pred_{name}")
                h[f"{m}_err_{tag}"] = None if v is None or meas is None else (
                    100 * (v / meas - 1) if m == "ppl" else 100 * (v - meas))
        out.append(h)
    return out


def headline_text(rows: list[dict], basis: str) -> str:
    """`headline` as a fixed-width text table (the sweep prints it at the end)."""

    def cell(h: dict, m: str, tag: str) -> str:
        v, e = h[f"{m}_{tag}"], h[f"{m}_err_{tag}"]
        if v is None:
            return f"{'—':>17}"
        return f"{v:8.3f} ({e:+5.0f}%)" if m == "ppl" else f"{v:8.3f} ({e:+5.1f})"

    lines = [f"measured vs paper vs ours ({ours(basis)}): perplexity errors in %, accuracy errors in points",
             "   d'     s  ppl meas         ppl paper          ppl ours  acc meas         acc paper"
             "          acc ours   mc meas          mc paper           mc ours"]
    for h in headline(rows, basis):
        cols = [f"{h['dim']:>5} {h['sparsity']:5.2f}"]
        for m in ("ppl", "acc", "mc_acc"):
            if h[f"{m}_measured"] is not None:
                cols.append(f"{h[f'{m}_measured']:9.3f} {cell(h, m, 'paper')} {cell(h, m, 'ours')}")
        lines.append(" ".join(cols))
    return "\n".join(lines)


def _shown(p: str) -> bool | str:
    return True if p in SHOWN else "legendonly"


def _figures(rows: list[dict], dense: dict, tables: FisherTables | None) -> list[go.Figure]:
    rows = sorted(rows, key=lambda r: r["dim"])
    d = [r["dim"] for r in rows]
    lo = min(d)
    D = tables.hidden if tables is not None else max(d)
    grid = list(range(max(8, lo - 16), D + 1, 4))
    dm = DenseMetrics(ppl=dense["ppl"], acc=dense["acc"], hidden=D, mc_acc=dense.get("mc_acc"),
                      mc_chance=dense.get("mc_chance"))
    curves = [predict_point(dm, g, tables) for g in grid]

    def line_fig(title: str, ytitle: str, measured: list[tuple[str, str]], pred: str, log: bool = False):
        fig = go.Figure()
        for key, label in measured:
            ys = [r.get(key) for r in rows]
            if any(y is not None for y in ys):
                fig.add_trace(go.Scatter(x=d, y=ys, mode="markers+lines", name=label,
                                         line={"color": "black",
                                               "dash": "solid" if key.endswith("d") else "dot"},
                                         marker={"size": 9}))
        for p in PREDICTORS:
            if p in SEMI_KINDS:  # computed at the swept widths only
                xs, ys, mode = d, [r.get(f"{pred}_{p}") for r in rows], "markers+lines"
            else:
                xs, ys, mode = grid, [c.get(f"{pred}_{p}") for c in curves], "lines"
            if any(y is not None for y in ys):
                dash = "dash" if p in SEMI_KINDS else None
                fig.add_trace(go.Scatter(x=xs, y=ys, mode=mode, name=f"predicted: {p}",
                                         line={"color": COLORS[p], "dash": dash}, visible=_shown(p)))
        if pred == "ppl_pred":
            for e in ("calibration", "cal_ratio"):
                ys = [r.get(f"ppl_est_{e}") for r in rows]
                if any(y is not None for y in ys):
                    fig.add_trace(go.Scatter(x=d, y=ys, mode="markers",
                                             name=f"estimate (runs sliced model): {e}",
                                             marker={"color": COLORS[e], "symbol": "x", "size": 9}))
        fig.update_layout(title=title, xaxis_title="kept width d'", yaxis_title=ytitle, height=460,
                          yaxis_type="log" if log else None, yaxis_dtick="D2" if log else None)
        return fig

    figs = [line_fig("Perplexity: measured vs predicted", "perplexity", [("ppl_measured", "measured")],
                     "ppl_pred", log=True),
            line_fig("Next-token top-1 accuracy", "accuracy", [("acc_measured", "measured")], "acc_pred")]
    if any(r.get("mc_acc_measured") is not None for r in rows):
        figs.append(line_fig("Multiple-choice accuracy (corpus-mc)", "accuracy",
                             [("mc_acc_measured", "measured acc"),
                              ("mc_acc_norm_measured", "measured acc_norm")],
                             "mc_acc_pred"))
    err = go.Figure()
    for p in PREDICTORS:
        err.add_trace(go.Scatter(x=d, y=[r.get(f"ppl_err_{p}") for r in rows], mode="markers+lines", name=p,
                                 line={"color": COLORS[p]}, visible=_shown(p)))
    for e in ("calibration", "cal_ratio"):
        ys = [r.get(f"ppl_err_est_{e}") for r in rows]
        if any(y is not None for y in ys):
            err.add_trace(go.Scatter(x=d, y=ys, mode="markers+lines", name=f"estimate: {e}",
                                     line={"color": COLORS[e], "dash": "dot"}))
    err.add_hline(y=0, line_color="gray")
    err.update_layout(title="Perplexity error (signed %, predicted/measured − 1)",
                      xaxis_title="kept width d'", yaxis_title="% error", height=420)
    figs.append(err)
    if tables is not None:
        en = go.Figure()
        sites = list(range(tables.energy.shape[0]))
        for r in rows:
            en.add_trace(go.Scatter(x=sites, y=tables.energy[:, r["dim"]].tolist(), mode="lines",
                                    name=f"d'={r['dim']}"))
        en.update_layout(title="Retained energy per site (dense PCA, fraction of the second moment's trace)",
                         xaxis_title="site (0 = embeddings, 2i+1 after attention i, 2i+2 after MLP i)",
                         yaxis_title="retained energy", height=420)
        figs.append(en)
        contrib = go.Figure()
        for r in rows:
            if r["dim"] < D:
                per = (0.5 * tables.diag[:, r["dim"]] / tables.tokens).tolist()
                contrib.add_trace(go.Bar(x=sites, y=per, name=f"d'={r['dim']}"))
        contrib.update_layout(title="Fisher predictor: loss increase charged to each site (nats)",
                              barmode="group", xaxis_title="site", yaxis_title="ΔL_s (nats)", height=420)
        figs.append(contrib)
    return figs


def _headline_html(rows: list[dict], basis: str) -> str:
    def cell(h: dict, m: str, tag: str) -> str:
        v, e = h[f"{m}_{tag}"], h[f"{m}_err_{tag}"]
        if v is None:
            return "<td></td>"
        val, err = (f"{v:.4g}", f"{e:+.0f}%") if m == "ppl" else (f"{v:.3f}", f"{e:+.1f}")
        return f"<td>{val} <small>({err})</small></td>"

    head = ("<tr><th>d'</th><th>s</th><th>PPL measured</th><th>PPL paper</th><th>PPL ours</th>"
            "<th>top-1 measured</th><th>top-1 paper</th><th>top-1 ours</th>"
            "<th>MC measured</th><th>MC paper</th><th>MC ours</th></tr>")
    body = ""
    for h in headline(rows, basis):
        body += f"<tr><td>{h['dim']}</td><td>{h['sparsity']:.2f}</td>"
        for m in ("ppl", "acc", "mc_acc"):
            meas = h[f"{m}_measured"]
            shown = "" if meas is None else (f"{meas:.4g}" if m == "ppl" else f"{meas:.3f}")
            body += f"<td><b>{shown}</b></td>" + cell(h, m, "paper") + cell(h, m, "ours")
        body += "</tr>"
    return f"<table>{head}{body}</table>"


def _table(summary: list[dict], rows: list[dict]) -> str:
    head = "<tr><th>predictor / estimator</th><th>mean |% err|</th><th>max |% err|</th><th>points</th></tr>"
    body = "".join(f"<tr><td>{html.escape(s['name'])}</td><td>{s['mean_abs_err']:.1f}</td>"
                   f"<td>{s['max_abs_err']:.1f}</td><td>{s['points']}</td></tr>" for s in summary)
    cols = ["dim", "sparsity", "params", "ppl_measured"] + [f"ppl_pred_{p}" for p in PREDICTORS] + [
        "ppl_est_cal_ratio", "acc_measured", "acc_pred_paper", "acc_pred_fisher", "mc_acc_measured",
        "mc_acc_pred_paper", "mc_acc_pred_fisher", "seconds"]
    cols = [c for c in cols if any(r.get(c) is not None for r in rows)]

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    pts = "<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>"
        for r in sorted(rows, key=lambda r: -r["dim"]))
    return f"<table>{head}{body}</table><h3>Points</h3><table>{pts}</table>"


def write_report(out: str | Path) -> Path:
    """Render DIR/report.html from DIR/results.json, dense.json, fisher.pt and settings.json."""
    out = Path(out)
    rows = json.loads((out / "results.json").read_text())["rows"]
    dense = json.loads((out / "dense.json").read_text())
    settings = json.loads((out / "settings.json").read_text())["settings"]
    tables = FisherTables.load(out / "fisher.pt") if (out / "fisher.pt").exists() else None
    figs = _figures(rows, dense, tables) if rows else []
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    summary = error_summary(rows) if rows else []
    mc = f", corpus-mc accuracy {dense['mc_acc']:.3f}" if dense.get("mc_acc") is not None else ""
    doc = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>slicedim sweep: {html.escape(settings['model'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}
table{{border-collapse:collapse;margin:8px 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>Representation dimension sweep</h1>
<p>model <b>{html.escape(settings['model'])}</b>, corpus <b>{html.escape(settings['corpus'])}</b>, basis
<b>{settings['basis']}</b>, calibration {settings['cal_samples']}×{settings['cal_seqlen']}, eval windows of
{settings['eval_seqlen']} (max {settings['max_eval_windows'] or 'all'}). Dense: PPL {dense['ppl']:.3f},
top-1 accuracy {dense['acc']:.4f}{mc}.</p>
<p>Predictors use only the dense model (its measured metrics and dense passes over calibration text):
<b>paper</b> ln PPL = (D/d') ln PPL<sub>0</sub>, acc = acc<sub>0</sub><sup>D/d'</sup> (our reading);
<b>fisher</b> PPL<sub>0</sub>·exp(Σ<sub>s</sub> ½ mean<sub>t</sub>(g·δ<sub>s</sub>)²) with per-site increments
δ<sub>s</sub> in the dense PCA bases, gradients on calibration windows the PCA did not see
(settings: grad_heldout); <b>fisher_cross</b> and <b>fisher_full</b> keep cross-site / all cross terms;
<b>fisher_semi*</b> use semi-interleaved bases derived from dense moments (at the swept widths only).
Ours: <b>fisher_semi</b> for interleaved sweeps, <b>fisher</b> for dense-basis sweeps.
Estimates marked "runs sliced model" are not predictions: <b>calibration</b> = exp(sliced loss on the
calibration windows), <b>cal_ratio</b> = PPL<sub>0</sub>·exp(that loss − dense calibration loss).
See docs/predictors.md.</p>
<h2>Measured vs the paper's prediction vs ours (<b>{ours(settings['basis'])}</b>)</h2>
<p>Predictions in brackets: signed error, % of the measured perplexity, percentage points for accuracies
(top-1 next-token accuracy on the eval windows; MC = the corpus-mc multiple-choice task).</p>
{_headline_html(rows, settings['basis']) if rows else ''}
<h2>All predictors: errors over the swept points with s &gt; 0</h2>{_table(summary, rows)}
{''.join(parts)}
</body></html>"""
    path = out / "report.html"
    path.write_text(doc)
    return path
