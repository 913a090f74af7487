"""Option groups and output helpers every subcommand shares."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import files
from ..errors import UsageError
from ..load import models
from ..load.corpus import CORPUS_HELP


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting, so every error is one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--model, --device, --dtype, --json: the options every model-running subcommand takes."""
    aliases, dtypes = ", ".join(models.ALIASES), " | ".join(models.DTYPES)
    p.add_argument("--model", default=models.DEFAULT_MODEL,
                   help=f"alias ({aliases}), local HF folder or hub id (default: {models.DEFAULT_MODEL})")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto = cuda when available)")
    p.add_argument("--dtype", default=None, help=f"{dtypes} (default float32; float16 needs CUDA)")
    p.add_argument("--json", default=None, metavar="PATH|-", help="write JSON to PATH (- = stdout)")


def add_corpus_options(p: argparse.ArgumentParser, split: str = "eval") -> None:
    """--corpus, --split, --seqlen, --max-windows, --batch-size: which windows to run and how many at once."""

    p.add_argument("--corpus", default="python-docs", help=CORPUS_HELP)
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
