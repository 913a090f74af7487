"""The dense state of a sweep: everything a prediction needs, made once from the dense model.

`DenseState` holds the dense model's measured record (DIR/dense.json) and every registered statistic made for
the sweep's basis, by name (`predict/statistics.py`). `dense_state` makes it in two named steps —
`dense_record` (read back, or measured once and written) and `dense_statistics` (each statistic: the copy in
memory, else the folder's, else built from the dense model and saved; a copy that does not answer a
requested width is rebuilt with both) — from one `DenseInputs`, whose single dense pass over the calibration
windows every statistic (and the dense calibration loss) shares. Nothing here names a statistic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.pca import SitePCA
from ..core.size import count_params
from ..files import write_json
from ..predict.registry import DenseMetrics, get_predictor
from ..predict.statistics import DenseInputs, statistics
from .config import SweepConfig
from .folder import DENSE_FILE, dense_metrics
from .inputs import Inputs, measure

Log = Callable[[str], None]


@dataclass(frozen=True)
class DenseState:
    """The dense model's measured record (what dense.json holds) and its statistics by name."""

    record: dict
    stats: dict[str, Any]
    hidden: int

    @property
    def metrics(self) -> DenseMetrics:
        return dense_metrics(self.record, self.hidden)


def dense_inputs(inp: Inputs, cfg: SweepConfig, pcas: list[SitePCA] | None, progress: bool,
                 log: Log) -> DenseInputs:
    """What the statistics are built from: the sweep's dense model, windows, settings and dense bases."""
    return DenseInputs(inp.model, inp.cal_ids, inp.eval_ids, inp.grad_ids, inp.grad_heldout, asdict(cfg),
                       pcas, progress, log)


def dense_record(out: Path | None, inp: Inputs, cfg: SweepConfig, batch_size: int, shared: DenseInputs,
                 progress: bool) -> dict:
    """DIR/dense.json read back, or the dense model measured once (metrics, parameters, width, seconds and
    its calibration loss from the shared dense pass) and written."""
    path = out / DENSE_FILE if out is not None else None
    if path is not None and path.exists():
        record = json.loads(path.read_text())
    else:
        t0 = time.perf_counter()
        record = measure(inp.model, inp, cfg, batch_size, progress)
        record.update(seconds=time.perf_counter() - t0, params=count_params(inp.model), hidden=shared.hidden)
    if record.get("cal_nll") is None:
        record["cal_nll"] = shared.moments().cal_nll
    if path is not None and not path.exists():
        write_json(path, record)
    return record


def needed_statistics(predictors: Sequence[str] | None) -> set[str] | None:
    """The statistics `predictors` read (None: no restriction, every statistic of the basis)."""
    if predictors is None:
        return None
    return {n for n in (get_predictor(p).needs for p in predictors) if n is not None}


def dense_statistics(out: Path | None, shared: DenseInputs, basis: str, widths: Sequence[int],
                     held: Mapping[str, Any], log: Log, only: set[str] | None = None) -> dict[str, Any]:
    """Every statistic made for `basis` (those named in `only`, if given), answering at `widths` (those
    below D): the copy `held` in memory, else the folder's, else built and saved; a copy missing a width is
    rebuilt with its widths and these."""
    want = sorted({int(d) for d in widths if d < shared.hidden})
    stats: dict[str, Any] = {}
    for st in statistics(basis):
        if only is not None and st.name not in only:
            continue
        path = out / st.file if out is not None else None
        stat = held.get(st.name)
        if stat is None and path is not None and path.exists():
            stat = st.load(path)
        need = want
        if stat is not None and st.missing(stat, want):
            log(f"recomputing the {st.name} statistic for the widths {st.missing(stat, want)}")
            need, stat = sorted(set(want) | set(st.widths(stat))), None
        if stat is None:
            stat = st.build(shared, need)
            if path is not None:
                st.save(stat, path)
        stats[st.name] = stat
    return stats


def dense_state(out: Path | None, inp: Inputs, cfg: SweepConfig, pcas: list[SitePCA] | None,
                widths: Sequence[int], *, batch_size: int, progress: bool, log: Log,
                held: DenseState | None = None, only: set[str] | None = None) -> DenseState:
    """The dense state answering at `widths`: the record (kept from `held`, else `dense_record`), then the
    statistics (`dense_statistics`, reusing `held`'s)."""
    shared = dense_inputs(inp, cfg, pcas, progress, log)
    record = held.record if held is not None else dense_record(out, inp, cfg, batch_size, shared, progress)
    stats = dense_statistics(out, shared, cfg.basis, widths, held.stats if held is not None else {}, log,
                             only)
    return DenseState(record, stats, shared.hidden)
