"""`slicedim sweep` (measured and predicted over d') and `slicedim predict` (predictions only)."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from .. import schema
from ..errors import UsageError
from ..predict.registry import get_predictor, headline, predictors
from ..sweep.executors import PointsFailed
from ..sweep.folder import read_rows
from ..sweep.options import add_options, config_from_args, executor_from_args
from ..sweep.planned import plan_line, run_planned_sweep
from ..sweep.runner import predict_only, run_sweep
from ..sweep.target import parse_target, run_target, target_lines
from ..viz.report import headline_text
from ..viz.tables import error_summary
from .common import add_common_options, write_json


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser("sweep", help="slice at each d', measure, predict beside; resumable")
    add_common_options(p)
    add_options(p, sweep=True)
    add_predictors_option(p, default="all; for --target the headline alone")
    p.set_defaults(func=cmd_sweep)


def add_predictors_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--predictors", default=None,
                   help="comma-separated predictors, or 'all': only the dense statistics they read are "
                        f"built (default: {default}; a predictor whose statistic is built comes too, and "
                        "one that reads none, e.g. paper; the semi-interleaved Fisher tables cost a pass per "
                        "width)")


def chosen_predictors(text: str | None, default: list[str] | None) -> list[str] | None:
    """`--predictors` as registered names (None: every predictor); an unknown name fails in one line."""
    if text is None:
        return default
    if text.strip() == "all":
        return None
    return [get_predictor(n.strip()).name for n in text.split(",") if n.strip()]


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run or resume a sweep into --out: results.csv/json one row per point, then report.html. Points that
    fail for good (or Ctrl-C) end it with one line and the finished rows kept: rerun to resume."""

    cfg, sparsities, dims = config_from_args(args)
    if args.plan and getattr(args, "target", None) is not None:
        raise UsageError("--plan measures planned widths beside --sparsities or --dims, not a --target")
    target = parse_target(args.target) if args.target is not None else None
    if args.plan and args.predictors is not None:
        raise UsageError("--predictors chooses the predictions of a sweep or a --target search, not --plan")
    executor = executor_from_args(args)
    log = (lambda m: print(m, file=sys.stderr)) if args.json == "-" else print
    if target is not None:  # the headline alone unless --predictors adds others ('all': every one)
        chosen = chosen_predictors(args.predictors, [])
        return _target(args, cfg, target, executor, log,
                       [p.name for p in predictors()] if chosen is None else chosen)
    chosen = chosen_predictors(args.predictors, None)
    sweep = run_planned_sweep if args.plan else partial(run_sweep, predictors=chosen)
    try:
        rows = sweep(cfg, args.out, sparsities=sparsities, dims=dims, fresh=args.fresh,
                     batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
                     report=not args.no_report, log=log, executor=executor)
    except PointsFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: the finished rows are in {args.out}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    summary = error_summary(rows)
    log("all predictors and estimators over the points with s > 0:")
    for s in summary:
        log(f"  {s['name']:<18} mean |err| {s['mean_abs_err']:6.1f}%   max |err| {s['max_abs_err']:6.1f}%")
    log(headline_text(rows, cfg.basis))
    if args.plan:
        log("planned vs uniform widths at the same parameter count:")
        for r in rows:
            if r.get(schema.planned(schema.measured("ppl"))) is not None:
                log("  " + plan_line(r))
    write_json(args.json, {"out": str(args.out), "rows": rows, "errors": summary})
    return 0


def _target(args: argparse.Namespace, cfg, target, executor, log, chosen: list[str]) -> int:
    """`slicedim sweep --target`: the narrowest width meeting the target in at most three measured widths."""
    try:
        res = run_target(cfg, args.out, target, fresh=args.fresh, batch_size=args.batch_size,
                         device=args.device, progress=not args.no_progress, report=not args.no_report,
                         log=log, executor=executor, predictors=chosen)
    except PointsFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: the finished rows are in {args.out}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    per_point = [r["seconds"] for r in read_rows(Path(args.out)) if r["dim"] < res.hidden]
    for line in target_lines(res, sum(per_point) / len(per_point) if per_point else None):
        log(line)
    write_json(args.json, {"out": str(args.out), "target": res.target.text, "threshold": res.bound,
                           "answer": res.answer, "exact": res.exact, "measured": res.measured,
                           "new": res.new, "seconds": res.seconds, "curve": res.curve})
    return 0 if res.answer is not None else 1


def add_predict_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser("predict", help="predicted PPL/accuracy at each d' (dense model only)")
    add_common_options(p)
    add_options(p, sweep=False)
    add_predictors_option(p, default="the basis's headline")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predictions only: dense metrics + the dense-only statistics; never slices or projects the model."""

    cfg, sparsities, dims = config_from_args(args)
    chosen = chosen_predictors(args.predictors, [headline(cfg.basis)])
    res = predict_only(cfg, sparsities=sparsities, dims=dims, cache=args.cache, batch_size=args.batch_size,
                       device=args.device, progress=not args.no_progress, predictors=chosen)
    stream = sys.stderr if args.json == "-" else sys.stdout
    d = res["dense"]
    mc = f"  mc_acc {d['mc_acc']:.4f}" if d["mc_acc"] is not None else ""
    print(f"dense: ppl {d['ppl']:.4f}  acc {d['acc']:.4f}{mc}  (D={res['hidden']}; {res['seconds']:.0f}s)",
          file=stream)
    names = schema.predictors_in(res["predictions"][0])
    print(f"{'dim':>5} {'s':>5}  " + "  ".join(f"{n:>25}" for n in names) + "   (ppl / acc)", file=stream)
    for r in res["predictions"]:
        cells = "  ".join(f"{r[schema.pred('ppl', n)]:>16.3f} / {r[schema.pred('acc', n)]:.4f}"
                          for n in names)
        print(f"{r['dim']:>5} {r['sparsity']:>5.2f}  {cells}", file=stream)
    write_json(args.json, res)
    return 0
