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
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from slicedim_lab.errors import UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting, so every error is one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


# ---------------------------------------------------------------------------------------------------------
# Shared option groups and helpers


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--model, --device, --dtype, --json: the options every model-running subcommand takes."""
    from slicedim_lab.models import ALIASES, DEFAULT_MODEL, DTYPES

    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"alias ({', '.join(ALIASES)}), local HF folder or hub id (default: {DEFAULT_MODEL})",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto = cuda when available)")
    p.add_argument("--dtype", default=None, help=f"{' | '.join(DTYPES)} (default float32; half needs CUDA)")
    p.add_argument("--json", default=None, metavar="PATH|-", help="write JSON to PATH (- = stdout)")


def add_corpus_options(p: argparse.ArgumentParser, split: str = "eval") -> None:
    """--corpus, --split, --seqlen, --max-windows, --batch-size: which windows to run and how many at once."""
    from slicedim_lab.corpus import CORPORA

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
    """Write payload as JSON to stdout ("-") or atomically to a file (temp file + rename); None: nothing."""
    if path is None:
        return
    text = json.dumps(payload, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    from slicedim_lab.corpus import load_text, windows
    from slicedim_lab.metrics import evaluate
    from slicedim_lab.models import load_model

    if args.seqlen < 2:
        raise UsageError(f"seqlen must be at least 2 (one input and one predicted token), got {args.seqlen}")
    check_positive("max-windows", args.max_windows)
    check_positive("batch-size", args.batch_size)
    text = load_text(args.corpus, args.split)
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
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
# slicedim sweep / slicedim predict (options and logic live in slicedim_lab/sweep.py)


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    from slicedim_lab.sweep import add_options

    p = sub.add_parser("sweep", help="slice at each d', measure, predict beside; resumable")
    add_common_options(p)
    add_options(p, sweep=True)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run or resume a sweep into --out: results.csv/json one row per point, then report.html."""
    from slicedim_lab.report import error_summary
    from slicedim_lab.sweep import config_from_args, run_sweep

    cfg, sparsities, dims = config_from_args(args)
    log = (lambda m: print(m, file=sys.stderr)) if args.json == "-" else print
    rows = run_sweep(cfg, args.out, sparsities=sparsities, dims=dims, fresh=args.fresh,
                     batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
                     report=not args.no_report, log=log)
    summary = error_summary(rows)
    for s in summary:
        log(f"{s['name']:<18} mean |err| {s['mean_abs_err']:6.1f}%   max |err| {s['max_abs_err']:6.1f}%")
    write_json(args.json, {"out": str(args.out), "rows": rows, "errors": summary})
    return 0


def add_predict_parser(sub: argparse._SubParsersAction) -> None:
    from slicedim_lab.sweep import add_options

    p = sub.add_parser("predict", help="predicted PPL/accuracy at each d' (dense model only)")
    add_common_options(p)
    add_options(p, sweep=False)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predictions only: dense metrics + dense-only Fisher tables; never slices or projects the model."""
    from slicedim_lab.sweep import config_from_args, predict_only

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slicedim", description="Representation dimension vs. structurally pruned LLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_eval_parser(sub)
    add_sweep_parser(sub)
    add_predict_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `slicedim`: run one subcommand; a UsageError becomes `error: ...` and exit status 2."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
