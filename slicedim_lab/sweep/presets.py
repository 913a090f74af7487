"""The paper's protocol as data (`PAPER`), the sweep settings it makes for a model, and its table.

`slicedim reproduce` is this preset handed to the one sweep runner: WikiText-2 (calibration windows from
`train`, evaluation on the whole `test` split), 2048-token windows, 1024 calibration windows (the size of
SliceGPT's published WikiText-2 results; its script's own `--cal-nsamples` default is 128), interleaved
SliceGPT calibration with d' = int((1 − s)·D) rounded down to a multiple of 8, and the zero-shot tasks
through lm-evaluation-harness, each shown with the metric SliceGPT reports for it. Every setting can be
overridden; the sweep folder's settings.json records what was used.

`paper_table` lays the folder's rows out like the paper's tables: one row per sparsity (dense first),
WikiText-2 perplexity (measured, the paper's law beside it, and a published value where one is known for
the model), each task's accuracy in % and their mean.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import schema
from ..files import write_text
from .config import SweepConfig
from .folder import read_rows

TABLE_FILE = "paper_table.md"


@dataclass(frozen=True)
class Published:
    """Perplexities published for one model under this protocol, by sparsity, and where they come from."""

    source: str
    ppl: dict[float, float]


@dataclass(frozen=True)
class Preset:
    """A measurement protocol: its corpus, window sizes, sparsities, tasks (and the metric each task's column
    shows), and where each choice comes from."""

    name: str
    corpus: str
    cal_samples: int
    cal_seqlen: int
    eval_seqlen: int
    sparsities: tuple[float, ...]
    task_metrics: dict[str, str]
    grad_windows: int
    basis: str = "interleaved"
    round_interval: int = 8
    sources: dict[str, str] = field(default_factory=dict)
    published: dict[str, Published] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return list(self.task_metrics)


PAPER = Preset(
    name="paper",
    corpus="wikitext2",
    cal_samples=1024,
    cal_seqlen=2048,
    eval_seqlen=2048,
    # 0.1…0.5 as the issue asks, plus SliceGPT's published 0.25; the dense row (s = 0) comes first
    sparsities=(0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5),
    task_metrics={"piqa": "acc_norm", "arc_easy": "acc_norm", "arc_challenge": "acc_norm",
                  "hellaswag": "acc_norm", "winogrande": "acc"},
    grad_windows=128,
    sources={
        "corpus": "WikiText-2 raw: calibration from train, evaluation on test (SliceGPT, Xu et al.)",
        "cal_samples": "1024 × 2048: SliceGPT's published WikiText-2 results (run_slicegpt.py defaults to "
                       "--cal-nsamples 128 --cal-max-seqlen 2048; pass --cal-samples 128 for that)",
        "eval_seqlen": "2048: run_slicegpt.py --ppl-eval-seqlen",
        "sparsities": "0.1…0.5, with SliceGPT's 0.25; Xu et al.'s own points are not known to us",
        "tasks": "SliceGPT's zero-shot tasks: piqa, arc_easy, arc_challenge, hellaswag (acc_norm), "
                 "winogrande (acc), 0-shot through lm-evaluation-harness",
        "round_interval": "8: run_slicegpt.py --round-interval",
        "grad_windows": "128 held-out train windows for the dense-only Fisher tables (not part of the "
                        "paper's protocol: it bounds the cost of the predictions set beside it)",
    },
    published={
        "meta-llama/Llama-2-7b-hf": Published(
            "SliceGPT (Ashkboos et al. 2024), WikiText-2, 1024×2048 calibration",
            {0.0: 5.47, 0.1: 5.89, 0.2: 6.64, 0.25: 7.24, 0.3: 8.12}),
        "meta-llama/Llama-3.1-8B": Published(
            "an independent re-run of SliceGPT's reference code, WikiText-2, seqlen 2048",
            {0.0: 6.24, 0.1: 8.04, 0.2: 11.31, 0.25: 13.79, 0.3: 19.42, 0.5: 47.86}),
    },
)

PRESETS = {PAPER.name: PAPER}


def preset_config(preset: Preset, model: str, dtype: str | None = None, **overrides) -> SweepConfig:
    """The SweepConfig of `preset` for `model`; `overrides` (SweepConfig fields, None = keep the preset's)
    replace single settings. Checked (`SweepConfig.check`) by the runner, not here."""
    cfg = SweepConfig(model=model, corpus=preset.corpus, basis=preset.basis, cal_samples=preset.cal_samples,
                      cal_seqlen=preset.cal_seqlen, eval_seqlen=preset.eval_seqlen,
                      grad_windows=preset.grad_windows, tasks=preset.tasks,
                      round_interval=preset.round_interval, dtype=dtype)
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


# ----------------------------------------------------------------------------- the table

_TASK_NAMES = {"piqa": "PIQA", "arc_easy": "ARC-e", "arc_challenge": "ARC-c", "hellaswag": "HellaSwag",
               "winogrande": "WinoGrande", "corpus-mc": "corpus-MC"}


def _task_value(row: dict, task: str, metric: str) -> float | None:
    """A task's accuracy in a results row (lm-eval columns `task_{t}_{m}`, the offline `mc_acc_*`)."""
    if task == "corpus-mc":
        key = schema.measured("mc_acc") if metric == "acc" else schema.measured("mc_acc_norm")
    else:
        key = f"task_{task}_{metric}"
    v = row.get(key)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _cell(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def paper_table(rows: list[dict], tasks: list[str], task_metrics: dict[str, str] | None = None,
                published: Published | None = None) -> str:
    """A markdown table: one row per sparsity, widest (dense) first; columns s, d', parameters, WikiText-2
    perplexity measured and by the paper's law (and published, when given), each task's accuracy in % with
    the metric in its header (acc_norm unless `task_metrics` says otherwise), and their mean over the tasks
    a row has. Missing values are '—'."""
    metrics = {t: (task_metrics or {}).get(t, "acc_norm" if t != "winogrande" else "acc") for t in tasks}
    head = ["s", "d'", "params (M)", "PPL", "PPL (paper's law)"]
    head += ["PPL (published)"] if published else []
    head += [f"{_TASK_NAMES.get(t, t)} ({m})" for t, m in metrics.items()] + (["Avg"] if tasks else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    widest = max((r["dim"] for r in rows), default=0)
    for r in sorted(rows, key=lambda r: -r["dim"]):
        s = float(r["sparsity"])
        cells = ["dense" if r["dim"] == widest and s == 0 else f"{s:.2f}", str(int(r["dim"])),
                 _cell(None if r.get("params") is None else r["params"] / 1e6, ".1f"),
                 _cell(r.get(schema.measured("ppl")), ".2f"),
                 _cell(None if s == 0 else r.get(schema.pred("ppl", "paper")), ".2f")]
        if published:
            cells.append(_cell(published.ppl.get(round(s, 4)), ".2f"))
        accs = [_task_value(r, t, m) for t, m in metrics.items()]
        cells += [_cell(a if a is None else 100 * a, ".2f") for a in accs]
        have = [a for a in accs if a is not None]
        cells += [_cell(100 * sum(have) / len(have) if have else None, ".2f")] if tasks else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_paper_table(out: str | Path, preset: Preset = PAPER) -> Path:
    """Write `DIR/paper_table.md` (atomically) from a sweep folder's results and settings: the model, the
    settings that define the protocol, the table, and the published source when one is shown."""
    out = Path(out)
    settings = json.loads((out / "settings.json").read_text())["settings"]
    published = preset.published.get(settings["model"])
    table = paper_table(read_rows(out), settings["tasks"], preset.task_metrics, published)
    n_eval = "all" if settings.get("max_eval_windows") is None else settings["max_eval_windows"]
    cal, ev = ("train", "test") if settings["corpus"] == "wikitext2" else ("calibration", "eval")
    about = (f"# {settings['model']}: SliceGPT at each sparsity ({settings['basis']} calibration)\n\n"
             f"Calibration: {settings['cal_samples']} × {settings['cal_seqlen']} tokens of "
             f"{settings['corpus']} ({cal}); evaluation: {n_eval} windows of {settings['eval_seqlen']} "
             f"tokens ({ev}); dtype {settings.get('dtype') or 'float32'}. Task accuracies in %, 0-shot.\n\n")
    note = f"\nPublished perplexities: {published.source}.\n" if published else ""
    return write_text(out / TABLE_FILE, about + table + note)
