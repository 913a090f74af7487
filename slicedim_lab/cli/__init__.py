"""The `slicedim` command line: one `add_<name>_parser` and one `cmd_<name>` function per subcommand.

Bad input anywhere raises `UsageError`; `main` prints it as one line on stderr and exits 2, before anything
is written (JSON outputs are written to a temp file and renamed into place only at the end).

To add a subcommand: write `add_foo_parser(sub)` (use `common.add_common_options` / `add_corpus_options`,
set `func=cmd_foo` with `set_defaults`) and `cmd_foo(args) -> int` in the module of its kind (`measure`,
`sweeps`, `plan`, `analyse`, `reproduce`), and call `add_foo_parser` in `build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from transformers.utils import logging as hf_logging

from ..errors import UsageError
from .analyse import add_flow_parser, add_verify_parser
from .common import _Parser
from .measure import add_eval_parser, add_slice_parser
from .plan import add_plan_parser
from .reproduce import add_reproduce_parser
from .sweeps import add_predict_parser, add_sweep_parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slicedim", description="Representation dimension vs. structurally pruned LLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_eval_parser(sub)
    add_slice_parser(sub)
    add_sweep_parser(sub)
    add_predict_parser(sub)
    add_plan_parser(sub)
    add_flow_parser(sub)
    add_verify_parser(sub)
    add_reproduce_parser(sub)
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
