"""`slicedim eval` (measure a model) and `slicedim slice` (SliceGPT a model, export it, measure it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..core.export import save_sliced
from ..core.memory import alias_copy, peak_rss_bytes
from ..core.sites import is_parallel, model_sites
from ..core.size import macs_per_token, param_breakdown
from ..core.widths import check_schedule_config, dim_for_sparsity, load_schedule, site_dims
from ..errors import UsageError
from ..eval.metrics import EvalResult, evaluate
from ..load import models
from ..load.corpus import CORPUS_HELP, load_text, windows
from ..sweep.point import Sliced, slice_and_measure
from .common import add_common_options, add_corpus_options, check_positive, print_table, write_json


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="perplexity and top-1 accuracy of a model on a corpus split")
    add_common_options(p)
    add_corpus_options(p, split="eval")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Measure ppl/accuracy on non-overlapping windows of a corpus split; print a table, optionally JSON."""

    if args.seqlen < 2:
        raise UsageError(f"seqlen must be at least 2 (one input and one predicted token), got {args.seqlen}")
    check_positive("max-windows", args.max_windows)
    check_positive("batch-size", args.batch_size)
    text = load_text(args.corpus, args.split)
    lm = models.load_model(args.model, device=args.device, dtype=args.dtype)
    ids = windows(lm.tokenizer, text, args.seqlen, args.max_windows)
    res = evaluate(lm.model, ids, batch_size=args.batch_size, device=lm.device, progress=not args.no_progress)
    payload = {
        "ppl": res.ppl,
        "accuracy": res.accuracy,
        "nll": res.nll,
        "tokens": res.tokens,
        "windows": res.windows,
        "seqlen": res.seqlen,
        "model": args.model,
        "corpus": args.corpus,
        "split": args.split,
        "device": str(lm.device),
        "dtype": str(next(lm.model.parameters()).dtype).removeprefix("torch."),
        "seconds": res.seconds,
    }
    # With --json - the JSON owns stdout, so the table goes to stderr.
    shown = ("model", "corpus", "split", "windows", "seqlen", "tokens", "ppl", "accuracy")
    print_table(
        [(k, payload[k]) for k in shown] + [("tokens/s", res.tokens / max(res.seconds, 1e-9))],
        stream=sys.stderr if args.json == "-" else sys.stdout,
    )
    write_json(args.json, payload)
    return 0


def add_slice_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("slice", help="calibrate, slice to a kept width, evaluate, optionally save")
    add_common_options(p)
    p.add_argument("--corpus", default="python-docs", help=CORPUS_HELP)
    width = p.add_mutually_exclusive_group(required=True)
    width.add_argument("--sparsity", type=float, help="s in [0, 1): d' = int((1-s) D) rounded down")
    width.add_argument("--dim", type=int, help="kept width d' at every site")
    width.add_argument("--schedule", help="per-site widths (2L+1; L+1 for parallel layers): JSON file or "
                       "comma-separated list")
    p.add_argument("--round-interval", type=int, default=8, help="round d' down to a multiple (default 8)")
    p.add_argument("--slice-head", action="store_true", help="slice the last site too (the head's input)")
    p.add_argument("--untie-head", action="store_true", help="untie a tied embedding/head (as the reference)")
    p.add_argument("--final-orientation", default="pca", choices=("pca", "random"))
    p.add_argument("--seed", type=int, default=0, help="seed of the random orientation")
    p.add_argument("--cal-samples", type=int, default=32, help="calibration windows (default 32)")
    p.add_argument("--cal-seqlen", type=int, default=512, help="calibration window length (default 512)")
    p.add_argument("--eval-seqlen", type=int, default=512, help="eval window length (default 512)")
    p.add_argument("--max-eval-windows", type=int, default=None, help="eval on at most N windows")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument("--eval-dense", action="store_true", help="also measure the dense model")
    p.add_argument("--out", default=None, help="save the sliced model to this folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_slice)


def _check_slice_args(args: argparse.Namespace) -> list[int] | None:
    """Every bad option fails here, before anything is read; returns the per-site schedule, if given."""
    counts = ("cal_samples", "cal_seqlen", "eval_seqlen", "max_eval_windows", "batch_size", "round_interval")
    for name in counts:
        check_positive(name.replace("_", "-"), getattr(args, name))
    if min(args.cal_seqlen, args.eval_seqlen) < 2:
        raise UsageError("sequence lengths must be at least 2")
    if args.sparsity is not None:
        dim_for_sparsity(args.sparsity, 10**6, 1)  # range check before anything is loaded
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise UsageError(f"output folder {args.out} exists (use --overwrite)")
    if not args.schedule:
        return None
    schedule = load_schedule(args.schedule)
    config = models.local_config(args.model)  # a wrong count or width fails before any weight is read
    if config is not None:
        check_schedule_config(schedule, config)
    return schedule


def _slice_inputs(args: argparse.Namespace, schedule: list[int] | None):
    """The texts (read first: a bad corpus fails before the model loads), the device, the model kept on the
    host (memory-mapped from its checkpoint; layers visit the device one at a time), the per-site widths and
    the calibration and eval windows."""
    cal_text, eval_text = load_text(args.corpus, "calibration"), load_text(args.corpus, "eval")
    dev = models.resolve_device(args.device)
    models.resolve_dtype(args.dtype, dev)  # a bad pair fails before anything is read
    lm = models.load_model(args.model, device=str(dev), dtype=args.dtype, keep_on_host=True)
    cfg = lm.model.config
    dims = site_dims(cfg.num_hidden_layers, cfg.hidden_size, sparsity=args.sparsity, dim=args.dim,
                     schedule=schedule, round_interval=args.round_interval, slice_head=args.slice_head,
                     parallel=is_parallel(model_sites(lm.model)))
    cal = windows(lm.tokenizer, cal_text, args.cal_seqlen, args.cal_samples)
    if cal.shape[0] < args.cal_samples:
        raise UsageError(f"the calibration split has {cal.shape[0]} windows of {args.cal_seqlen} tokens, "
                         f"fewer than --cal-samples {args.cal_samples}")
    return lm, dev, dims, cal, windows(lm.tokenizer, eval_text, args.eval_seqlen, args.max_eval_windows)


def _dense_eval(lm: models.LoadedModel, ev: torch.Tensor, dev: torch.device,
                args: argparse.Namespace) -> EvalResult | None:
    """The dense model measured (`--eval-dense`) on the device through an alias copy: the host model stays
    as it is."""
    if not args.eval_dense:
        return None
    on_dev = lm.model if dev.type == "cpu" else alias_copy(lm.model).to(dev)
    return evaluate(on_dev, ev, args.batch_size, device=dev, progress=not args.no_progress)


def _slice_payload(args: argparse.Namespace, dims: list[int], dense: EvalResult | None, done: Sliced,
                   before: dict) -> dict:
    """The JSON of `slicedim slice`: widths, sizes and MACs before and after, metrics, costs, settings
    (`before`: the dense model's width, parameters, MACs, dtype and the device, taken before slicing)."""
    hidden, sliced, ev = before["hidden"], done.result.model, done.measured
    params_dense, macs_dense, uniform = before["params"], before["macs"], len(set(dims[:-1])) == 1
    params_sliced, macs_sliced = param_breakdown(sliced), macs_per_token(sliced, args.eval_seqlen)
    return {
        **({"dim": dims[0]} if uniform and not args.schedule else {"dims": dims}),
        "sparsity": 1 - sum(dims) / len(dims) / hidden if args.sparsity is None else args.sparsity,
        "hidden_size": hidden,
        "params_dense": params_dense["total"],
        "params_sliced": params_sliced["total"],
        "params_ratio": params_sliced["total"] / params_dense["total"],
        "params_breakdown_dense": params_dense,
        "params_breakdown_sliced": params_sliced,
        "macs_per_token_dense": macs_dense["total"],
        "macs_per_token_sliced": macs_sliced["total"],
        "ppl": ev.ppl,
        "accuracy": ev.accuracy,
        "ppl_dense": dense.ppl if dense else None,
        "accuracy_dense": dense.accuracy if dense else None,
        "cal_loss": done.result.cal_loss,
        "eval_tokens": ev.tokens,
        "seconds_calibrate_slice": done.seconds_slice,
        "seconds_eval": ev.seconds,
        "peak_rss_mb": peak_rss_bytes() / 2**20,  # host, the whole run (weights memory-mapped count as read)
        "peak_device_mb": None if done.peak_device is None else done.peak_device / 2**20,  # calibrate+slice
        "device": str(before["device"]),
        "dtype": str(before["dtype"]).removeprefix("torch."),  # every weight; PCA and transforms in float64
        "model": args.model,
        "corpus": args.corpus,
        "cal_samples": args.cal_samples,
        "cal_seqlen": args.cal_seqlen,
        "eval_seqlen": args.eval_seqlen,
        "round_interval": args.round_interval,
        "slice_head": args.slice_head,
        "tied_head": sliced.config.tie_word_embeddings,
        "final_orientation": args.final_orientation,
        "seed": args.seed,
        "out": args.out,
    }


def _slice_table(args: argparse.Namespace, payload: dict) -> list[tuple[str, object]]:
    """The short table `slicedim slice` prints."""
    shown = [("model", args.model), ("kept width", payload.get("dim", "schedule")),
             ("hidden size", payload["hidden_size"]), ("params dense", payload["params_dense"]),
             ("params sliced", payload["params_sliced"]), ("params ratio", payload["params_ratio"]),
             ("ppl", payload["ppl"]), ("accuracy", payload["accuracy"])]
    if payload["ppl_dense"] is not None:
        shown += [("ppl dense", payload["ppl_dense"]), ("accuracy dense", payload["accuracy_dense"])]
    return shown + [("calibrate+slice s", payload["seconds_calibrate_slice"]),
                    ("eval s", payload["seconds_eval"])]


def cmd_slice(args: argparse.Namespace) -> int:
    """Calibrate on --cal-samples windows, slice, evaluate on the eval split, report (and save): the steps
    above around `sweep.point.slice_and_measure`, the one slice-then-measure of the package."""
    schedule = _check_slice_args(args)
    lm, dev, dims, cal, ev = _slice_inputs(args, schedule)
    dense = _dense_eval(lm, ev, dev, args)
    before = {"hidden": lm.model.config.hidden_size, "params": param_breakdown(lm.model),
              "macs": macs_per_token(lm.model, args.eval_seqlen), "dtype": next(lm.model.parameters()).dtype,
              "device": dev}
    progress = not args.no_progress
    done = slice_and_measure(
        lm.model, cal, dims, lambda m: evaluate(m, ev, args.batch_size, device=dev, progress=progress),
        batch_size=args.batch_size, device=dev, progress=progress, untie_head=args.untie_head,
        final_orientation=args.final_orientation, seed=args.seed, inplace=not args.eval_dense)
    done.result.model.config.slicing["corpus"] = args.corpus
    payload = _slice_payload(args, dims, dense, done, before)
    if args.out:
        save_sliced(done.result.model, args.out, tokenizer=lm.tokenizer, overwrite=args.overwrite)
    print_table(_slice_table(args, payload), stream=sys.stderr if args.json == "-" else sys.stdout)
    write_json(args.json, payload)
    return 0
