"""One sweep runner: a sweep folder's dense state made once, then any width measured for real or predicted.

The steps are named verbs, each a small function (SliceGPT's `rotate.py` style), and the state they make is
explicit:

1. `open_sweep`: `SweepConfig.check` → `shallower` (a model cut to its first layers is another model) →
   `folder.prepare_dir` (resume, refuse or wipe) → `Executor.connect` (a cluster that cannot run a point is
   refused before the model loads) → `inputs.load_inputs` (model and windows) → `dense_pca` (dense-basis
   sweeps) → an `OpenSweep`: everything but predictions.
2. `SweepRunner(sweep, widths)`: the rows already in the folder, then the dense state (`state.dense_state`:
   dense.json and every registered statistic of the basis, answering at `widths` and the measured widths).
3. `SweepRunner.measure` / `measure_points` / `run` measure widths (`point.measure_point`, run by an executor:
   in-process or Ray; the driver alone turns results into rows and writes them, as points finish);
   `predictions` predicts from the dense state alone (no sliced or projected model anywhere).

`run_sweep` (`slicedim sweep`) and `predict_only` (`slicedim predict`) orchestrate these; the notebook's live
bench is `SweepRunner.open`. Rows get their derived columns from `predict.predict_point` only
(`with_predictions`). The folder format is `sweep/folder.py`'s.
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import schema
from ..core.pca import SitePCA
from ..core.replay import dense_pcas
from ..core.sites import model_sites
from ..errors import UsageError
from ..eval.uncertainty import ppl_interval
from ..load.models import LoadedModel, keep_first_layers, load_model
from ..predict import Anchoring, anchoring, predict, predict_point
from ..predict.registry import DenseMetrics, headline, predictor_names
from ..viz.report import write_report
from . import point
from .config import SweepConfig, parse_points
from .executors import Executor, InProcess, ModelSpec, PointsFailed, error_line
from .folder import columns, load_stats, prepare_dir, read_dense, read_rows, record_run, write_rows
from .inputs import Inputs, load_inputs
from .point import Measured, PointWork
from .state import DenseState, dense_state, needed_statistics

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- rows


def measured_row(m: Measured, sparsity: float) -> dict:
    """A finished point's measured columns (`schema` names): metrics, parameters, seconds, the interval of
    the measured perplexity over its eval windows and the sliced calibration loss (interleaved)."""
    meas = m.meas
    row = {"dim": m.dim, "sparsity": sparsity, "params": m.params, schema.measured("ppl"): meas["ppl"],
           schema.measured("acc"): meas["acc"], schema.measured("mc_acc"): meas.get("mc_acc"),
           schema.measured("mc_acc_norm"): meas.get("mc_acc_norm"),
           **{k: v for k, v in meas.items() if k.startswith("task_")}, "seconds": m.seconds}
    if meas.get("window_nll"):  # the eval windows are a sample too: the measured value's own interval
        lo, hi = ppl_interval(meas["window_nll"])
        row[schema.lo("ppl", "measured")], row[schema.hi("ppl", "measured")] = lo, hi
    if m.cal_loss is not None:
        row["cal_loss"] = m.cal_loss
    return row


def with_predictions(row: dict, dense: DenseMetrics, stats: dict, anchored: Anchoring | None = None) -> dict:
    """`row`'s measured columns with every derived column made again by `predict_point`, so rows measured
    earlier always carry the current predictors' numbers (measured columns are never touched)."""
    kept = {k: v for k, v in row.items() if not schema.is_derived(k)}
    return {**kept, **predict_point(dense, int(row["dim"]), stats, measured=row, anchoring=anchored)}


def point_line(row: dict) -> str:
    """One log line for a finished point: measured perplexity and every prediction with its error."""
    preds = "  ".join(f"{p} {row[schema.pred('ppl', p)]:.3f} ({row[schema.err(p)]:+.1f}%)"
                      for p in predictor_names() if row.get(schema.err(p)) is not None)
    return (f"d'={row['dim']:4d} s={row['sparsity']:.2f}  ppl {row[schema.measured('ppl')]:.3f}  {preds}"
            f"  [{row['seconds']:.0f}s]")


# ----------------------------------------------------------------------------- opening a sweep


@dataclass
class OpenSweep:
    """A sweep opened on its folder: settings, folder (None: nothing stored), model and windows, the dense
    bases of a dense-basis sweep, the connected executor and how its workers get the model (`spec`; None:
    the driver's model travels by value) — everything but predictions."""

    cfg: SweepConfig
    out: Path | None
    inp: Inputs
    pcas: list[SitePCA] | None
    executor: Executor
    spec: ModelSpec | None
    batch_size: int
    progress: bool
    log: Log

    @property
    def hidden(self) -> int:
        return self.inp.model.config.hidden_size

    def points(self, sparsities: list[float] | None = None, dims: list[int] | None = None) -> list[tuple]:
        """(d', sparsity) pairs of a request, as `parse_points` reads it."""
        return parse_points(self.hidden, sparsities, dims, self.cfg.round_interval)

    def check_anchors(self) -> None:
        bad = [d for d in self.cfg.anchor_dims if not 1 <= d < self.hidden]
        if bad:
            raise UsageError(f"anchor widths must lie in [1, {self.hidden - 1}], got {bad[0]}")

    def with_anchors(self, points: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """`points` and the anchor widths not among them (the anchors are measured like any point)."""
        self.check_anchors()
        return points + [(d, 1 - d / self.hidden) for d in self.cfg.anchor_dims if d not in dict(points)]


def shallower(cfg: SweepConfig, lm: LoadedModel | None, device: str,
              max_layers: int | None) -> tuple[SweepConfig, LoadedModel | None]:
    """Keep only the first `max_layers` decoder layers (smoke runs). A shallower model is another model: its
    name in the settings (and so the fingerprint) says so, and such a folder never mixes with the whole
    model's."""
    if max_layers is None:
        return cfg, lm
    lm = lm or load_model(cfg.model, device=device, dtype=cfg.dtype)
    if max_layers < lm.model.config.num_hidden_layers:
        keep_first_layers(lm.model, max_layers)
        cfg = replace(cfg, model=f"{cfg.model}#first-{max_layers}-layers")
    return cfg, lm


def dense_pca(cfg: SweepConfig, inp: Inputs, progress: bool) -> list[SitePCA] | None:
    """The dense model's per-site PCA on the calibration windows: the bases a dense-basis sweep projects on
    (None for interleaved sweeps, whose bases every slice calibrates anew)."""
    return dense_pcas(inp.model, inp.cal_ids, progress=progress) if cfg.basis == "dense" else None


def open_sweep(cfg: SweepConfig, out: str | Path | None, *, lm: LoadedModel | None = None,
               device: str = "auto", batch_size: int = 4, fresh: bool = False, progress: bool = True,
               max_layers: int | None = None, log: Log = print,
               executor: Executor | None = None) -> OpenSweep:
    """Check the settings, cut the model (`max_layers`), check the folder against the settings, connect the
    executor, load the model and the windows, and (dense basis) compute the dense PCA."""
    cfg.check()
    executor = executor or InProcess()
    spec = ModelSpec.of(cfg.model, cfg.dtype, max_layers) if lm is None else None
    cfg, lm = shallower(cfg, lm, device, max_layers)
    out = Path(out) if out is not None else None
    if out is not None:
        prepare_dir(out, cfg, fresh, log=log)
    executor.connect()
    inp = load_inputs(cfg, lm, device)
    return OpenSweep(cfg, out, inp, dense_pca(cfg, inp, progress), executor, spec, batch_size, progress, log)


# ----------------------------------------------------------------------------- the runner


class SweepRunner:
    """A sweep (or a prediction) over one opened sweep: its rows and its dense state (`state`: dense metrics
    and every statistic, by name), made on construction to answer at `widths` and at every measured width.

    `executor` measures the points (`InProcess`, or `RayExecutor`: Ray tasks whose workers load the model by
    name, or get the weights of an in-memory model through the object store)."""

    def __init__(self, sweep: OpenSweep, widths: Sequence[int] = (), predictors: Sequence[str] | None = None):
        self.sweep = sweep
        self.only = needed_statistics(predictors)  # build only what these predictors read (None: all)
        self.cfg, self.out, self.inp, self.pcas = sweep.cfg, sweep.out, sweep.inp, sweep.pcas
        self.executor, self.batch_size, self.progress, self.log = (sweep.executor, sweep.batch_size,
                                                                    sweep.progress, sweep.log)
        self.hidden, self.sites = sweep.hidden, model_sites(sweep.inp.model)
        self.rows: list[dict] = read_rows(self.out) if self.out is not None else []
        self._opened = False
        self.schedules: dict[int, list[int]] = {}  # `sweep --plan`: set before the executor opens
        self._run: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "started": _now(), "measured": [],
                                     "failed": {}}
        self.state = self._dense_state(widths)

    @classmethod
    def open(cls, cfg: SweepConfig, out: str | Path | None, *, widths: Sequence[int] = (),
             **options: Any) -> SweepRunner:
        """`open_sweep(cfg, out, **options)`, then the runner with its dense state at `widths` (e.g. the
        widths a notebook will ask the semi-interleaved predictors about)."""
        return cls(open_sweep(cfg, out, **options), widths)

    # -- the dense state

    def _dense_state(self, widths: Sequence[int], held: DenseState | None = None) -> DenseState:
        return dense_state(self.out, self.inp, self.cfg, self.pcas, [*widths, *self.measured()],
                           batch_size=self.batch_size, progress=self.progress, log=self.log, held=held,
                           only=self.only)

    @property
    def dense(self) -> DenseMetrics:
        return self.state.metrics

    @property
    def stats(self) -> dict:
        """The dense statistics by the name predictors ask for (`Predictor.needs`)."""
        return self.state.stats

    def cover(self, dims: Sequence[int]) -> None:
        """Make every statistic answer at `dims` (and every measured width) too; a statistic that does is
        kept as it is (dense-only work, done before anything sliced runs)."""
        self.state = self._dense_state(dims, held=self.state)

    # -- points

    def points(self, sparsities: list[float] | None = None, dims: list[int] | None = None) -> list[tuple]:
        return self.sweep.points(sparsities, dims)

    def measured(self) -> dict[int, dict]:
        return {int(r["dim"]): r for r in self.rows}

    def measured_ppl(self) -> dict[int, float]:
        return {d: r[schema.measured("ppl")] for d, r in self.measured().items()}

    def _is_dense(self, dim: int) -> bool:
        return dim == self.hidden and not self.cfg.slice_head

    def _executor(self) -> Executor:
        """The executor, opened on first use with the shared state."""
        if not self._opened:
            ex = self.executor
            inp = replace(self.inp, model=None) if ex.remote else self.inp
            work = PointWork(self.cfg, inp, self.pcas, self.batch_size, self.progress and not ex.remote,
                             self.schedules)
            ex.open(work, self.inp.model, self.sweep.spec, self.log)
            self._opened = True
        return self.executor

    def map_points(self, fn: Callable[[PointWork, Any, int], Measured], dims: list[int]):
        """`fn(work, model, d)` over `dims` on the executor (opened on first use), outcomes as they finish:
        for point functions other than `point.measure_point` (`sweep --plan`'s `point.measure_planned`)."""
        return self._executor().map(fn, dims)

    def merge(self, dim: int, extra: dict) -> dict:
        """Add the columns `extra` to the row of `dim` (measured already) and rewrite the folder's rows."""
        row = self.measured()[dim]
        row.update(extra)
        if self.out is not None:
            write_rows(self.out, self.rows, columns(self.cfg))
        return row

    def _dense_point(self, dim: int) -> Measured:
        """The dense model's own metrics, from the dense state (no executor)."""
        record = self.state.record
        return Measured(dim, record, record["params"], record.get("cal_nll"), 0.0)

    def _store(self, m: Measured, sparsity: float | None = None) -> dict:
        """A finished point's row, with every prediction; results.csv/json rewritten atomically."""
        sparsity = 1 - m.dim / self.hidden if sparsity is None else sparsity
        row = with_predictions(measured_row(m, sparsity), self.dense, self.stats)
        self.rows = [r for r in self.rows if int(r["dim"]) != m.dim] + [row]
        self._run["measured"].append(m.dim)
        self._run["failed"].pop(str(m.dim), None)
        if self.out is not None:
            write_rows(self.out, self.rows, columns(self.cfg))
        return row

    def _record(self) -> None:
        """How this runner measures (executor, cluster, resources per point, what it measured and what
        failed): its entry in settings.json's `runs`."""
        if self.out is not None and self._opened:
            record_run(self.out, {**self._run, **self.executor.describe()})

    def measure(self, dim: int, sparsity: float | None = None) -> dict:
        """Slice (or project) to `dim` with the executor, measure, and store the row with every prediction and
        its error (an error in the point is raised here)."""
        self.cover([dim])
        if self._is_dense(dim):
            return self._store(self._dense_point(dim), sparsity)
        with closing(self._executor().map(point.measure_point, [dim])) as outcomes:
            (done,) = list(outcomes)
        if done.error is not None:
            self._run["failed"][str(dim)] = error_line(done.error)
            self._record()
            raise done.error
        row = self._store(done.result, sparsity)
        self._record()
        return row

    def measure_points(self, points: list[tuple[int, float]]) -> dict[int, str]:
        """Measure every point with the executor, storing each row as it finishes (in any order); returns
        the points that failed for good, with their errors (the others still finish)."""
        sparsity = dict(points)
        remote = [d for d, _ in points if not self._is_dense(d)]
        failed: dict[int, str] = {}
        bar = tqdm(total=len(points), desc="sweep", disable=not self.progress)
        try:
            for d in [d for d, _ in points if self._is_dense(d)]:
                self.log(point_line(self._store(self._dense_point(d), sparsity[d])))
                bar.update()
            if remote:
                self._executor()
                self._run.update(points=remote, finished=None)
                self._record()
                with closing(self.executor.map(point.measure_point, remote)) as outcomes:
                    for done in outcomes:
                        bar.update()
                        if done.error is not None:
                            failed[done.dim] = self._run["failed"][str(done.dim)] = error_line(done.error)
                            self.log(f"d'={done.dim:4d} failed: {failed[done.dim]}")
                            continue
                        self.log(point_line(self._store(done.result, sparsity[done.dim])))
        except BaseException as e:
            self._run["stopped_by"] = type(e).__name__
            raise
        finally:
            bar.close()
            if remote:
                self._run["finished"] = _now()
                self._record()
        return failed

    def _anchoring(self, widths: Sequence[int] | None = None) -> Anchoring | None:
        """The headline corrected by the measured anchor widths (`widths`, default the settings'; None
        without anchors)."""
        widths = list(self.cfg.anchor_dims if widths is None else widths)
        if not widths:
            return None
        return anchoring(self.dense, self.stats, headline(self.cfg.basis), widths, self.measured_ppl())

    def run(self, points: list[tuple[int, float]], report: bool = True) -> list[dict]:
        """Measure every point (and anchor width) not measured yet, resuming; refresh every row's
        predictions; render the report. Returns all rows, widest first."""
        points = self.sweep.with_anchors(points)
        self.cover([d for d, _ in points])
        done = set(self.measured())
        todo = [(d, s) for d, s in points if d not in done]
        if done:
            self.log(f"resuming {self.out}: {len(done)} point(s) already measured, {len(todo)} to go")
        failed = self.measure_points(todo)
        if failed:
            raise PointsFailed(failed, self.out)
        return self.finish(report=report)

    def finish(self, report: bool = True, anchor_widths: Sequence[int] | None = None) -> list[dict]:
        """Refresh every row's predictions (anchored on `anchor_widths`, default the settings' anchors),
        rewrite the folder's rows and render the report. Returns all rows, widest first."""
        anchored = self._anchoring(anchor_widths)
        self.rows = [with_predictions(r, self.dense, self.stats, anchored) for r in self.rows]
        if self.out is not None:
            write_rows(self.out, self.rows, columns(self.cfg))
            if report:
                self.log(f"report: {write_report(self.out)}")
        return sorted(self.rows, key=lambda r: -r["dim"])

    def predictions(self, points: list[tuple[int, float]]) -> list[dict]:
        """Every predictor at every point, from the dense state alone (nothing sliced or projected). With
        anchor widths in the settings, those are first measured for real and the anchored headline
        prediction is added (in its own columns)."""
        self.sweep.check_anchors()
        self.cover([d for d, _ in points] + list(self.cfg.anchor_dims))
        for d in self.cfg.anchor_dims:
            if d not in self.measured():
                self.log(f"anchor d'={d}: measuring it for real")
                self.measure(d)
        rows = predict(self.dense, [d for d, _ in points], self.stats, self._anchoring())
        for r, (_, s) in zip(rows, points):
            r["sparsity"] = s
        return rows

    def close(self) -> None:
        """Release the executor (a Ray cluster the executor started is shut down)."""
        self.executor.close()


# ----------------------------------------------------------------------------- the commands


def refresh_predictions(out: str | Path) -> list[dict]:
    """Recompute every row's predictions in DIR with the current predictor code; rewrite results.csv/json."""
    out = Path(out)
    rows = read_rows(out)
    cfg = SweepConfig(**json.loads((out / "settings.json").read_text())["settings"])
    stats = load_stats(out)
    dense = read_dense(out, stats)
    for r in rows:  # rows written before the sliced calibration loss had its own column
        if r.get("cal_loss") is None and r.get(schema.est("calibration")):
            r["cal_loss"] = math.log(r[schema.est("calibration")])
    anchored = None
    if cfg.anchor_dims:
        measured = {int(r["dim"]): r[schema.measured("ppl")] for r in rows}
        anchored = anchoring(dense, stats, headline(cfg.basis), cfg.anchor_dims, measured)
    rows = [with_predictions(r, dense, stats, anchored) for r in rows]
    write_rows(out, rows, columns(cfg))
    return sorted(rows, key=lambda r: -r["dim"])


def run_sweep(cfg: SweepConfig, out: str | Path, *, sparsities: list[float] | None = None,
              dims: list[int] | None = None, fresh: bool = False, batch_size: int = 4, device: str = "auto",
              lm: LoadedModel | None = None, progress: bool = True, report: bool = True,
              log: Log = print, executor: Executor | None = None,
              predictors: Sequence[str] | None = None) -> list[dict]:
    """Run (or resume) a sweep into `out`; returns all rows (see `sweep/folder.py` for the files). Points
    that fail for good raise `PointsFailed` once the others are in. `predictors`: only the statistics these
    read are built (None: all), as in `predict_only`."""
    sweep = open_sweep(cfg, out, lm=lm, device=device, batch_size=batch_size, fresh=fresh, progress=progress,
                       log=log, executor=executor)
    try:
        points = sweep.with_anchors(sweep.points(sparsities, dims))
        return SweepRunner(sweep, [d for d, _ in points], predictors).run(points, report=report)
    finally:
        sweep.executor.close()


def predict_only(cfg: SweepConfig, *, sparsities: list[float] | None = None, dims: list[int] | None = None,
                 cache: str | Path | None = None, batch_size: int = 4, device: str = "auto",
                 lm: LoadedModel | None = None, progress: bool = True,
                 predictors: Sequence[str] | None = None) -> dict:
    """Predictions only (no slicing, no sliced or projected model anywhere): dense metrics on the eval
    windows and the dense statistics (only those `predictors` read, if given), reused from `cache` (a sweep
    DIR with the same settings) when present there."""
    sweep = open_sweep(cfg, cache, lm=lm, device=device, batch_size=batch_size, progress=progress,
                       log=_stderr)
    try:
        t0 = time.perf_counter()
        points = sweep.points(sparsities, dims)
        sweep.check_anchors()
        runner = SweepRunner(sweep, [d for d, _ in points] + list(sweep.cfg.anchor_dims), predictors)
        rows = runner.predictions(points)
    finally:
        sweep.executor.close()
    return {"model": runner.cfg.model, "corpus": cfg.corpus, "hidden": runner.hidden,
            "n_sites": len(runner.sites), "dense": runner.dense.to_dict(), "settings": asdict(runner.cfg),
            "seconds": time.perf_counter() - t0, "predictions": rows}
