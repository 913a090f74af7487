"""`slicedim flow` (activation flow at one d') and `slicedim verify` (installation and adapter check)."""

from __future__ import annotations

import argparse
import json
import sys

from .. import files
from ..core.emulate import verify
from ..core.sites import lens_sites
from ..errors import UsageError
from ..flow.session import FlowSession, format_layers
from ..load import models
from ..load.corpus import CORPUS_HELP, load_text, windows
from .common import add_common_options, check_positive, print_table, write_json


def add_flow_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="activation flow under slicing at one d' (TransformerLens), per layer")
    add_common_options(p)
    p.add_argument("--dim", type=int, required=True, help="kept width d' (the head's input stays full)")
    p.add_argument("--basis", default="interleaved", choices=("interleaved", "dense"),
                   help="interleaved: SliceGPT's calibration (default); dense: the dense model's PCA")
    p.add_argument("--corpus", default="python-docs", help=CORPUS_HELP)
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
    p.add_argument("--corpus", default="python-docs", help=CORPUS_HELP)
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
