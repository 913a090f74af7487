"""Command-line options of `slicedim sweep` and `slicedim predict`, turned into a `SweepConfig`."""

from __future__ import annotations

from ..errors import UsageError
from ..schema import BASES
from .config import SweepConfig


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
    p.add_argument("--anchor-dims", default=None,
                   help="comma-separated widths to measure for real and anchor the headline prediction on "
                        "(columns *_anchored; default: none)")
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
                      mc_items=args.mc_items, seed=args.seed, dtype=args.dtype,
                      anchor_dims=_list(args.anchor_dims, int, "--anchor-dims") or [])
    if args.batch_size < 1:
        raise UsageError(f"batch-size must be at least 1, got {args.batch_size}")
    cfg.check()
    sp, dims = _list(args.sparsities, float, "--sparsities"), _list(args.dims, int, "--dims")
    for s in sp or []:
        if not 0 <= s < 1:
            raise UsageError(f"sparsities must be in [0, 1), got {s}")
    return cfg, sp, dims
