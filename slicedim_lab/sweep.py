"""Sweep the representation dimension: slice (or emulate) at each d', measure, and set predictions beside.

`DIR` holds
- `settings.json`: every setting that changes a number (model, corpus, basis, calibration/eval sizes, tasks,
  seeds) and its fingerprint. A sweep into a DIR with other settings is refused (or, with `fresh=True`,
  the old results are discarded) — rows are never silently reused. The list of points is not a setting:
  adding points to a finished sweep measures only the new ones.
- `dense.json`: the dense model's metrics (eval PPL/accuracy, multiple-choice accuracy), computed once.
- `fisher.pt`: the Fisher-increment tables (dense-only, all d' at once), computed once.
- `results.csv` / `results.json`: one row per finished point, rewritten atomically after each point, so an
  interrupted sweep resumes at the first unfinished point without duplicates.
- `report.html`: the plotly report (`report.write_report`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn as nn
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from .adapters import adapter_for
from .calibrate import SitePCA, layer0_inputs, n_sites
from .errors import UsageError
from .predict import FISHER_KINDS, PREDICTORS, DenseMetrics, FisherTables, fisher_tables, predict_point
from .slicing import count_params, dim_for_sparsity, site_dims, slice_model, sliced_config

BASES = ("interleaved", "dense")
ESTIMATORS = ("calibration", "cal_ratio")
# what a sweep folder's numbers mean beyond its settings; 2: windows spread over each split (corpus.spread)
SWEEP_FORMAT = 2
PREDICTION_SETTINGS = ("grad_windows", "grad_heldout")  # change predictions only, never a measured value
RESULT_FILES = ("results.csv", "results.json", "dense.json", "fisher.pt", "report.html", "settings.json")


@dataclass
class SweepConfig:
    """Everything that changes a measured or predicted number (the fingerprint is taken over all of it)."""

    model: str = "smollm2-135m-instruct"
    corpus: str = "python-docs"
    basis: str = "interleaved"
    cal_samples: int = 32
    cal_seqlen: int = 512
    eval_seqlen: int = 512
    max_eval_windows: int | None = None
    grad_windows: int | None = None  # default: as many as cal_samples
    grad_heldout: bool = True  # Fisher gradients on calibration windows the PCA did not see
    tasks: list[str] = field(default_factory=lambda: ["corpus-mc"])
    mc_items: int = 48
    mc_choices: int = 4
    mc_context: int = 32
    mc_cont: int = 16
    round_interval: int = 8
    slice_head: bool = False
    seed: int = 0
    dtype: str | None = None

    def check(self) -> None:
        if self.basis not in BASES:
            raise UsageError(f"unknown basis {self.basis!r}; choose one of: {', '.join(BASES)}")
        for name in ("cal_samples", "cal_seqlen", "eval_seqlen", "mc_items", "mc_context", "mc_cont"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_eval_windows", "grad_windows"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1, got {v}")
        if self.cal_seqlen < 2 or self.eval_seqlen < 2:
            raise UsageError("sequence lengths must be at least 2")
        from .mcq import check_tasks

        check_tasks(self.tasks)

    def fingerprint(self) -> str:
        blob = json.dumps({**asdict(self), "format": SWEEP_FORMAT}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_points(hidden: int, sparsities: list[float] | None = None, dims: list[int] | None = None,
                 round_interval: int = 8) -> list[tuple[int, float]]:
    """(d', sparsity) pairs in the order given, duplicates (same d') dropped; sparsity = the requested s, or
    1 − d'/D for explicit widths."""
    if (sparsities is None) == (dims is None):
        raise UsageError("give exactly one of --sparsities or --dims")
    if sparsities is not None:
        pts = [(dim_for_sparsity(s, hidden, round_interval), float(s)) for s in sparsities]
    else:
        bad = [d for d in dims if not 1 <= d <= hidden]
        if bad:
            raise UsageError(f"--dims must be in [1, {hidden}], got {bad[0]}")
        pts = [(int(d), 1 - d / hidden) for d in dims]
    seen, out = set(), []
    for d, s in pts:
        if d not in seen:
            seen.add(d)
            out.append((d, s))
    return out


# ----------------------------------------------------------------------------- files


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_dir(out: Path, cfg: SweepConfig, fresh: bool = False, log=print) -> None:
    """Create DIR or check that it holds a sweep with the same settings (then it resumes); one with other
    settings is refused, or wiped with `fresh`.
    If only prediction settings changed, the measured rows are kept and the Fisher tables are dropped (the
    predictions of every row are recomputed from the new tables)."""
    out.mkdir(parents=True, exist_ok=True)
    sfile = out / "settings.json"
    if sfile.exists():
        old = json.loads(sfile.read_text())
        was = old.get("format", 1)
        if old.get("fingerprint") != cfg.fingerprint() or was != SWEEP_FORMAT:
            changed = sorted(k for k, v in asdict(cfg).items() if old.get("settings", {}).get(k) != v)
            if was != SWEEP_FORMAT:
                changed = [f"made by an older slicedim-lab: format {was}, now {SWEEP_FORMAT}"]
            if changed and set(changed) <= set(PREDICTION_SETTINGS) and not fresh:
                log(f"{out}: prediction settings changed ({', '.join(changed)}): measured rows kept, "
                    "predictions recomputed")
                for name in ("fisher.pt", "report.html"):
                    (out / name).unlink(missing_ok=True)
            elif not fresh:
                what = ", ".join(changed) or "?"
                raise UsageError(f"{out} holds a sweep with other settings (changed: {what}); "
                                 "use --fresh to discard its results, or another --out")
            else:
                for name in RESULT_FILES:
                    (out / name).unlink(missing_ok=True)
    elif any((out / n).exists() for n in RESULT_FILES):
        if not fresh:
            raise UsageError(f"{out} holds results without settings.json; use --fresh or another --out")
        for name in RESULT_FILES:
            (out / name).unlink(missing_ok=True)
    _write_atomic(sfile, json.dumps({"fingerprint": cfg.fingerprint(), "format": SWEEP_FORMAT,
                                     "settings": asdict(cfg)}, indent=1))


def read_rows(out: Path) -> list[dict]:
    """The finished rows of DIR/results.json (numbers as numbers), [] if none."""
    f = out / "results.json"
    return json.loads(f.read_text())["rows"] if f.exists() else []


def write_rows(out: Path, rows: list[dict], columns: list[str]) -> None:
    """results.csv and results.json, each replaced atomically."""
    rows = sorted(rows, key=lambda r: -r["dim"])
    fd, tmp = tempfile.mkstemp(prefix=".results.csv.", dir=out)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / "results.csv")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _write_atomic(out / "results.json", json.dumps({"columns": columns, "rows": rows}, indent=1))


def columns(cfg: SweepConfig) -> list[str]:
    """The CSV columns of a sweep with these settings."""
    cols = ["dim", "sparsity", "params", "ppl_measured"]
    for p in PREDICTORS:
        cols += [f"ppl_pred_{p}", f"ppl_err_{p}"]
    cols += [f"ppl_est_{e}" for e in ESTIMATORS]
    cols += [f"ppl_err_est_{e}" for e in ESTIMATORS]
    cols += ["acc_measured"] + [f"acc_pred_{p}" for p in PREDICTORS]
    if "corpus-mc" in cfg.tasks:
        cols += ["mc_acc_measured", "mc_acc_norm_measured"] + [f"mc_acc_pred_{p}" for p in PREDICTORS]
    cols += [f"task_{t}_{m}" for t in cfg.tasks if t != "corpus-mc" for m in ("acc", "acc_norm")]
    cols += [f"dloss_pred_{k}" for k in FISHER_KINDS]
    cols += ["dloss_measured", "energy_discarded_mean", "cal_loss", "seconds"]
    return cols


# ----------------------------------------------------------------------------- dense-basis emulation


class ProjectedModel(nn.Module):
    """The dense model with every residual site projected on its top-d_s dense PCA directions — the exact
    function of a SliceGPT model sliced with DENSE (non-interleaved) bases. `forward(input_ids)` returns an
    object with `.logits`, enough for `metrics.evaluate` and `mcq.score`."""

    def __init__(self, model: nn.Module, pcas: list[SitePCA], dims: list[int]):
        super().__init__()
        self.model, self.adapter = model, adapter_for(model)
        dt = next(model.parameters()).dtype
        self.bases = [None if d >= p.vectors.shape[0] else p.basis(d).to(dt) for p, d in zip(pcas, dims)]

    def _proj(self, x: Tensor, s: int) -> Tensor:
        b = self.bases[s]
        return x if b is None else (x @ b.to(x.device)) @ b.T.to(x.device)

    @torch.no_grad()
    def forward(self, input_ids: Int[Tensor, "b p"], **_) -> SimpleNamespace:
        a, get = self.adapter, self.model.get_submodule
        x, kw = layer0_inputs(self.model, a, input_ids)
        x = self._proj(x, 0)
        for i, layer in enumerate(get(a.layers)):
            x = self._proj(x + layer.get_submodule(a.attn)(
                hidden_states=layer.get_submodule(a.attn_norm)(x), **kw)[0], 2 * i + 1)
            x = self._proj(x + layer.get_submodule(a.mlp)(layer.get_submodule(a.mlp_norm)(x)), 2 * i + 2)
        return SimpleNamespace(logits=get(a.lm_head)(get(a.final_norm)(x)))


def sliced_params(model: nn.Module, dims: list[int]) -> int:
    """Parameter count of the model sliced to `dims` (built on the meta device, no weights)."""
    from .modeling_sliced import SlicedForCausalLM

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    cfg = sliced_config(model, adapter_for(model), dims, tied, {})
    with torch.device("meta"):
        return count_params(SlicedForCausalLM(cfg))


# ----------------------------------------------------------------------------- measuring


@dataclass
class Inputs:
    """Model, tokenizer and the windows/items a sweep or prediction works on."""

    model: nn.Module
    tokenizer: object
    cal_ids: Tensor
    eval_ids: Tensor
    mc_items: object | None
    grad_ids: Tensor  # windows of the Fisher gradient pass
    grad_heldout: bool  # whether they are disjoint from cal_ids


def load_inputs(cfg: SweepConfig, lm=None, device: str = "auto") -> Inputs:
    """The model (unless `lm`, a LoadedModel, is given), the calibration and eval windows and the MC items."""
    from .corpus import load_windows, spread
    from .mcq import build_corpus_mc
    from .models import load_model

    lm = lm or load_model(cfg.model, device=device, dtype=cfg.dtype)
    n_grad = cfg.grad_windows or cfg.cal_samples
    every = load_windows(lm.tokenizer, cfg.corpus, "calibration", cfg.cal_seqlen)
    # the PCA's windows are spread over the split (as `load_windows(..., cal_samples)` picks them); the
    # held-out gradient windows are spread over the rest (in-sample if there is no rest)
    picked = spread(every.shape[0], cfg.cal_samples)
    taken = set(picked)
    rest = [i for i in range(every.shape[0]) if i not in taken]
    cal = every[picked]
    heldout = cfg.grad_heldout and len(rest) > 0
    grad = every[[rest[i] for i in spread(len(rest), n_grad)]] if heldout else cal[:n_grad]
    ev = load_windows(lm.tokenizer, cfg.corpus, "eval", cfg.eval_seqlen, cfg.max_eval_windows)
    items = None
    if "corpus-mc" in cfg.tasks:
        items = build_corpus_mc(lm.tokenizer, cfg.corpus, "eval", n_items=cfg.mc_items,
                                n_choices=cfg.mc_choices, context_len=cfg.mc_context, cont_len=cfg.mc_cont,
                                seed=cfg.seed)
    return Inputs(lm.model, lm.tokenizer, cal, ev, items, grad, heldout)


def measure(model: nn.Module, inp: Inputs, cfg: SweepConfig, batch_size: int, progress: bool) -> dict:
    """Measured metrics of one model (dense, sliced or projected): ppl, top-1 acc, nll, MC acc, lm-eval."""
    from .mcq import lm_eval_tasks, score
    from .metrics import evaluate

    res = evaluate(model, inp.eval_ids, batch_size=batch_size, progress=progress)
    out = {"ppl": res.ppl, "acc": res.accuracy, "nll": res.nll, "eval_tokens": res.tokens}
    if inp.mc_items is not None:
        mc = score(model, inp.mc_items, batch_size=batch_size, progress=progress)
        out.update(mc_acc=mc.acc, mc_acc_norm=mc.acc_norm, mc_chance=mc.chance, mc_items=mc.items)
    harness = [t for t in cfg.tasks if t != "corpus-mc"]
    if harness:
        for t, ms in lm_eval_tasks(model, inp.tokenizer, harness, batch_size).items():
            out.update({f"task_{t}_{m}": v for m, v in ms.items()})
    return out


def measure_point(inp: Inputs, cfg: SweepConfig, dim: int, dense_raw: dict, pcas: list[SitePCA] | None,
                  batch_size: int = 4, progress: bool = True) -> tuple[dict, int, float | None]:
    """Measure one kept width for real: (metrics, parameter count, sliced loss on the calibration windows or
    None). Interleaved: SliceGPT calibration + slicing; dense: the dense model projected on `pcas`; full
    width without a sliced head: the dense metrics."""
    model = inp.model
    D, L = model.config.hidden_size, model.config.num_hidden_layers
    if dim == D and not cfg.slice_head:
        return dense_raw, dense_raw["params"], dense_raw.get("cal_nll")
    sd = site_dims(L, D, dim=dim, slice_head=cfg.slice_head)
    if cfg.basis == "interleaved":
        res = slice_model(model, inp.cal_ids, sd, batch_size=batch_size, progress=progress)
        return measure(res.model, inp, cfg, batch_size, progress), count_params(res.model), res.cal_loss
    meas = measure(ProjectedModel(model, pcas, sd), inp, cfg, batch_size, progress)
    return meas, sliced_params(model, sd), None


def dense_state(cfg: SweepConfig, inp: Inputs, out: Path | None, batch_size: int = 4, progress: bool = True,
                pcas: list[SitePCA] | None = None, semi_dims: list[int] | None = None,
                log=print) -> tuple[DenseMetrics, dict, FisherTables]:
    """Dense metrics and Fisher tables, from DIR's cache when present (written there when `out` is given);
    cached tables that lack a requested semi-interleaved width are recomputed."""
    D = inp.model.config.hidden_size
    dfile = out / "dense.json" if out else None
    if dfile is not None and dfile.exists():
        dense_raw = json.loads(dfile.read_text())
    else:
        t0 = time.perf_counter()
        dense_raw = measure(inp.model, inp, cfg, batch_size, progress)
        dense_raw["seconds"] = time.perf_counter() - t0
        dense_raw["params"] = count_params(inp.model)
    tfile = out / "fisher.pt" if out else None
    want = sorted({d for d in semi_dims or [] if d < D})
    tables = FisherTables.load(tfile) if tfile is not None and tfile.exists() else None
    if tables is not None and not set(want) <= set(tables.semi_dims):
        missing = sorted(set(want) - set(tables.semi_dims))
        log(f"recomputing the Fisher tables for the semi-interleaved widths {missing}")
        want = sorted(set(want) | set(tables.semi_dims))
        tables = None
    if tables is None:
        if cfg.grad_heldout and not inp.grad_heldout:
            log(f"note: the calibration split has no windows besides the {inp.cal_ids.shape[0]} of the PCA; "
                "Fisher gradients are taken in-sample (predictions tend to be optimistic)")
        tables = fisher_tables(inp.model, inp.cal_ids, slice_head=cfg.slice_head, seed=cfg.seed, batch_size=2,
                               pcas=pcas, semi_dims=want, grad_ids=inp.grad_ids, progress=progress)
        tables.settings["grad_heldout"] = inp.grad_heldout
        if tfile is not None:
            tables.save(tfile)
    dense_raw["cal_nll"] = tables.cal_nll
    if dfile is not None and not dfile.exists():
        _write_atomic(dfile, json.dumps(dense_raw, indent=1))
    dense = dense_metrics(dense_raw, D)
    return dense, dense_raw, tables


def dense_metrics(raw: dict, hidden: int) -> DenseMetrics:
    """DenseMetrics from a sweep's dense.json."""
    return DenseMetrics(ppl=raw["ppl"], acc=raw["acc"], hidden=hidden, mc_acc=raw.get("mc_acc"),
                        cal_nll=raw.get("cal_nll"), mc_chance=raw.get("mc_chance"))


def make_row(dim: int, sparsity: float, meas: dict, dense: DenseMetrics, tables: FisherTables,
             params: int, cal_loss: float | None, seconds: float) -> dict:
    """One results row: measured values, every prediction and estimate, signed % errors."""
    row = {"dim": dim, "sparsity": sparsity, "params": params, "ppl_measured": meas["ppl"],
           "acc_measured": meas["acc"], "mc_acc_measured": meas.get("mc_acc"),
           "mc_acc_norm_measured": meas.get("mc_acc_norm"),
           **{k: v for k, v in meas.items() if k.startswith("task_")}, "seconds": seconds}
    if cal_loss is not None:
        row["cal_loss"] = cal_loss
    return add_predictions(row, dense, tables)


def add_predictions(row: dict, dense: DenseMetrics, tables: FisherTables) -> dict:
    """(Re)compute a row's predictions, estimates and errors from its measured values, so that rows measured
    earlier always carry the current predictors' numbers (measured columns are never touched)."""
    dim, ppl = row["dim"], row["ppl_measured"]
    stale = ("ppl_pred_", "acc_pred_", "mc_acc_pred_", "dloss_pred_", "ppl_err_")
    for k in [k for k in row if k.startswith(stale)]:
        del row[k]
    row.update(predict_point(dense, dim, tables))
    if row.get("cal_loss") is not None:
        row["ppl_est_calibration"] = math.exp(row["cal_loss"])
        row["ppl_est_cal_ratio"] = dense.ppl * math.exp(row["cal_loss"] - dense.cal_nll)
    for p in PREDICTORS:  # semi-interleaved predictors exist only at widths named when the tables were built
        if row.get(f"ppl_pred_{p}") is not None:
            row[f"ppl_err_{p}"] = 100 * (row[f"ppl_pred_{p}"] / ppl - 1)
    for e in ESTIMATORS:
        if row.get(f"ppl_est_{e}") is not None:
            row[f"ppl_err_est_{e}"] = 100 * (row[f"ppl_est_{e}"] / ppl - 1)
    row["dloss_measured"] = math.log(ppl / dense.ppl)
    charged = tables.energy[:-1] if not tables.settings.get("slice_head") else tables.energy
    row["energy_discarded_mean"] = 1 - charged[:, dim].mean().item()
    return row


def refresh_predictions(out: str | Path) -> list[dict]:
    """Recompute every row's predictions in DIR with the current predictor code; rewrite results.csv/json."""
    out = Path(out)
    rows = read_rows(out)
    settings = json.loads((out / "settings.json").read_text())["settings"]
    tables = FisherTables.load(out / "fisher.pt")
    dense = dense_metrics(json.loads((out / "dense.json").read_text()), tables.hidden)
    for r in rows:
        if r.get("cal_loss") is None and r.get("ppl_est_calibration"):
            r["cal_loss"] = math.log(r["ppl_est_calibration"])
        add_predictions(r, dense, tables)
    write_rows(out, rows, columns(SweepConfig(**settings)))
    return sorted(rows, key=lambda r: -r["dim"])


def run_sweep(cfg: SweepConfig, out: str | Path, *, sparsities: list[float] | None = None,
              dims: list[int] | None = None, fresh: bool = False, batch_size: int = 4, device: str = "auto",
              lm=None, progress: bool = True, report: bool = True, log=print) -> list[dict]:
    """Run (or resume) a sweep into `out`; returns all rows. See the module docstring for the files."""
    cfg.check()
    out = Path(out)
    prepare_dir(out, cfg, fresh, log=log)
    inp = load_inputs(cfg, lm, device)
    model = inp.model
    D = model.config.hidden_size
    points = parse_points(D, sparsities, dims, cfg.round_interval)
    rows = read_rows(out)
    pcas = None
    if cfg.basis == "dense":
        from .sites import dense_pcas

        pcas = dense_pcas(model, inp.cal_ids, progress=progress)
    semi = [d for d, _ in points] + [r["dim"] for r in rows]
    dense, dense_raw, tables = dense_state(cfg, inp, out, batch_size, progress, pcas, semi_dims=semi, log=log)
    cols = columns(cfg)
    done = {r["dim"] for r in rows}
    todo = [(d, s) for d, s in points if d not in done]
    if done:
        log(f"resuming {out}: {len(done)} point(s) already measured, {len(todo)} to go")
    for d, s in tqdm(todo, desc="sweep", disable=not progress):
        t0 = time.perf_counter()
        meas, params, cal_loss = measure_point(inp, cfg, d, dense_raw, pcas, batch_size, progress)
        row = make_row(d, s, meas, dense, tables, params, cal_loss, time.perf_counter() - t0)
        rows.append(row)
        write_rows(out, rows, cols)
        log(f"d'={d:4d} s={s:.2f}  ppl {row['ppl_measured']:.3f}  "
            + "  ".join(f"{p} {row[f'ppl_pred_{p}']:.3f} ({row[f'ppl_err_{p}']:+.1f}%)" for p in PREDICTORS
                        if row.get(f"ppl_err_{p}") is not None)
            + f"  [{row['seconds']:.0f}s]")
    rows = [add_predictions(r, dense, tables) for r in rows]
    write_rows(out, rows, cols)
    if report:
        from .report import write_report

        log(f"report: {write_report(out)}")
    return sorted(rows, key=lambda r: -r["dim"])


def predict_only(cfg: SweepConfig, *, sparsities: list[float] | None = None, dims: list[int] | None = None,
                 cache: str | Path | None = None, batch_size: int = 4, device: str = "auto", lm=None,
                 progress: bool = True) -> dict:
    """Predictions only (no slicing, no sliced or projected model anywhere): dense metrics on the eval
    windows and Fisher tables from the calibration windows, reused from `cache` (a sweep DIR with the same
    settings) when present there."""
    cfg.check()
    if cache is not None:
        cache = Path(cache)
        prepare_dir(cache, cfg, fresh=False, log=lambda m: print(m, file=sys.stderr))
    inp = load_inputs(cfg, lm, device)
    D = inp.model.config.hidden_size
    points = parse_points(D, sparsities, dims, cfg.round_interval)
    t0 = time.perf_counter()
    dense, dense_raw, tables = dense_state(cfg, inp, cache, batch_size, progress,
                                           semi_dims=[d for d, _ in points],
                                           log=lambda m: print(m, file=sys.stderr))
    from .predict import predict

    rows = predict(dense, [d for d, _ in points], tables)
    for r, (_, s) in zip(rows, points):
        r["sparsity"] = s
    L = inp.model.config.num_hidden_layers
    return {"model": cfg.model, "corpus": cfg.corpus, "hidden": D, "n_sites": n_sites(L),
            "dense": dense.to_dict(), "settings": asdict(cfg), "seconds": time.perf_counter() - t0,
            "fisher_seconds": tables.seconds, "predictions": rows}



# ----------------------------------------------------------------------------- command-line glue


def _list(text: str | None, kind: type, name: str) -> list | None:
    if text is None:
        return None
    try:
        vals = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of {kind.__name__}s, got {text!r}") from None
    if not vals:
        raise UsageError(f"{name} is empty")
    return vals


def add_options(p, sweep: bool = True) -> None:
    """Options of `slicedim sweep` / `slicedim predict` (the CLI adds --model, --device, --dtype, --json)."""
    p.add_argument("--corpus", default="python-docs", help="python-docs | wikitext2 | a UTF-8 text file")
    pts = p.add_mutually_exclusive_group(required=True)
    pts.add_argument("--sparsities", help="comma-separated sparsities, e.g. 0,0.1,0.2,0.3,0.4,0.5")
    pts.add_argument("--dims", help="comma-separated kept widths d'")
    if sweep:
        p.add_argument("--basis", default="interleaved", choices=BASES,
                       help="interleaved: real SliceGPT slicing; dense: project with the dense model's bases")
    p.add_argument("--cal-samples", type=int, default=32, help="calibration windows (default 32)")
    p.add_argument("--cal-seqlen", type=int, default=512, help="tokens per calibration window (default 512)")
    p.add_argument("--eval-seqlen", type=int, default=512, help="tokens per eval window (default 512)")
    p.add_argument("--max-eval-windows", type=int, default=None, help="eval windows (default: all)")
    p.add_argument("--grad-windows", type=int, default=None,
                   help="windows of the Fisher gradient pass (default: as many as --cal-samples)")
    p.add_argument("--grad-in-sample", action="store_true",
                   help="take the Fisher gradients on the PCA's own calibration windows (default: on the "
                        "calibration windows after them, which the PCA did not see)")
    p.add_argument("--tasks", default="corpus-mc",
                   help="comma-separated: corpus-mc (offline) and/or lm-eval tasks piqa, arc_easy, "
                        "arc_challenge, hellaswag, winogrande; 'none' for no multiple choice")
    p.add_argument("--mc-items", type=int, default=48, help="items of the corpus-mc task (default 48)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampled labels and MC items (default 0)")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    if sweep:
        p.add_argument("--out", required=True, help="sweep folder (results.csv/json, report.html, caches)")
        p.add_argument("--fresh", action="store_true", help="discard results of DIR made with other settings")
        p.add_argument("--no-report", action="store_true", help="do not render report.html")
    else:
        p.add_argument("--cache", default=None,
                       help="sweep folder with the same settings: reuse or store its dense metrics, tables")


def config_from_args(args) -> tuple[SweepConfig, list[float] | None, list[int] | None]:
    """SweepConfig and the points from parsed `add_options` arguments (checked before any model loads)."""
    tasks = [] if args.tasks.strip() == "none" else _list(args.tasks, str, "--tasks")
    cfg = SweepConfig(model=args.model, corpus=args.corpus, basis=getattr(args, "basis", "interleaved"),
                      cal_samples=args.cal_samples, cal_seqlen=args.cal_seqlen, eval_seqlen=args.eval_seqlen,
                      max_eval_windows=args.max_eval_windows, grad_windows=args.grad_windows,
                      grad_heldout=not args.grad_in_sample, tasks=tasks,
                      mc_items=args.mc_items, seed=args.seed, dtype=args.dtype)
    if args.batch_size < 1:
        raise UsageError(f"batch-size must be at least 1, got {args.batch_size}")
    cfg.check()
    sp, dims = _list(args.sparsities, float, "--sparsities"), _list(args.dims, int, "--dims")
    for s in sp or []:
        if not 0 <= s < 1:
            raise UsageError(f"sparsities must be in [0, 1), got {s}")
    return cfg, sp, dims
