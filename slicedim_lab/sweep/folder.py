"""A sweep folder on disk: its settings check (resume, refuse or wipe) and its rows.

`DIR` holds
- `settings.json`: every setting that changes a number (model, corpus, basis, calibration/eval sizes, tasks,
  seeds) and its fingerprint. A sweep into a DIR with other settings is refused (or, with `fresh=True`,
  the old results are discarded) — rows are never silently reused. The list of points is not a setting:
  adding points to a finished sweep measures only the new ones. Its `runs` list says how each invocation
  measured (executor, cluster address, resources per point, the widths it measured and any that failed);
  how a sweep ran is not a setting either (an in-process sweep resumes a Ray one and vice versa).
- `dense.json`: the dense model's metrics (eval PPL/accuracy, multiple-choice accuracy, its width, its loss on
  the calibration windows), computed once.
- `<name>.pt`: each registered dense statistic made for the sweep's basis (`predict/statistics.py`: e.g.
  `fisher.pt`, the Fisher-increment tables; `jvp.pt`, the dense JVP of `jvp_power` and `ours`, interleaved
  sweeps only), computed once; one whose prediction settings (`Statistic.depends_on`) changed is dropped
  and made again.
- `results.csv` / `results.json`: one row per finished point, rewritten atomically after each point, so an
  interrupted sweep resumes at the first unfinished point without duplicates.
- `report.html`: the plotly report (`viz.report.write_report`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from .. import schema
from ..errors import UsageError
from ..files import atomic_file, write_json
from ..predict.registry import DenseMetrics, headline, predictor_names, predictors
from ..predict.statistics import statistics
from ..schema import ESTIMATORS
from .config import PREDICTION_SETTINGS, SWEEP_FORMAT, SweepConfig

DENSE_FILE = "dense.json"


def result_files() -> tuple[str, ...]:
    """Every file a sweep writes into its folder (each registered statistic's among them)."""
    return ("results.csv", "results.json", DENSE_FILE, *(s.file for s in statistics()), "report.html",
            "settings.json")


def prepare_dir(out: Path, cfg: SweepConfig, fresh: bool = False, log=print) -> None:
    """Create DIR or check that it holds a sweep with the same settings (then it resumes); one with other
    settings is refused, or wiped with `fresh`.
    If only prediction settings changed, the measured rows are kept and every statistic that reads one of
    them is dropped (the predictions of every row are recomputed from the new statistics)."""
    out.mkdir(parents=True, exist_ok=True)
    sfile = out / "settings.json"
    runs: list[dict] = []  # how earlier invocations ran: kept unless the results are discarded
    if sfile.exists():
        old = json.loads(sfile.read_text())
        runs = old.get("runs", [])
        was = old.get("format", 1)
        if old.get("fingerprint") != cfg.fingerprint() or was != SWEEP_FORMAT:
            changed = sorted(k for k, v in asdict(cfg).items() if old.get("settings", {}).get(k) != v)
            if was != SWEEP_FORMAT:
                changed = [f"made by an older slicedim-lab: format {was}, now {SWEEP_FORMAT}"]
            if changed and set(changed) <= set(PREDICTION_SETTINGS) and not fresh:
                log(f"{out}: prediction settings changed ({', '.join(changed)}): measured rows kept, "
                    "predictions recomputed")
                stale = [s.file for s in statistics() if set(changed) & set(s.depends_on)]
                for name in (*stale, "report.html"):
                    (out / name).unlink(missing_ok=True)
            elif not fresh:
                what = ", ".join(changed) or "?"
                raise UsageError(f"{out} holds a sweep with other settings (changed: {what}); "
                                 "use --fresh to discard its results, or another --out")
            else:
                runs = []
                for name in result_files():
                    (out / name).unlink(missing_ok=True)
    elif any((out / n).exists() for n in result_files()):
        if not fresh:
            raise UsageError(f"{out} holds results without settings.json; use --fresh or another --out")
        for name in result_files():
            (out / name).unlink(missing_ok=True)
    meta = {"fingerprint": cfg.fingerprint(), "format": SWEEP_FORMAT, "settings": asdict(cfg)}
    write_json(sfile, {**meta, "runs": runs} if runs else meta)


def record_run(out: Path, run: dict) -> None:
    """Add (or update: same `id`) one invocation's record in DIR/settings.json's `runs`, atomically."""
    sfile = out / "settings.json"
    meta = json.loads(sfile.read_text())
    runs = [r for r in meta.get("runs", []) if r.get("id") != run["id"]]
    write_json(sfile, {**meta, "runs": [*runs, run]})


def load_stats(out: Path) -> dict:
    """The dense statistics a sweep folder holds, by the name predictors ask for (None where absent)."""
    return {s.name: s.load(out / s.file) if (out / s.file).exists() else None for s in statistics()}


def dense_metrics(raw: dict, hidden: int) -> DenseMetrics:
    """DenseMetrics from a sweep's dense.json."""
    return DenseMetrics(ppl=raw["ppl"], acc=raw["acc"], hidden=hidden, mc_acc=raw.get("mc_acc"),
                        cal_nll=raw.get("cal_nll"), mc_chance=raw.get("mc_chance"))


def read_dense(out: Path, stats: dict, fallback: int | None = None) -> DenseMetrics:
    """The dense metrics of DIR/dense.json. A folder written before dense.json kept the width takes it from
    its statistics (each carries `hidden`), else from `fallback`."""
    raw = json.loads((out / DENSE_FILE).read_text())
    hidden = raw.get("hidden") or next((s.hidden for s in stats.values() if s is not None), fallback)
    if hidden is None:
        raise UsageError(f"{out / DENSE_FILE} does not say the model's width and no statistic is there")
    return dense_metrics(raw, hidden)


def read_rows(out: Path) -> list[dict]:
    """The finished rows of DIR/results.json (numbers as numbers), [] if none."""
    f = out / "results.json"
    return json.loads(f.read_text())["rows"] if f.exists() else []


def write_rows(out: Path, rows: list[dict], columns: list[str]) -> None:
    """results.csv and results.json, each replaced atomically."""
    rows = sorted(rows, key=lambda r: -r["dim"])
    columns = columns + [c for c in schema.PLAN_COLUMNS if any(c in r for r in rows)]  # `sweep --plan`
    with atomic_file(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
    write_json(out / "results.json", {"columns": columns, "rows": rows})


def columns(cfg: SweepConfig) -> list[str]:
    """The CSV columns of a sweep with these settings (every registered predictor and statistic, `schema`
    names)."""
    names = predictor_names()
    cols = ["dim", "sparsity", "params", schema.measured("ppl"), schema.lo("ppl", "measured"),
            schema.hi("ppl", "measured")]
    for p in predictors():
        cols += [schema.pred("ppl", p.name), schema.err(p.name)]
        cols += [schema.lo("ppl", p.name), schema.hi("ppl", p.name)] if p.interval else []
    if cfg.anchor_dims:
        a = schema.anchored(headline(cfg.basis))
        cols += ["anchor", schema.pred("ppl", a), schema.err(a), schema.lo("ppl", a), schema.hi("ppl", a)]
    cols += [schema.est(e) for e in ESTIMATORS] + [schema.est_err(e) for e in ESTIMATORS]
    cols += [schema.measured("acc")] + [schema.pred("acc", p) for p in names]
    if "corpus-mc" in cfg.tasks:
        cols += [schema.measured("mc_acc"), schema.measured("mc_acc_norm")]
        cols += [schema.pred("mc_acc", p) for p in names]
    cols += [f"task_{t}_{m}" for t in cfg.tasks if t != "corpus-mc" for m in ("acc", "acc_norm")]
    cols += [schema.dloss(p.name) for p in predictors() if p.needs_tables]
    cols += [schema.measured("dloss"), *(c for s in statistics(cfg.basis) for c in s.diagnostic_columns)]
    cols += ["cal_loss", "seconds"]
    return cols
