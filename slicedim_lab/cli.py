"""The `slicedim` command line: one `add_<name>_parser` and one `cmd_<name>` function per subcommand.

Bad input anywhere raises `UsageError`; `main` prints it as one line on stderr and exits 2, before anything
is written (JSON outputs are written to a temp file and renamed into place only at the end).

To add a subcommand: write `add_foo_parser(sub)` (use `add_common_options` / `add_corpus_options`, set
`func=cmd_foo` with `set_defaults`), write `cmd_foo(args) -> int`, and call `add_foo_parser` in
`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from transformers.utils import logging as hf_logging

from slicedim_lab import files
from slicedim_lab.core.emulate import verify
from slicedim_lab.core.sites import lens_sites
from slicedim_lab.core.size import macs_per_token, param_breakdown
from slicedim_lab.core.slicing import save_sliced, slice_model
from slicedim_lab.core.widths import dim_for_sparsity, load_schedule, site_dims
from slicedim_lab.errors import UsageError
from slicedim_lab.eval.metrics import evaluate
from slicedim_lab.flow.session import FlowSession, format_layers
from slicedim_lab.load import models
from slicedim_lab.load.corpus import CORPORA, load_text, windows
from slicedim_lab.sweep.options import add_options, config_from_args
from slicedim_lab.sweep.runner import predict_only, run_sweep
from slicedim_lab.viz.report import error_summary, headline_text


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting, so every error is one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


# ---------------------------------------------------------------------------------------------------------
# Shared option groups and helpers


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--model, --device, --dtype, --json: the options every model-running subcommand takes."""
    aliases, dtypes = ", ".join(models.ALIASES), " | ".join(models.DTYPES)
    p.add_argument("--model", default=models.DEFAULT_MODEL,
                   help=f"alias ({aliases}), local HF folder or hub id (default: {models.DEFAULT_MODEL})")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto = cuda when available)")
    p.add_argument("--dtype", default=None, help=f"{dtypes} (default float32; half needs CUDA)")
    p.add_argument("--json", default=None, metavar="PATH|-", help="write JSON to PATH (- = stdout)")


def add_corpus_options(p: argparse.ArgumentParser, split: str = "eval") -> None:
    """--corpus, --split, --seqlen, --max-windows, --batch-size: which windows to run and how many at once."""

    p.add_argument("--corpus", default="python-docs", help=f"{' | '.join(CORPORA)} | path to a UTF-8 file")
    p.add_argument("--split", default=split, help=f"calibration | eval (default: {split})")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per window (default: 512)")
    p.add_argument("--max-windows", type=int, default=None, help="use at most N windows (default: all)")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default: 4)")


def check_positive(name: str, value: int | None) -> None:
    """UsageError unless value is None or >= 1 (checked before any model is loaded)."""
    if value is not None and value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}")


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write payload as JSON to stdout ("-") or atomically to a file (`files.write_json`); None: nothing."""
    if path is None:
        return
    if path == "-":
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        sys.stdout.flush()
        return
    files.write_json(path, payload, indent=2)


def print_table(rows: Sequence[tuple[str, Any]], stream: Any = None) -> None:
    """Print `key  value` rows aligned, floats with 4 significant decimals."""
    stream = stream or sys.stdout
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}", file=stream)


# ---------------------------------------------------------------------------------------------------------
# slicedim eval


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


# ---------------------------------------------------------------------------------------------------------
# slicedim slice


def add_slice_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("slice", help="calibrate, slice to a kept width, evaluate, optionally save")
    add_common_options(p)
    p.add_argument("--corpus", default="python-docs", help="python-docs | wikitext2 | path to a UTF-8 file")
    width = p.add_mutually_exclusive_group(required=True)
    width.add_argument("--sparsity", type=float, help="s in [0, 1): d' = int((1-s) D) rounded down")
    width.add_argument("--dim", type=int, help="kept width d' at every site")
    width.add_argument("--schedule", help="per-site widths (2L+1): JSON file or comma-separated list")
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


def cmd_slice(args: argparse.Namespace) -> int:
    """Calibrate on the first --cal-samples windows, slice, evaluate on the eval split, report (and save)."""


    counts = ("cal_samples", "cal_seqlen", "eval_seqlen", "max_eval_windows", "batch_size", "round_interval")
    for name in counts:
        check_positive(name.replace("_", "-"), getattr(args, name))
    if min(args.cal_seqlen, args.eval_seqlen) < 2:
        raise UsageError("sequence lengths must be at least 2")
    if args.sparsity is not None:
        dim_for_sparsity(args.sparsity, 10**6, 1)  # range check before anything is loaded
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise UsageError(f"output folder {args.out} exists (use --overwrite)")
    schedule = load_schedule(args.schedule) if args.schedule else None
    cal_text, eval_text = load_text(args.corpus, "calibration"), load_text(args.corpus, "eval")
    lm = models.load_model(args.model, device=args.device, dtype=args.dtype)
    cfg = lm.model.config
    dims = site_dims(cfg.num_hidden_layers, cfg.hidden_size, sparsity=args.sparsity, dim=args.dim,
                     schedule=schedule, round_interval=args.round_interval, slice_head=args.slice_head)
    cal = windows(lm.tokenizer, cal_text, args.cal_seqlen, args.cal_samples)
    if cal.shape[0] < args.cal_samples:
        raise UsageError(f"the calibration split has {cal.shape[0]} windows of {args.cal_seqlen} tokens, "
                         f"fewer than --cal-samples {args.cal_samples}")
    ev = windows(lm.tokenizer, eval_text, args.eval_seqlen, args.max_eval_windows)
    progress = not args.no_progress
    dense = None
    if args.eval_dense:
        dense = evaluate(lm.model, ev, args.batch_size, device=lm.device, progress=progress)
    params_dense, macs_dense = param_breakdown(lm.model), macs_per_token(lm.model, args.eval_seqlen)
    t0 = time.perf_counter()
    res = slice_model(
        lm.model, cal, dims, untie_head=args.untie_head, final_orientation=args.final_orientation,
        seed=args.seed, batch_size=args.batch_size, inplace=not args.eval_dense, progress=progress,
    )
    seconds_slice = time.perf_counter() - t0
    res.model.config.slicing["corpus"] = args.corpus
    ev_res = evaluate(res.model, ev, args.batch_size, device=lm.device, progress=progress)
    uniform = len(set(dims[:-1])) == 1
    params_sliced, macs_sliced = param_breakdown(res.model), macs_per_token(res.model, args.eval_seqlen)
    payload = {
        **({"dim": dims[0]} if uniform and not schedule else {"dims": dims}),
        "sparsity": 1 - sum(dims) / len(dims) / cfg.hidden_size if args.sparsity is None else args.sparsity,
        "hidden_size": cfg.hidden_size,
        "params_dense": params_dense["total"],
        "params_sliced": params_sliced["total"],
        "params_ratio": params_sliced["total"] / params_dense["total"],
        "params_breakdown_dense": params_dense,
        "params_breakdown_sliced": params_sliced,
        "macs_per_token_dense": macs_dense["total"],
        "macs_per_token_sliced": macs_sliced["total"],
        "ppl": ev_res.ppl,
        "accuracy": ev_res.accuracy,
        "ppl_dense": dense.ppl if dense else None,
        "accuracy_dense": dense.accuracy if dense else None,
        "cal_loss": res.cal_loss,
        "eval_tokens": ev_res.tokens,
        "seconds_calibrate_slice": seconds_slice,
        "seconds_eval": ev_res.seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model": args.model,
        "corpus": args.corpus,
        "cal_samples": args.cal_samples,
        "cal_seqlen": args.cal_seqlen,
        "eval_seqlen": args.eval_seqlen,
        "round_interval": args.round_interval,
        "slice_head": args.slice_head,
        "tied_head": res.model.config.tie_word_embeddings,
        "final_orientation": args.final_orientation,
        "seed": args.seed,
        "out": args.out,
    }
    if args.out:
        save_sliced(res.model, args.out, tokenizer=lm.tokenizer, overwrite=args.overwrite)
    shown = [("model", args.model), ("kept width", payload.get("dim", "schedule")),
             ("hidden size", cfg.hidden_size), ("params dense", params_dense["total"]),
             ("params sliced", params_sliced["total"]),
             ("params ratio", payload["params_ratio"]), ("ppl", ev_res.ppl), ("accuracy", ev_res.accuracy)]
    if dense:
        shown += [("ppl dense", dense.ppl), ("accuracy dense", dense.accuracy)]
    shown += [("calibrate+slice s", seconds_slice), ("eval s", ev_res.seconds)]
    print_table(shown, stream=sys.stderr if args.json == "-" else sys.stdout)
    write_json(args.json, payload)
    return 0


# ---------------------------------------------------------------------------------------------------------
# slicedim sweep / slicedim predict (options and logic live in slicedim_lab/sweep.py)


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser("sweep", help="slice at each d', measure, predict beside; resumable")
    add_common_options(p)
    add_options(p, sweep=True)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run or resume a sweep into --out: results.csv/json one row per point, then report.html."""

    cfg, sparsities, dims = config_from_args(args)
    log = (lambda m: print(m, file=sys.stderr)) if args.json == "-" else print
    rows = run_sweep(cfg, args.out, sparsities=sparsities, dims=dims, fresh=args.fresh,
                     batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
                     report=not args.no_report, log=log)
    summary = error_summary(rows)
    log("all predictors and estimators over the points with s > 0:")
    for s in summary:
        log(f"  {s['name']:<18} mean |err| {s['mean_abs_err']:6.1f}%   max |err| {s['max_abs_err']:6.1f}%")
    log(headline_text(rows, cfg.basis))
    write_json(args.json, {"out": str(args.out), "rows": rows, "errors": summary})
    return 0


def add_predict_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser("predict", help="predicted PPL/accuracy at each d' (dense model only)")
    add_common_options(p)
    add_options(p, sweep=False)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predictions only: dense metrics + dense-only Fisher tables; never slices or projects the model."""

    cfg, sparsities, dims = config_from_args(args)
    res = predict_only(cfg, sparsities=sparsities, dims=dims, cache=args.cache, batch_size=args.batch_size,
                       device=args.device, progress=not args.no_progress)
    stream = sys.stderr if args.json == "-" else sys.stdout
    d = res["dense"]
    mc = f"  mc_acc {d['mc_acc']:.4f}" if d["mc_acc"] is not None else ""
    print(f"dense: ppl {d['ppl']:.4f}  acc {d['acc']:.4f}{mc}  (D={res['hidden']}; {res['seconds']:.0f}s)",
          file=stream)
    names = [k.removeprefix("ppl_pred_") for k in res["predictions"][0] if k.startswith("ppl_pred_")]
    print(f"{'dim':>5} {'s':>5}  " + "  ".join(f"{n:>25}" for n in names) + "   (ppl / acc)", file=stream)
    for r in res["predictions"]:
        cells = "  ".join(f"{r['ppl_pred_' + n]:>16.3f} / {r['acc_pred_' + n]:.4f}" for n in names)
        print(f"{r['dim']:>5} {r['sparsity']:>5.2f}  {cells}", file=stream)
    write_json(args.json, res)
    return 0


# ---------------------------------------------------------------------------------------------------------
# slicedim flow / slicedim verify (logic in slicedim_lab/flow.py and slicedim_lab/emulate.py)


def add_flow_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="activation flow under slicing at one d' (TransformerLens), per layer")
    add_common_options(p)
    p.add_argument("--dim", type=int, required=True, help="kept width d' (the head's input stays full)")
    p.add_argument("--basis", default="interleaved", choices=("interleaved", "dense"),
                   help="interleaved: SliceGPT's calibration (default); dense: the dense model's PCA")
    p.add_argument("--corpus", default="python-docs", help="python-docs | wikitext2 | path to a UTF-8 file")
    p.add_argument("--cal-samples", type=int, default=32, help="calibration windows (default 32)")
    p.add_argument("--cal-seqlen", type=int, default=512, help="calibration window length (default 512)")
    p.add_argument("--eval-windows", type=int, default=4, help="eval windows measured on (default 4)")
    p.add_argument("--eval-seqlen", type=int, default=256, help="eval window length (default 256)")
    p.add_argument("--batch-size", type=int, default=2, help="windows per forward pass (default 2)")
    p.add_argument("--lens", default="post", help="logit-lens sites: post | all | none | K (every K layers)")
    p.add_argument("--attribution-steps", type=int, default=4,
                   help="Gauss-Legendre nodes of the prediction decomposition (0: first order only)")
    p.add_argument("--no-attribution", action="store_true", help="skip the prediction decomposition")
    p.add_argument("--svd", action="store_true", help="also singular values of every sliced vs full map")
    p.add_argument("--compare", action="store_true", help="also the other basis: dense-vs-interleaved gap")
    p.add_argument("--csv", default=None, metavar="PATH", help="write the tidy per-site table as CSV")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_flow)


def cmd_flow(args: argparse.Namespace) -> int:
    """Emulate slicing to --dim on the bridge, measure the flow on eval windows, print one row per layer."""

    for name in ("dim", "cal_samples", "cal_seqlen", "eval_windows", "eval_seqlen", "batch_size"):
        check_positive(name.replace("_", "-"), getattr(args, name))
    if min(args.cal_seqlen, args.eval_seqlen) < 2:
        raise UsageError("sequence lengths must be at least 2")
    if args.attribution_steps < 0:
        raise UsageError(f"attribution-steps must be >= 0, got {args.attribution_steps}")
    lens_sites(1, args.lens)  # format check before anything is loaded
    cal_text, eval_text = load_text(args.corpus, "calibration"), load_text(args.corpus, "eval")
    lm = models.load_model(args.model, device=args.device, dtype=args.dtype)
    D = lm.model.config.hidden_size
    if args.dim > D:
        raise UsageError(f"dim must be in [1, {D}] for {args.model}, got {args.dim}")
    cal = windows(lm.tokenizer, cal_text, args.cal_seqlen, args.cal_samples)
    ev = windows(lm.tokenizer, eval_text, args.eval_seqlen, args.eval_windows)
    if cal.shape[0] < 1 or ev.shape[0] < 1:
        raise UsageError("the corpus is too short for one calibration and one eval window at these lengths")
    session = FlowSession(lm.model, cal, ev, tokenizer=lm.tokenizer, batch_size=args.batch_size,
                          lens=args.lens, progress=not args.no_progress)
    steps = None if args.no_attribution else args.attribution_steps
    rep = session.report(args.dim, args.basis, attribution=steps, svd=args.svd)
    layers = rep.per_layer()
    stream = sys.stderr if args.json == "-" else sys.stdout
    sm = rep.summary
    print(f"{args.model}: d'={args.dim} of {D}, {args.basis} bases, {sm['tokens']} predicted eval tokens",
          file=stream)
    print(format_layers(layers), file=stream)
    rows = [("ppl dense", sm["ppl_dense"]), ("ppl sliced", sm["ppl_sliced"]), ("KL(dense||sliced)", sm["kl"]),
            ("accuracy dense", sm["accuracy_dense"]), ("accuracy sliced", sm["accuracy_sliced"])]
    if "attr_loss_change" in sm:
        rows += [("loss change", sm["attr_loss_change"]),
                 ("  attributed (integrated)", sm["attr_loss_integrated_sum"]),
                 ("  remainder (integrated)", sm["attr_loss_integrated_remainder"]),
                 ("  attributed (first order)", sm["attr_loss_first_sum"]),
                 ("  attributed (direct)", sm["attr_loss_direct_sum"])]
    compare = None
    if args.compare:
        compare = session.compare(args.dim)
        gap = compare.loc[compare["basis"] == "dense"].iloc[0]
        rows += [("dense-basis ppl / interleaved", float(gap["ppl_ratio_vs_interleaved"])),
                 ("dense-basis nll - interleaved", float(gap["d_nll_vs_interleaved"]))]
    print_table(rows, stream=stream)
    if args.csv:
        with files.atomic_file(args.csv, newline="") as f:
            rep.table.to_csv(f, index=False)
    payload = {
        "model": args.model, "dim": args.dim, "hidden_size": D, "basis": args.basis, "dims": rep.dims,
        "corpus": args.corpus, "cal_samples": int(cal.shape[0]), "cal_seqlen": args.cal_seqlen,
        "eval_windows": int(ev.shape[0]), "eval_seqlen": args.eval_seqlen, "summary": sm,
        "seconds": {**session.seconds, **rep.seconds},
        "per_layer": json.loads(layers.to_json(orient="records")),
        "table": json.loads(rep.table.to_json(orient="records")),
        "compare": None if compare is None else json.loads(compare.to_json(orient="records")),
        "singular": None if rep.singular is None else json.loads(rep.singular.to_json(orient="records")),
    }
    write_json(args.json, payload)
    return 0


def add_verify_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check full-width slicing invariance and the hook emulation on a model")
    add_common_options(p)
    p.add_argument("--dim", type=int, default=None, help="kept width to emulate (default: s = 0.25)")
    p.add_argument("--corpus", default="python-docs", help="python-docs | wikitext2 | path to a UTF-8 file")
    p.add_argument("--cal-samples", type=int, default=4, help="calibration windows (default 4)")
    p.add_argument("--cal-seqlen", type=int, default=128, help="calibration window length (default 128)")
    p.add_argument("--windows", type=int, default=2, help="eval windows compared (default 2)")
    p.add_argument("--seqlen", type=int, default=128, help="eval window length (default 128)")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    """Invariance at d' = D and emulated-vs-sliced logits at --dim; exit 1 when a check fails (see
    emulate.VERIFY_RTOL for the tolerances)."""

    for name in ("dim", "cal_samples", "cal_seqlen", "windows", "seqlen", "batch_size"):
        check_positive(name.replace("_", "-"), getattr(args, name))
    if min(args.cal_seqlen, args.seqlen) < 2:
        raise UsageError("sequence lengths must be at least 2")
    cal_text, eval_text = load_text(args.corpus, "calibration"), load_text(args.corpus, "eval")
    lm = models.load_model(args.model, device=args.device, dtype=args.dtype)
    D = lm.model.config.hidden_size
    if args.dim is not None and args.dim > D:
        raise UsageError(f"dim must be in [1, {D}] for {args.model}, got {args.dim}")
    cal = windows(lm.tokenizer, cal_text, args.cal_seqlen, args.cal_samples)
    ev = windows(lm.tokenizer, eval_text, args.seqlen, args.windows)
    if cal.shape[0] < 1 or ev.shape[0] < 1:
        raise UsageError("the corpus is too short for one calibration and one eval window at these lengths")
    res = verify(lm.model, cal, ev, args.dim, tokenizer=lm.tokenizer, batch_size=args.batch_size,
                 progress=not args.no_progress)
    res["model"] = args.model
    keys = ("architecture", "dtype", "dim", "invariance_max_abs_diff", "emulation_max_abs_diff",
            "max_abs_logit", "tolerance", "ok")
    print_table([(k, res[k]) for k in keys], stream=sys.stderr if args.json == "-" else sys.stdout)
    write_json(args.json, res)
    return 0 if res["ok"] else 1


# ---------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slicedim", description="Representation dimension vs. structurally pruned LLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_eval_parser(sub)
    add_slice_parser(sub)
    add_sweep_parser(sub)
    add_predict_parser(sub)
    add_flow_parser(sub)
    add_verify_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `slicedim`: run one subcommand; a UsageError becomes `error: ...` and exit status 2."""

    hf_logging.disable_progress_bar()  # transformers' weight-loading bars: noise next to our own progress
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
