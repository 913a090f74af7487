"""`DIR/report.html`: a self-contained plotly report of a sweep (plotly.js inline, opens offline).

It opens with measured values beside the paper's prediction and ours (signed errors), then the error
summary of every predictor and estimator and the points. Panels (`viz.figures`, the functions the widgets
draw with too): measured and predicted perplexity against d' (a line for a predictor known at every d',
dashed markers for one known only at some), next-token and multiple-choice accuracy, the signed % errors
(bars clipped), and the loss increase the Fisher predictor charges to each site beside the energy the
dense PCA discards there. Predictors the registry does not mark `shown` wait in the legend.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go

from .. import schema
from ..eval.uncertainty import LEVEL
from ..files import write_text
from ..predict import Tables, stats_by_name
from ..predict.registry import DenseMetrics, ours, predictor_names, predictors
from ..sweep.folder import load_stats
from .figures import error_figure, prediction_figure, sites_figure
from .tables import default_curves, measured_table, site_table

HEADLINE_METRICS = ("ppl", "acc", "mc_acc")
HEIGHT = 460


def error_summary(rows: list[dict]) -> list[dict]:
    """Mean and max |% error| of every PPL predictor/estimator over the rows with sparsity > 0 (an anchored
    prediction over the rows that were not its anchors), and for predictors with intervals the share of
    those rows whose measured value lies inside (`coverage`)."""
    pts = [r for r in rows if r["sparsity"] > 1e-9] or rows
    names = [(p, schema.err(p)) for p in predictor_names()]
    names += [(schema.anchored(p), schema.err(schema.anchored(p))) for p in predictor_names()]
    out = []
    for name, col in names + [(f"est:{e}", schema.est_err(e)) for e in schema.ESTIMATORS]:
        use = [r for r in pts if not (name.endswith("_anchored") and r.get("anchor"))]
        errs = [abs(r[col]) for r in use if r.get(col) is not None]
        if errs:
            s = {"name": name, "mean_abs_err": sum(errs) / len(errs), "max_abs_err": max(errs),
                 "points": len(errs)}
            inside = [r[schema.lo("ppl", name)] <= r[schema.measured("ppl")] <= r[schema.hi("ppl", name)]
                      for r in use if r.get(schema.lo("ppl", name)) is not None]
            if inside:
                s["coverage"] = sum(inside) / len(inside)
            out.append(s)
    return out


def headline(rows: list[dict], basis: str) -> list[dict]:
    """Per point (widest first): measured, `paper` and ours (`ours(basis)`) side by side with signed errors
    (% for perplexity, points for accuracies): keys `<m>_measured`, `<m>_<tag>`, `<m>_err_<tag>` for
    m in ppl / acc / mc_acc and tag in paper / ours."""
    out = []
    for r in sorted(rows, key=lambda r: -r["dim"]):
        h = {"dim": r["dim"], "sparsity": r["sparsity"]}
        for m in HEADLINE_METRICS:
            meas = h[f"{m}_measured"] = r.get(schema.measured(m))
            for tag, name in (("paper", "paper"), ("ours", ours(basis))):
                v = h[f"{m}_{tag}"] = r.get(schema.pred(m, name))
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

    lines = [f"measured vs paper vs ours{_named(basis)}: perplexity errors in %, accuracy errors in points",
             "   d'     s  ppl meas         ppl paper          ppl ours  acc meas         acc paper"
             "          acc ours   mc meas          mc paper           mc ours"]
    for h in headline(rows, basis):
        cols = [f"{h['dim']:>5} {h['sparsity']:5.2f}"]
        for m in HEADLINE_METRICS:
            if h[f"{m}_measured"] is not None:
                cols.append(f"{h[f'{m}_measured']:9.3f} {cell(h, m, 'paper')} {cell(h, m, 'ours')}")
        lines.append(" ".join(cols))
    return "\n".join(lines + _interval_lines(rows, basis))


def _named(basis: str) -> str:
    """` (name)` of the headline predictor unless it is called `ours` itself."""
    return "" if ours(basis) == "ours" else f" ({ours(basis)})"


def _interval_lines(rows: list[dict], basis: str) -> list[str]:
    """Perplexity with its 90% intervals: measured (bootstrap over eval windows) beside ours and, if the
    sweep has anchors, the anchored headline; `in` marks a measured value inside ours' interval."""
    head, anch = ours(basis), schema.anchored(ours(basis))
    rs = [r for r in sorted(rows, key=lambda r: -r["dim"]) if r["sparsity"] > 1e-9]
    if not any(r.get(schema.lo("ppl", head)) is not None for r in rs):
        return []

    def iv(r: dict, who: str) -> str:
        lo, hi = r.get(schema.lo("ppl", who)), r.get(schema.hi("ppl", who))
        return f"[{lo:7.2f}, {hi:7.2f}]" if lo is not None and hi is not None else f"{'':18}"

    out = ["", f"perplexity with {LEVEL:.0%} intervals (measured: bootstrap over its eval windows)",
           "   d'  measured  interval             ours  interval             in"
           + ("   anchored (err)" if any(r.get(schema.pred("ppl", anch)) is not None for r in rs) else "")]
    for r in rs:
        meas, pred = r[schema.measured("ppl")], r.get(schema.pred("ppl", head))
        lo, hi = r.get(schema.lo("ppl", head)), r.get(schema.hi("ppl", head))
        inside = "" if lo is None else ("yes" if lo <= meas <= hi else "no")
        line = (f"{r['dim']:>5} {meas:9.3f} {iv(r, 'measured')} "
                + (f"{pred:8.3f} " if pred is not None else f"{'—':>8} ") + f"{iv(r, head)} {inside:>3}")
        if r.get(schema.pred("ppl", anch)) is not None:
            tag = " (anchor)" if r.get("anchor") else f" ({r[schema.err(anch)]:+.1f}%)"
            line += f"   {r[schema.pred('ppl', anch)]:8.3f}{tag}"
        out.append(line)
    return out


def _figures(rows: list[dict], dense: dict, stats: Tables) -> list[go.Figure]:
    """The report's panels, drawn by the same `viz.figures` functions as the widgets: perplexity, top-1 and
    (if measured) multiple-choice accuracy against d', the signed errors, and the per-site Fisher charge."""
    mt = measured_table(rows)
    dims = [int(d) for d in mt["dim"]]
    stats = stats_by_name(stats)
    tables = stats.get("fisher")
    D = tables.hidden if tables is not None else max(dims)
    dm = DenseMetrics(ppl=dense["ppl"], acc=dense["acc"], hidden=D, mc_acc=dense.get("mc_acc"),
                      mc_chance=dense.get("mc_chance"))
    curves = default_curves(dm, stats, max(8, min(dims) - 16), measured=dims)
    figs = [prediction_figure(curves, "ppl", mt, title="Perplexity: measured vs predicted"),
            prediction_figure(curves, "acc", mt, title="Next-token top-1 accuracy")]
    if schema.measured("mc_acc") in mt and mt[schema.measured("mc_acc")].notna().any():
        figs.append(prediction_figure(curves, "mc_acc", mt, also_measured=("mc_acc_norm",),
                                      title="Multiple-choice accuracy (corpus-mc)"))
    figs.append(error_figure(mt, title="Perplexity error (signed %, predicted/measured − 1)"))
    if tables is not None:
        figs.append(sites_figure(site_table(tables, [d for d in dims if d < D]),
                                 title="Fisher predictor: loss increase charged to each site (nats), "
                                       "beside the energy the dense PCA discards"))
    for f in figs:
        f.update_layout(height=HEIGHT)
    return figs


def _headline_html(rows: list[dict], basis: str) -> str:
    def cell(h: dict, m: str, tag: str) -> str:
        v, e = h[f"{m}_{tag}"], h[f"{m}_err_{tag}"]
        if v is None:
            return "<td></td>"
        if e is None:  # predicted, not measured (e.g. multiple choice predicted from the dense accuracy)
            return f"<td>{v:.4g}</td>" if m == "ppl" else f"<td>{v:.3f}</td>"
        val, err = (f"{v:.4g}", f"{e:+.0f}%") if m == "ppl" else (f"{v:.3f}", f"{e:+.1f}")
        return f"<td>{val} <small>({err})</small></td>"

    head = ("<tr><th>d'</th><th>s</th><th>PPL measured</th><th>PPL paper</th><th>PPL ours</th>"
            "<th>top-1 measured</th><th>top-1 paper</th><th>top-1 ours</th>"
            "<th>MC measured</th><th>MC paper</th><th>MC ours</th></tr>")
    body = ""
    for h in headline(rows, basis):
        body += f"<tr><td>{h['dim']}</td><td>{h['sparsity']:.2f}</td>"
        for m in HEADLINE_METRICS:
            meas = h[f"{m}_measured"]
            shown = "" if meas is None else (f"{meas:.4g}" if m == "ppl" else f"{meas:.3f}")
            body += f"<td><b>{shown}</b></td>" + cell(h, m, "paper") + cell(h, m, "ours")
        body += "</tr>"
    return f"<table>{head}{body}</table>"


def _table(summary: list[dict], rows: list[dict], basis: str) -> str:
    head = "<tr><th>predictor / estimator</th><th>mean |% err|</th><th>max |% err|</th><th>points</th></tr>"
    body = "".join(f"<tr><td>{html.escape(s['name'])}</td><td>{s['mean_abs_err']:.1f}</td>"
                   f"<td>{s['max_abs_err']:.1f}</td><td>{s['points']}</td></tr>" for s in summary)
    heads = list(dict.fromkeys(["paper", ours(basis)]))
    cols = ["dim", "sparsity", "params", schema.measured("ppl")] + [schema.pred("ppl", p) for p in
                                                                     predictor_names()]
    cols += [schema.est(e) for e in schema.ESTIMATORS]
    for m in HEADLINE_METRICS[1:]:
        cols += [schema.measured(m)] + [schema.pred(m, p) for p in heads]
    cols += ["seconds"]
    cols = [c for c in cols if any(r.get(c) is not None for r in rows)]

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    pts = "<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>"
        for r in sorted(rows, key=lambda r: -r["dim"]))
    return f"<table>{head}{body}</table><h3>Points</h3><table>{pts}</table>"


def _predictor_list() -> str:
    """Every registered predictor with its summary, the ones the figures open with marked (from the
    registry, so a new predictor is listed with no edit here)."""
    items = "".join(f"<li><b>{html.escape(p.name)}</b>{' (drawn)' if p.shown else ''}: "
                    f"{html.escape(p.summary)}</li>" for p in predictors())
    return f"<p>Registered predictors (the others wait in the figures' legends):</p><ul>{items}</ul>"


def write_report(out: str | Path) -> Path:
    """Render DIR/report.html from DIR/results.json, dense.json, settings.json and its dense statistics."""
    out = Path(out)
    rows = json.loads((out / "results.json").read_text())["rows"]
    dense = json.loads((out / "dense.json").read_text())
    settings = json.loads((out / "settings.json").read_text())["settings"]
    figs = _figures(rows, dense, load_stats(out)) if rows else []
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
{_predictor_list()}
<h2>Measured vs the paper's prediction vs ours{html.escape(_named(settings['basis']))}</h2>
<p>Predictions in brackets: signed error, % of the measured perplexity, percentage points for accuracies
(top-1 next-token accuracy on the eval windows; MC = the corpus-mc multiple-choice task).</p>
{_headline_html(rows, settings['basis']) if rows else ''}
<h2>All predictors: errors over the swept points with s &gt; 0</h2>{_table(summary, rows, settings['basis'])}
{''.join(parts)}
</body></html>"""
    path = out / "report.html"
    write_text(path, doc)
    return path
