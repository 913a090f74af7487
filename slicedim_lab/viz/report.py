"""`DIR/report.html`: a self-contained plotly report of a sweep (plotly.js inline, opens offline).

It opens with measured values beside the paper's prediction and the sweep's headline predictor
(`registry.headline(basis)`, signed errors), then the error summary of every predictor and estimator and the
points. Panels (`viz.figures`, the functions the widgets draw with too): measured and predicted perplexity
against d' (a line for a predictor known at every d', dashed markers for one known only at some),
next-token and multiple-choice accuracy, the signed % errors (bars clipped), and, for every statistic that
declares per-site rows (`Statistic.sites`), the loss increase it charges to each site beside the energy the
dense PCA discards there. Predictors, statistics and the headline all come from the registries: nothing here
names one. Predictors the registry does not mark `shown` wait in the legend.
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
from ..predict import Stats, curves
from ..predict.registry import DenseMetrics, headline, predictor_names, predictors
from ..predict.statistics import statistics
from ..schema import BASES
from ..sweep.folder import load_stats, read_dense
from .figures import error_figure, prediction_figure, sites_figure
from .plan import plan_sweep_figure, plan_table_html, planned_rows
from .tables import curve_table, error_summary, measured_table, site_table

HEADLINE_METRICS = ("ppl", "acc", "mc_acc")
HEIGHT = 460


def headline_rows(rows: list[dict], basis: str) -> list[dict]:
    """Per point (widest first): measured, `paper` and the headline predictor (`headline(basis)`) side by
    side with signed errors (% for perplexity, points for accuracies): keys `<m>_measured`, `<m>_<tag>`,
    `<m>_err_<tag>` for m in ppl / acc / mc_acc and tag in paper / head."""
    out = []
    for r in sorted(rows, key=lambda r: -r["dim"]):
        h = {"dim": r["dim"], "sparsity": r["sparsity"]}
        for m in HEADLINE_METRICS:
            meas = h[f"{m}_measured"] = r.get(schema.measured(m))
            for tag, name in (("paper", "paper"), ("head", headline(basis))):
                v = h[f"{m}_{tag}"] = r.get(schema.pred(m, name))
                h[f"{m}_err_{tag}"] = None if v is None or meas is None else (
                    100 * (v / meas - 1) if m == "ppl" else 100 * (v - meas))
        out.append(h)
    return out


def headline_text(rows: list[dict], basis: str) -> str:
    """`headline_rows` as a fixed-width text table (the sweep prints it at the end)."""

    def cell(h: dict, m: str, tag: str) -> str:
        v, e = h[f"{m}_{tag}"], h[f"{m}_err_{tag}"]
        if v is None:
            return f"{'—':>17}"
        return f"{v:8.3f} ({e:+5.0f}%)" if m == "ppl" else f"{v:8.3f} ({e:+5.1f})"

    head = headline(basis)
    lines = [f"measured vs paper vs {head}: perplexity errors in %, accuracy errors in points",
             "   d'     s" + "".join(f" {m + ' meas':>9} {m + ' paper':>17} {m + ' ' + head:>17}"
                                     for m in ("ppl", "acc", "mc"))]
    for h in headline_rows(rows, basis):
        cols = [f"{h['dim']:>5} {h['sparsity']:5.2f}"]
        for m in HEADLINE_METRICS:
            if h[f"{m}_measured"] is not None:
                cols.append(f"{h[f'{m}_measured']:9.3f} {cell(h, m, 'paper')} {cell(h, m, 'head')}")
        lines.append(" ".join(cols))
    return "\n".join(lines + _interval_lines(rows, basis))


def _interval_lines(rows: list[dict], basis: str) -> list[str]:
    """Perplexity with its 90% intervals: measured (bootstrap over eval windows) beside the headline and, if
    the sweep has anchors, the anchored headline; `in` marks a measured value inside the headline's
    interval."""
    head = headline(basis)
    anch = schema.anchored(head)
    rs = [r for r in sorted(rows, key=lambda r: -r["dim"]) if r["sparsity"] > 1e-9]
    if not any(r.get(schema.lo("ppl", head)) is not None for r in rs):
        return []

    def iv(r: dict, who: str) -> str:
        lo, hi = r.get(schema.lo("ppl", who)), r.get(schema.hi("ppl", who))
        return f"[{lo:7.2f}, {hi:7.2f}]" if lo is not None and hi is not None else f"{'':18}"

    out = ["", f"perplexity with {LEVEL:.0%} intervals (measured: bootstrap over its eval windows)",
           f"   d'  measured  interval{head:>17}  interval             in"
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


def _figures(rows: list[dict], dense: DenseMetrics, stats: Stats) -> list[go.Figure]:
    """The report's panels, drawn by the same `viz.figures` functions as the widgets: perplexity, top-1 and
    (if measured) multiple-choice accuracy against d', the signed errors, and the per-site charge of every
    statistic that declares one."""
    mt = measured_table(rows)
    dims = [int(d) for d in mt["dim"]]
    cv = curve_table(curves(dense, stats, max(8, min(dims) - 16), measured=dims))
    figs = [prediction_figure(cv, "ppl", mt, title="Perplexity: measured vs predicted"),
            prediction_figure(cv, "acc", mt, title="Next-token top-1 accuracy")]
    if schema.measured("mc_acc") in mt and mt[schema.measured("mc_acc")].notna().any():
        figs.append(prediction_figure(cv, "mc_acc", mt, also_measured=("mc_acc_norm",),
                                      title="Multiple-choice accuracy (corpus-mc)"))
    figs.append(error_figure(mt, title="Perplexity error (signed %, predicted/measured − 1)"))
    if planned_rows(rows):  # `slicedim sweep --plan`: planned widths beside uniform ones
        figs.append(plan_sweep_figure(rows))
    for st in statistics():
        if st.sites is not None and stats.get(st.name) is not None:
            narrow = [d for d in dims if d < dense.hidden]
            figs.append(sites_figure(site_table(st.sites(stats[st.name], narrow)), title=st.sites_title))
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

    name = html.escape(headline(basis))
    head = "<tr><th>d'</th><th>s</th>" + "".join(f"<th>{m} measured</th><th>{m} paper</th><th>{m} {name}</th>"
                                                 for m in ("PPL", "top-1", "MC")) + "</tr>"
    body = ""
    for h in headline_rows(rows, basis):
        body += f"<tr><td>{h['dim']}</td><td>{h['sparsity']:.2f}</td>"
        for m in HEADLINE_METRICS:
            meas = h[f"{m}_measured"]
            shown = "" if meas is None else (f"{meas:.4g}" if m == "ppl" else f"{meas:.3f}")
            body += f"<td><b>{shown}</b></td>" + cell(h, m, "paper") + cell(h, m, "head")
        body += "</tr>"
    return f"<table>{head}{body}</table>"


def _table(summary: list[dict], rows: list[dict], basis: str) -> str:
    head = "<tr><th>predictor / estimator</th><th>mean |% err|</th><th>max |% err|</th><th>points</th></tr>"
    body = "".join(f"<tr><td>{html.escape(s['name'])}</td><td>{s['mean_abs_err']:.1f}</td>"
                   f"<td>{s['max_abs_err']:.1f}</td><td>{s['points']}</td></tr>" for s in summary)
    heads = list(dict.fromkeys(["paper", headline(basis)]))
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
    """Every registered predictor with its summary and the statistic it reads, the ones the figures open
    with marked, the headline of each basis, and every dense statistic (from the registries, so a new
    predictor or statistic is listed with no edit here)."""
    items = "".join(f"<li><b>{html.escape(p.name)}</b>{' (drawn)' if p.shown else ''}: "
                    f"{html.escape(p.summary)}{f' [reads {html.escape(p.needs)}]' if p.needs else ''}</li>"
                    for p in predictors())
    heads = ", ".join(f"<b>{html.escape(headline(b))}</b> for {b} sweeps" for b in BASES)
    stats = "".join(f"<li><b>{html.escape(s.name)}</b> ({', '.join(s.bases)} sweeps): "
                    f"{html.escape(s.summary)}</li>" for s in statistics())
    return (f"<p>Registered predictors (the others wait in the figures' legends):</p><ul>{items}</ul>"
            f"<p>The headline set beside the paper's law: {heads}.</p>"
            "<p>Dense statistics (made once from the dense model, kept in the sweep folder):</p>"
            f"<ul>{stats}</ul>")


def write_report(out: str | Path) -> Path:
    """Render DIR/report.html from DIR/results.json, dense.json, settings.json and its dense statistics."""
    out = Path(out)
    rows = json.loads((out / "results.json").read_text())["rows"]
    dense = json.loads((out / "dense.json").read_text())
    settings = json.loads((out / "settings.json").read_text())["settings"]
    stats = load_stats(out)
    dm = read_dense(out, stats, fallback=max((int(r["dim"]) for r in rows), default=None))
    figs = _figures(rows, dm, stats) if rows else []
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
<p>Predictors use only the dense model (its measured metrics and dense statistics made from dense passes;
none runs a sliced or projected model). Estimates marked "runs sliced model" are not predictions:
<b>calibration</b> = exp(sliced loss on the
calibration windows), <b>cal_ratio</b> = PPL<sub>0</sub>·exp(that loss − dense calibration loss).
See docs/predictors.md.</p>
{_predictor_list()}
<h2>Measured vs the paper's prediction vs {html.escape(headline(settings['basis']))}</h2>
<p>Predictions in brackets: signed error, % of the measured perplexity, percentage points for accuracies
(top-1 next-token accuracy on the eval windows; MC = the corpus-mc multiple-choice task).</p>
{_headline_html(rows, settings['basis']) if rows else ''}
{plan_table_html(rows)}
<h2>All predictors: errors over the swept points with s &gt; 0</h2>{_table(summary, rows, settings['basis'])}
{''.join(parts)}
</body></html>"""
    path = out / "report.html"
    write_text(path, doc)
    return path
