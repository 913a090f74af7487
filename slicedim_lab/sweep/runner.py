"""One sweep runner: the dense state of a sweep folder once, then any width measured for real or predicted.

`SweepRunner` is what `slicedim sweep` (`run_sweep`), `slicedim predict` (`predict_only`) and the
notebook's live bench all use: it loads the model and the windows, computes (or reads back from the folder)
the dense metrics and the Fisher tables, measures one kept width (`measure`: interleaved SliceGPT slicing,
or the dense model projected on its dense bases) and predicts any width from the dense state alone
(`predictions`: no sliced or projected model anywhere). The folder format is `sweep/folder.py`'s.

Measuring one width is `point.measure_point`, run by an executor (`sweep/executors.py`: in-process or Ray);
the driver alone turns results into rows and writes them, as points finish, in any order.
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from .. import schema
from ..core.pca import SitePCA
from ..core.replay import dense_pcas
from ..core.sites import model_sites
from ..core.size import count_params
from ..errors import UsageError
from ..eval.uncertainty import ppl_interval
from ..files import write_json
from ..load.models import LoadedModel, keep_first_layers, load_model
from ..predict import Tables, predict, predict_point, stats_by_name
from ..predict.anchor import anchored_ppl, make_anchors
from ..predict.fisher import FisherTables, dense_moments, fisher_tables
from ..predict.ours import OursTables, interval, ours_tables
from ..predict.registry import DenseMetrics, ours, predictor_names
from ..schema import ESTIMATORS
from ..viz.report import write_report
from .config import SweepConfig, parse_points
from .executors import Executor, InProcess, ModelSpec, PointsFailed, error_line
from .folder import columns, load_stats, prepare_dir, read_rows, record_run, write_rows
from .inputs import dense_metrics, load_inputs, measure
from .point import Measured, PointWork, measure_point

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# ----------------------------------------------------------------------------- rows


def add_predictions(row: dict, dense: DenseMetrics, tables: Tables) -> dict:
    """(Re)compute a row's predictions, estimates and errors from its measured values, so that rows measured
    earlier always carry the current predictors' numbers (measured columns are never touched)."""
    dim, ppl = row["dim"], row[schema.measured("ppl")]
    for k in [k for k in row if schema.is_derived(k)]:
        del row[k]
    row.update(predict_point(dense, dim, tables))
    if row.get("cal_loss") is not None:
        row[schema.est("calibration")] = math.exp(row["cal_loss"])
        row[schema.est("cal_ratio")] = dense.ppl * math.exp(row["cal_loss"] - dense.cal_nll)
    for p in predictor_names():  # some predictors answer only at some widths (semi-interleaved tables)
        if row.get(schema.pred("ppl", p)) is not None:
            row[schema.err(p)] = 100 * (row[schema.pred("ppl", p)] / ppl - 1)
    for e in ESTIMATORS:
        if row.get(schema.est(e)) is not None:
            row[schema.est_err(e)] = 100 * (row[schema.est(e)] / ppl - 1)
    row["dloss_measured"] = math.log(ppl / dense.ppl)
    fisher = stats_by_name(tables)["fisher"]
    charged = fisher.energy[:-1] if not fisher.settings.get("slice_head") else fisher.energy
    row["energy_discarded_mean"] = 1 - charged[:, dim].mean().item()
    return row


def make_row(dim: int, sparsity: float, meas: dict, dense: DenseMetrics, tables: Tables,
             params: int, cal_loss: float | None, seconds: float) -> dict:
    """One results row: measured values, every prediction and estimate, signed % errors."""
    row = {"dim": dim, "sparsity": sparsity, "params": params, schema.measured("ppl"): meas["ppl"],
           schema.measured("acc"): meas["acc"], schema.measured("mc_acc"): meas.get("mc_acc"),
           "mc_acc_norm_measured": meas.get("mc_acc_norm"),
           **{k: v for k, v in meas.items() if k.startswith("task_")}, "seconds": seconds}
    if meas.get("window_nll"):  # the eval windows are a sample too: the measured value's own interval
        lo, hi = ppl_interval(meas["window_nll"])
        row[schema.lo("ppl", "measured")], row[schema.hi("ppl", "measured")] = lo, hi
    if cal_loss is not None:
        row["cal_loss"] = cal_loss
    return add_predictions(row, dense, tables)


def add_anchored(rows: list[dict], dense: DenseMetrics, cfg: SweepConfig, measured: dict[int, float],
                 stats: Tables = None) -> None:
    """Set the headline predictor's anchored prediction (`predict/anchor.py`) on every row that has its loss
    prediction, from the perplexities `measured` at `cfg.anchor_dims`; rows at an anchor are marked. With
    the `ours` statistics, the anchored `ours` also gets its 90% interval (`OursTables.anchored_rel_sigma`).
    """
    head = ours(cfg.basis)
    name = schema.anchored(head)
    predicted = {int(r["dim"]): r[schema.dloss(head)] for r in rows if r.get(schema.dloss(head)) is not None}
    missing = [d for d in cfg.anchor_dims if d not in measured]
    if missing:
        raise UsageError(f"anchor widths {missing} were not measured")
    anchors = make_anchors({d: measured[d] for d in cfg.anchor_dims}, predicted, dense.ppl)
    for r in rows:
        d = int(r["dim"])
        r["anchor"] = d in cfg.anchor_dims
        if d in predicted and anchors:
            r[schema.pred("ppl", name)] = anchored_ppl(dense.ppl, predicted[d], d, anchors, dense.hidden)
            own = stats_by_name(stats).get("ours") if head == "ours" else None
            if own is not None:
                dl = math.log(r[schema.pred("ppl", name)] / dense.ppl)
                lo, hi = interval(dense.ppl, dl, own.anchored_rel_sigma(d, anchors))
                r[schema.lo("ppl", name)], r[schema.hi("ppl", name)] = lo, hi
            if r.get(schema.measured("ppl")) is not None:
                r[schema.err(name)] = 100 * (r[schema.pred("ppl", name)] / r[schema.measured("ppl")] - 1)


def point_line(row: dict) -> str:
    """One log line for a finished point: measured perplexity and every prediction with its error."""
    preds = "  ".join(f"{p} {row[schema.pred('ppl', p)]:.3f} ({row[schema.err(p)]:+.1f}%)"
                      for p in predictor_names() if row.get(schema.err(p)) is not None)
    return (f"d'={row['dim']:4d} s={row['sparsity']:.2f}  ppl {row[schema.measured('ppl')]:.3f}  {preds}"
            f"  [{row['seconds']:.0f}s]")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- the runner


class SweepRunner:
    """A sweep (or a prediction) over one model and corpus, backed by a sweep folder `out` (None: nothing is
    stored, for predictions without a cache).

    On construction: the settings are checked against the folder (resume, refuse, or wipe with `fresh`),
    the inputs are loaded, and the dense state — dense metrics and Fisher tables, with the semi-interleaved
    tables at `semi_dims` — is computed or read back. `max_layers` keeps only the first decoder layers (smoke
    runs); the model name in the settings records it, so such a folder never mixes with the whole model's.
    `executor` measures the points (default: `InProcess`; `RayExecutor`: Ray tasks, whose workers load the
    model by name, or get the weights of an `lm` given here through the object store)."""

    def __init__(self, cfg: SweepConfig, out: str | Path | None, *, lm: LoadedModel | None = None,
                 device: str = "auto", batch_size: int = 4, fresh: bool = False, progress: bool = True,
                 max_layers: int | None = None, semi_dims: list[int] | None = None, log: Log = print,
                 executor: Executor | None = None):
        cfg.check()
        self.executor: Executor = executor or InProcess()
        self._spec = ModelSpec.of(cfg.model, cfg.dtype, max_layers) if lm is None else None
        self._opened = False
        self._run = {"id": uuid.uuid4().hex[:12], "started": _now(), "measured": [], "failed": {}}
        if max_layers is not None:  # a shallower model is another model: its name (and fingerprint) says so
            lm = lm or load_model(cfg.model, device=device, dtype=cfg.dtype)
            if max_layers < lm.model.config.num_hidden_layers:
                keep_first_layers(lm.model, max_layers)
                cfg = replace(cfg, model=f"{cfg.model}#first-{max_layers}-layers")
        self.cfg, self.batch_size, self.progress, self.log = cfg, batch_size, progress, log
        self.out = Path(out) if out is not None else None
        if self.out is not None:
            prepare_dir(self.out, cfg, fresh, log=log)
        self.executor.connect()  # a cluster that cannot run a point is refused before anything loads
        self.inp = load_inputs(cfg, lm, device)
        model = self.inp.model
        self.hidden, self.n_layers = model.config.hidden_size, model.config.num_hidden_layers
        self.sites = model_sites(model)
        self.rows: list[dict] = read_rows(self.out) if self.out is not None else []
        self.pcas: list[SitePCA] | None = None
        if cfg.basis == "dense":
            self.pcas = dense_pcas(model, self.inp.cal_ids, progress=progress)
        self.dense_raw: dict = {}
        self.tables: FisherTables | None = None
        self.ours: OursTables | None = None
        self.dense: DenseMetrics | None = None
        if semi_dims is not None:  # otherwise the dense state is made on first use, with the widths it needs
            self.ensure_semi(semi_dims)

    # -- the dense state

    def _dense_state(self, semi_dims: list[int]) -> None:
        """Dense metrics, Fisher tables and (interleaved sweeps) the `ours` tables, from the folder when
        present (written there when there is one); cached Fisher tables that lack a requested
        semi-interleaved width are recomputed. One dense pass over the calibration windows feeds both."""
        cfg, inp, out, D = self.cfg, self.inp, self.out, self.hidden
        dfile = out / "dense.json" if out else None
        if not self.dense_raw:
            if dfile is not None and dfile.exists():
                self.dense_raw = json.loads(dfile.read_text())
            else:
                t0 = time.perf_counter()
                self.dense_raw = measure(inp.model, inp, cfg, self.batch_size, self.progress)
                self.dense_raw["seconds"] = time.perf_counter() - t0
                self.dense_raw["params"] = count_params(inp.model)
        tfile, ofile = (out / "fisher.pt", out / "ours.pt") if out else (None, None)
        want = sorted({d for d in semi_dims if d < D})
        tables = self.tables or (FisherTables.load(tfile) if tfile is not None and tfile.exists() else None)
        if tables is not None and not set(want) <= set(tables.semi_dims):
            missing = sorted(set(want) - set(tables.semi_dims))
            self.log(f"recomputing the Fisher tables for the semi-interleaved widths {missing}")
            want = sorted(set(want) | set(tables.semi_dims))
            tables = None
        ours = self.ours or (OursTables.load(ofile) if ofile is not None and ofile.exists() else None)
        need_ours = cfg.basis == "interleaved" and ours is None
        moments, t_moments = None, 0.0
        if tables is None or need_ours:
            t0 = time.perf_counter()
            moments = dense_moments(inp.model, inp.cal_ids, 2, progress=self.progress)
            t_moments = time.perf_counter() - t0
        if tables is None:
            if cfg.grad_heldout and not inp.grad_heldout:
                self.log(f"note: the calibration split has no windows besides the {inp.cal_ids.shape[0]} of "
                         "the PCA; Fisher gradients are taken in-sample (predictions tend to be optimistic)")
            tables = fisher_tables(inp.model, inp.cal_ids, slice_head=cfg.slice_head, seed=cfg.seed,
                                   batch_size=2, pcas=self.pcas, semi_dims=want, grad_ids=inp.grad_ids,
                                   moments=moments, progress=self.progress)
            tables.settings["grad_heldout"] = inp.grad_heldout
            tables.settings["timing_s"]["dense_pass"] = t_moments
            if tfile is not None:
                tables.save(tfile)
        if need_ours:
            ours = ours_tables(inp.model, inp.eval_ids, moments, slice_head=cfg.slice_head,
                               progress=self.progress)
            ours.timing["moments"] = t_moments
            if ofile is not None:
                ours.save(ofile)
        self.tables, self.ours = tables, ours
        self.dense_raw["cal_nll"] = tables.cal_nll
        if dfile is not None and not dfile.exists():
            write_json(dfile, self.dense_raw)
        self.dense = dense_metrics(self.dense_raw, D)

    @property
    def stats(self) -> dict:
        """The dense statistics by the name predictors ask for (`Predictor.needs`)."""
        return {"fisher": self.tables, "ours": self.ours}

    def ensure_semi(self, dims: list[int]) -> None:
        """Make the dense state if there is none yet, with the semi-interleaved predictors at `dims` and at
        every measured width (dense-only work, done before anything sliced runs)."""
        want = {d for d in [*dims, *self.measured()] if d < self.hidden}
        if self.tables is None or not want <= set(self.tables.semi_dims):
            self._dense_state(sorted(want | set(self.tables.semi_dims if self.tables is not None else [])))

    # -- points

    def points(self, sparsities: list[float] | None = None, dims: list[int] | None = None) -> list[tuple]:
        """(d', sparsity) pairs of a request, as `parse_points` reads it."""
        return parse_points(self.hidden, sparsities, dims, self.cfg.round_interval)

    def measured(self) -> dict[int, dict]:
        return {int(r["dim"]): r for r in self.rows}

    def _is_dense(self, dim: int) -> bool:
        return dim == self.hidden and not self.cfg.slice_head

    def _executor(self) -> Executor:
        """The executor, opened on first use with the shared state (the dense state exists by then)."""
        if not self._opened:
            ex = self.executor
            inp = replace(self.inp, model=None) if ex.remote else self.inp
            work = PointWork(self.cfg, inp, self.pcas, self.batch_size, self.progress and not ex.remote)
            ex.open(work, self.inp.model, self._spec, self.log)
            self._opened = True
        return self.executor

    def _dense_point(self, dim: int) -> Measured:
        """The dense model's own metrics, from the dense state (no executor)."""
        raw = self.dense_raw
        return Measured(dim, raw, raw["params"], raw.get("cal_nll"), 0.0)

    def _store(self, m: Measured, sparsity: float | None = None) -> dict:
        """A finished point's row, with every prediction; results.csv/json rewritten atomically."""
        sparsity = 1 - m.dim / self.hidden if sparsity is None else sparsity
        row = make_row(m.dim, sparsity, m.meas, self.dense, self.stats, m.params, m.cal_loss, m.seconds)
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
        self.ensure_semi([dim])
        if self._is_dense(dim):
            return self._store(self._dense_point(dim), sparsity)
        with closing(self._executor().map(measure_point, [dim])) as outcomes:
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
                with closing(self.executor.map(measure_point, remote)) as outcomes:
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

    def run(self, points: list[tuple[int, float]], report: bool = True) -> list[dict]:
        """Measure every point (and anchor width) not measured yet, resuming; refresh every row's
        predictions; render the report. Returns all rows, widest first."""
        self.check_anchors()
        points = points + [(d, 1 - d / self.hidden) for d in self.cfg.anchor_dims if d not in dict(points)]
        self.ensure_semi([d for d, _ in points])
        done = set(self.measured())
        todo = [(d, s) for d, s in points if d not in done]
        if done:
            self.log(f"resuming {self.out}: {len(done)} point(s) already measured, {len(todo)} to go")
        failed = self.measure_points(todo)
        if failed:
            raise PointsFailed(failed, self.out)
        self.rows = [add_predictions(r, self.dense, self.stats) for r in self.rows]
        if self.cfg.anchor_dims:
            add_anchored(self.rows, self.dense, self.cfg, self.measured_ppl(), self.stats)
        if self.out is not None:
            write_rows(self.out, self.rows, columns(self.cfg))
            if report:
                self.log(f"report: {write_report(self.out)}")
        return sorted(self.rows, key=lambda r: -r["dim"])

    def predictions(self, points: list[tuple[int, float]]) -> list[dict]:
        """Every predictor at every point, from the dense state alone (nothing sliced or projected). With
        anchor widths in the settings, those are then measured for real and the anchored headline
        prediction is added (in its own columns)."""
        self.check_anchors()
        self.ensure_semi([d for d, _ in points] + list(self.cfg.anchor_dims))
        rows = predict(self.dense, [d for d, _ in points], self.stats)
        for r, (_, s) in zip(rows, points):
            r["sparsity"] = s
        if self.cfg.anchor_dims:
            unnamed = [d for d in self.cfg.anchor_dims if d not in dict(points)]
            extra = predict(self.dense, unnamed, self.stats)
            for d in self.cfg.anchor_dims:
                if d not in self.measured():
                    self.log(f"anchor d'={d}: measuring it for real")
                    self.measure(d)
            add_anchored(rows + extra, self.dense, self.cfg, self.measured_ppl(), self.stats)
        return rows

    def measured_ppl(self) -> dict[int, float]:
        return {d: r[schema.measured("ppl")] for d, r in self.measured().items()}

    def check_anchors(self) -> None:
        bad = [d for d in self.cfg.anchor_dims if not 1 <= d < self.hidden]
        if bad:
            raise UsageError(f"anchor widths must lie in [1, {self.hidden - 1}], got {bad[0]}")

    def close(self) -> None:
        """Release the executor (a Ray cluster the executor started is shut down)."""
        self.executor.close()


# ----------------------------------------------------------------------------- the commands


def refresh_predictions(out: str | Path) -> list[dict]:
    """Recompute every row's predictions in DIR with the current predictor code; rewrite results.csv/json."""
    out = Path(out)
    rows = read_rows(out)
    settings = json.loads((out / "settings.json").read_text())["settings"]
    tables = load_stats(out)
    dense = dense_metrics(json.loads((out / "dense.json").read_text()), tables["fisher"].hidden)
    for r in rows:
        if r.get("cal_loss") is None and r.get(schema.est("calibration")):
            r["cal_loss"] = math.log(r[schema.est("calibration")])
        add_predictions(r, dense, tables)
    cfg = SweepConfig(**settings)
    if cfg.anchor_dims:
        add_anchored(rows, dense, cfg, {int(r["dim"]): r[schema.measured("ppl")] for r in rows}, tables)
    write_rows(out, rows, columns(cfg))
    return sorted(rows, key=lambda r: -r["dim"])


def run_sweep(cfg: SweepConfig, out: str | Path, *, sparsities: list[float] | None = None,
              dims: list[int] | None = None, fresh: bool = False, batch_size: int = 4, device: str = "auto",
              lm: LoadedModel | None = None, progress: bool = True, report: bool = True,
              log: Log = print, executor: Executor | None = None) -> list[dict]:
    """Run (or resume) a sweep into `out`; returns all rows (see `sweep/folder.py` for the files). Points
    that fail for good raise `PointsFailed` once the others are in."""
    runner = SweepRunner(cfg, out, lm=lm, device=device, batch_size=batch_size, fresh=fresh,
                         progress=progress, log=log, executor=executor)
    try:
        return runner.run(runner.points(sparsities, dims), report=report)
    finally:
        runner.close()


def predict_only(cfg: SweepConfig, *, sparsities: list[float] | None = None, dims: list[int] | None = None,
                 cache: str | Path | None = None, batch_size: int = 4, device: str = "auto",
                 lm: LoadedModel | None = None, progress: bool = True) -> dict:
    """Predictions only (no slicing, no sliced or projected model anywhere): dense metrics on the eval
    windows and Fisher tables from the calibration windows, reused from `cache` (a sweep DIR with the same
    settings) when present there."""
    runner = SweepRunner(cfg, cache, lm=lm, device=device, batch_size=batch_size, progress=progress,
                         log=_stderr)
    t0 = time.perf_counter()
    points = runner.points(sparsities, dims)
    rows = runner.predictions(points)
    return {"model": runner.cfg.model, "corpus": cfg.corpus, "hidden": runner.hidden,
            "n_sites": len(runner.sites), "dense": runner.dense.to_dict(),
            "settings": asdict(runner.cfg),
            "seconds": time.perf_counter() - t0, "fisher_seconds": runner.tables.seconds, "predictions": rows}
