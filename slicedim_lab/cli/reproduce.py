"""`slicedim reproduce`: the paper's protocol (`sweep.presets.PAPER`) for a hub model, run by the one sweep
runner into the usual sweep folder, then `DIR/paper_table.md` laid out like the paper's tables.

Before anything is loaded it checks what the run will need from the Hugging Face hub (the model unless it
is in the local cache, WikiText-2 unless HF_DATASETS_OFFLINE says it is cached, the lm-eval tasks'
datasets) and fails at once, with one line naming each of them, when the hub cannot be reached.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import UsageError
from ..eval.mcq import LM_EVAL_TASKS
from ..load import models
from ..load.corpus import CORPORA, datasets_offline
from ..sweep.config import SweepConfig, parse_points
from ..sweep.presets import PAPER, TABLE_FILE, preset_config, write_paper_table
from ..sweep.runner import run_sweep
from .common import write_json

# the paper validates on this model and on microsoft/Phi-3-mini-4k-instruct
PAPER_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"
# options that replace one preset setting each (SweepConfig fields; None keeps the preset's)
_OVERRIDES = ("corpus", "cal_samples", "cal_seqlen", "eval_seqlen", "max_eval_windows", "grad_windows",
              "mc_items")


def add_reproduce_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="the paper's protocol on a hub model: WikiText-2, 2048-token "
                       "windows, s = 0.1…0.5, zero-shot tasks; a sweep folder and a paper-style table")
    p.add_argument("--model", default=PAPER_MODEL, help=f"hub id or local folder (default: {PAPER_MODEL})")
    p.add_argument("--out", default=None, help="sweep folder (default: runs/reproduce/<model name>)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto = cuda when available)")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--sparsities", default=None,
                   help=f"comma-separated (default: {','.join(f'{s:g}' for s in PAPER.sparsities)})")
    p.add_argument("--tasks", default=None,
                   help=f"comma-separated, or 'none' (default: {','.join(PAPER.tasks)})")
    p.add_argument("--corpus", default=None, help=f"calibration/eval corpus (default: {PAPER.corpus})")
    p.add_argument("--cal-samples", type=int, default=None,
                   help=f"calibration windows (default {PAPER.cal_samples})")
    p.add_argument("--cal-seqlen", type=int, default=None,
                   help=f"tokens per calibration window (default {PAPER.cal_seqlen})")
    p.add_argument("--eval-seqlen", type=int, default=None,
                   help=f"tokens per eval window (default {PAPER.eval_seqlen})")
    p.add_argument("--max-eval-windows", type=int, default=None,
                   help="eval windows (default: the whole test split)")
    p.add_argument("--grad-windows", type=int, default=None,
                   help=f"Fisher gradient windows of the predictions beside (default {PAPER.grad_windows})")
    p.add_argument("--mc-items", type=int, default=None, help="items of the offline corpus-mc task, if named")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument("--fresh", action="store_true", help="discard results of DIR made with other settings")
    p.add_argument("--no-report", action="store_true", help="do not render report.html")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--json", default=None, metavar="PATH|-", help="write the rows as JSON (- = stdout)")
    p.set_defaults(func=cmd_reproduce)


def _csv(text: str | None, kind: type, name: str) -> list | None:
    if text is None:
        return None
    try:
        vals = [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of {kind.__name__}s, got {text!r}") from None
    if not vals:
        raise UsageError(f"{name} is empty")
    return vals


def default_out(model: str) -> Path:
    """runs/reproduce/<the model's last path part, filesystem-safe>."""
    return Path("runs") / "reproduce" / re.sub(r"[^\w.-]", "_", Path(model.rstrip("/")).name or "model")


def _is_local(model: str) -> bool:
    return model in models.ALIASES or Path(model).expanduser().is_dir()


def _model_cached(model: str) -> bool:
    """Whether a hub id's config is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # a malformed id: load_model says so later, in one line
        return False


def hub_needs(model: str, corpus: str, tasks: list[str]) -> list[str]:
    """What this run would fetch from the Hugging Face hub, in words (empty: everything is local)."""
    needs = []
    if not _is_local(model) and not _model_cached(model):
        needs.append(f"model {model}")
    if corpus == "wikitext2" and not datasets_offline():
        needs.append("dataset wikitext (wikitext-2-raw-v1)")
    harness = [t for t in tasks if t in LM_EVAL_TASKS]
    if harness and not datasets_offline():  # else eval.mcq.check_tasks asks for a reachable hub
        needs.append(f"the lm-eval datasets of {', '.join(harness)}")
    return needs


def _why_unreachable() -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return f"could not connect to {constants.ENDPOINT} within 3 s"


def check_model_access(model: str) -> None:
    """One line when a hub model is gated (licence not accepted, no token) or does not exist."""
    from huggingface_hub import auth_check
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        auth_check(model)
    except GatedRepoError:
        raise UsageError(f"model {model} is gated on the Hugging Face hub: accept its licence on its hub "
                         "page and log in (hf auth login, or set HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise UsageError(f"model {model} is not on the Hugging Face hub (or is private to another "
                         "account)") from None
    except Exception as e:  # a network error here is not fatal: loading will try again and say why
        print(f"note: could not check access to {model} on the hub ({type(e).__name__})", file=sys.stderr)


def preflight(model: str, corpus: str, tasks: list[str]) -> None:
    """Fail at once, before anything heavy, when the run needs the hub and the hub cannot be reached (one
    line naming everything it would have fetched); check a hub model's access when it can be."""
    needs = hub_needs(model, corpus, tasks)
    if not needs:
        return
    if not models.hub_reachable():
        raise UsageError(f"reproduce cannot reach the Hugging Face hub ({_why_unreachable()}), which it "
                         f"needs for: {'; '.join(needs)} (nothing was loaded)")
    if needs[0].startswith("model "):
        check_model_access(model)


def _tasks(text: str | None) -> list[str] | None:
    """--tasks: None keeps the preset's, 'none' is no task, else a comma-separated list."""
    if text is None:
        return None
    tasks = [] if text.strip() == "none" else _csv(text, str, "--tasks")
    bad = [t for t in tasks if t != "corpus-mc" and t not in LM_EVAL_TASKS]
    if bad:  # the name check before any network probe (eval.mcq.check_tasks repeats it later)
        raise UsageError(f"unknown task {bad[0]!r}; choose from: corpus-mc, {', '.join(LM_EVAL_TASKS)}")
    return tasks


def _config(args: argparse.Namespace) -> tuple[SweepConfig, list[float]]:
    """The paper preset with this invocation's overrides, and its sparsities (checked, nothing loaded)."""
    sparsities = _csv(args.sparsities, float, "--sparsities") or list(PAPER.sparsities)
    parse_points(10**6, sparsities=sparsities)  # range check: every s in [0, 1)
    if args.batch_size < 1:
        raise UsageError(f"batch-size must be at least 1, got {args.batch_size}")
    dev = models.resolve_device(args.device)
    dtype = args.dtype or ("bfloat16" if dev.type == "cuda" else "float32")
    models.resolve_dtype(dtype, dev)
    corpus = args.corpus
    if corpus is not None and corpus not in CORPORA and not Path(corpus).expanduser().is_file():
        raise UsageError(f"unknown corpus {corpus!r}; choose one of: {', '.join(CORPORA)}, or a text "
                         "file's path")
    overrides = {k: getattr(args, k) for k in _OVERRIDES}
    return preset_config(PAPER, args.model, dtype=dtype, tasks=_tasks(args.tasks), **overrides), sparsities


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Check reachability, run (or resume) the paper-preset sweep, write and print the paper-style table."""

    cfg, sparsities = _config(args)
    preflight(cfg.model, cfg.corpus, cfg.tasks)
    cfg.check()
    out = Path(args.out) if args.out else default_out(cfg.model)
    log = (lambda m: print(m, file=sys.stderr)) if args.json == "-" else print
    log(f"reproduce {cfg.model} into {out}: {cfg.corpus}, {cfg.cal_samples}×{cfg.cal_seqlen} calibration, "
        f"{cfg.eval_seqlen}-token eval windows, s = {', '.join(f'{s:g}' for s in sparsities)}, "
        f"tasks {', '.join(cfg.tasks) or 'none'}, {cfg.dtype}")
    rows = run_sweep(cfg, out, sparsities=sparsities, fresh=args.fresh, batch_size=args.batch_size,
                     device=args.device, progress=not args.no_progress, report=not args.no_report, log=log)
    table = write_paper_table(out)
    log(table.read_text())
    log(f"table: {out / TABLE_FILE}")
    write_json(args.json, {"out": str(out), "table": str(table), "rows": rows})
    return 0
