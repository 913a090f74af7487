"""Command-line options of `slicedim sweep` and `slicedim predict`, turned into a `SweepConfig`."""

from __future__ import annotations

import torch

from ..errors import UsageError
from ..load.corpus import CORPUS_HELP
from ..load.models import resolve_dtype
from ..schema import BASES
from .config import SweepConfig
from .executors import MAX_RETRIES, Executor, RayExecutor, require_ray

EXECUTORS = ("in-process", "ray")
_RAY_ONLY = ("ray_address", "cpus_per_point", "gpus_per_point", "max_retries")


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
    p.add_argument("--corpus", default="python-docs", help=CORPUS_HELP)
    pts = p.add_mutually_exclusive_group(required=True)
    pts.add_argument("--sparsities", help="comma-separated sparsities, e.g. 0,0.1,0.2,0.3,0.4,0.5")
    pts.add_argument("--dims", help="comma-separated kept widths d'")
    if sweep:
        pts.add_argument("--target", metavar="EXPR",
                         help="find the narrowest width meeting EXPR in at most 3 measured widths: ppl<=V, "
                              "acc>=V or mc_acc>=V, a trailing x for a multiple of the dense value "
                              "(e.g. ppl<=1.25x)")
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
        p.add_argument("--plan", action="store_true",
                       help="also measure, at each point, the per-site widths planned from the dense model "
                            "for uniform slicing's parameter count (plan_* columns; docs/planning.md)")
        add_executor_options(p)
    else:
        p.add_argument("--cache", default=None,
                       help="sweep folder with the same settings: reuse or store its dense metrics, tables")


def add_executor_options(p) -> None:
    """Where `slicedim sweep` measures its points: in this process, or each width a Ray task."""
    g = p.add_argument_group("where the points are measured (docs/ray.md)")
    g.add_argument("--executor", default="in-process", choices=EXECUTORS,
                   help="in-process (default) | ray: every width a Ray task (pip install -e '.[ray]')")
    g.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="the Ray cluster to join (default: start a local one on this machine's CPUs/GPUs)")
    g.add_argument("--cpus-per-point", type=float, default=None, metavar="N",
                   help="CPUs (and torch threads) each point's task holds (default 1)")
    g.add_argument("--gpus-per-point", type=float, default=None, metavar="N",
                   help="GPUs each point's task holds; > 0 measures on CUDA (default 0: on CPU)")
    g.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help=f"retries of a point whose worker dies (default {MAX_RETRIES})")


def executor_from_args(args) -> Executor | None:
    """The executor `--executor` asks for (None: in-process), checked before any model loads; without Ray
    installed, `--executor ray` is a one-line error that says how to install it."""
    given = [f"--{k.replace('_', '-')}" for k in _RAY_ONLY if getattr(args, k, None) is not None]
    if args.executor != "ray":
        if given:
            raise UsageError(f"{given[0]} needs --executor ray")
        return None
    require_ray()
    if not args.gpus_per_point:  # the workers measure on the CPU: their dtype must run there
        try:
            resolve_dtype(args.dtype, torch.device("cpu"))
        except UsageError as e:
            raise UsageError(f"{e} (the workers measure on the CPU without --gpus-per-point)") from None
    return RayExecutor(address=args.ray_address,
                       cpus_per_point=1 if args.cpus_per_point is None else args.cpus_per_point,
                       gpus_per_point=0 if args.gpus_per_point is None else args.gpus_per_point,
                       max_retries=MAX_RETRIES if args.max_retries is None else args.max_retries)


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
