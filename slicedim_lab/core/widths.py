"""Kept widths: SliceGPT's sparsity-to-width rule, per-site width lists and schedules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..errors import UsageError
from .sites import is_parallel, model_sites, n_sites


def dim_for_sparsity(sparsity: float, hidden: int, round_interval: int = 8) -> int:
    """d' = int((1 - s) * D), rounded down to a multiple of `round_interval` (SliceGPT's rule)."""
    if not 0 <= sparsity < 1:
        raise UsageError(f"sparsity must be in [0, 1), got {sparsity}")
    if round_interval < 1:
        raise UsageError(f"round interval must be >= 1, got {round_interval}")
    d = int((1 - sparsity) * hidden)
    d -= d % round_interval
    if d < 1:
        raise UsageError(
            f"sparsity {sparsity} leaves no dimension of {hidden} at round interval {round_interval}"
        )
    return d


def site_dims(
    n_layers: int,
    hidden: int,
    *,
    sparsity: float | None = None,
    dim: int | None = None,
    schedule: list[int] | None = None,
    round_interval: int = 8,
    slice_head: bool = False,
    parallel: bool = False,
) -> list[int]:
    """Kept width of every site (2L+1 of them; L+1 for `parallel` layers, see `core.sites`). With
    `sparsity` or `dim` the last site keeps the full width (the LM head reads it) unless `slice_head`; a
    `schedule` gives every site's width explicitly."""
    if sum(x is not None for x in (sparsity, dim, schedule)) != 1:
        raise UsageError("give exactly one of sparsity, dim or schedule")
    if schedule is not None:
        if len(schedule) != n_sites(n_layers, parallel):
            how = f"{n_layers} parallel layers + 1" if parallel else f"2 x {n_layers} layers + 1"
            raise UsageError(
                f"a schedule needs {n_sites(n_layers, parallel)} widths ({how}), got {len(schedule)}"
            )
        dims = [int(d) for d in schedule]
    else:
        d = dim_for_sparsity(sparsity, hidden, round_interval) if sparsity is not None else int(dim)
        dims = [d] * n_sites(n_layers, parallel)
        if not slice_head:
            dims[-1] = hidden
    bad = [d for d in dims if not 1 <= d <= hidden]
    if bad:
        raise UsageError(f"kept widths must be in [1, {hidden}], got {bad[0]}")
    return dims


def model_site_dims(model: nn.Module, **kwargs: Any) -> list[int]:
    """`site_dims` for a loaded model: its depth, width and site list (sequential or parallel layers)."""
    cfg, parallel = model.config, is_parallel(model_sites(model))
    return site_dims(cfg.num_hidden_layers, cfg.hidden_size, parallel=parallel, **kwargs)


def load_schedule(spec: str) -> list[int]:
    """A schedule from a JSON file (a list, or {"site_dims": [...]}) or a comma-separated list."""
    if os.path.exists(spec):
        data = json.loads(Path(spec).read_text())
        data = data["site_dims"] if isinstance(data, dict) else data
    else:
        try:
            data = [int(x) for x in spec.split(",") if x.strip()]
        except ValueError:
            raise UsageError(
                f"schedule {spec!r} is neither a JSON file nor a comma-separated list of ints"
            ) from None
    if not isinstance(data, list) or not all(isinstance(x, int) for x in data):
        raise UsageError(f"schedule {spec!r} must be a list of integers")
    return data
