"""Kept widths: SliceGPT's sparsity-to-width rule, per-site width lists and schedules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..adapters import ADAPTERS
from ..errors import UsageError
from .sites import is_parallel, model_sites, n_sites

MIN_SCHEDULE_WIDTH = 8  # the narrowest width a schedule may give a site


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
        check_schedule(schedule, n_layers, hidden, parallel)
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


def check_schedule(schedule: list[int], n_layers: int, hidden: int, parallel: bool = False) -> None:
    """One-line UsageError unless `schedule` has one width per site, each in [MIN_SCHEDULE_WIDTH, D]."""
    if len(schedule) != n_sites(n_layers, parallel):
        how = f"{n_layers} parallel layers + 1" if parallel else f"2 x {n_layers} layers + 1"
        raise UsageError(f"a schedule needs {n_sites(n_layers, parallel)} widths ({how}), "
                         f"got {len(schedule)}")
    bad = [d for d in schedule if not MIN_SCHEDULE_WIDTH <= d <= hidden]
    if bad:
        raise UsageError(f"schedule widths must be in [{MIN_SCHEDULE_WIDTH}, {hidden}], got {bad[0]}")


def check_schedule_config(schedule: list[int], config: Any) -> None:
    """`check_schedule` against a model's config alone (before any weight is read); a config whose
    architecture no adapter describes is left to the loader's one-line error."""
    arch = (getattr(config, "architectures", None) or [None])[0]
    if arch not in ADAPTERS:
        return
    parallel = bool(ADAPTERS[arch].resolve(config, arch).parallel)
    check_schedule(schedule, config.num_hidden_layers, config.hidden_size, parallel)


def model_site_dims(model: nn.Module, **kwargs: Any) -> list[int]:
    """`site_dims` for a loaded model: its depth, width and site list (sequential or parallel layers)."""
    cfg, parallel = model.config, is_parallel(model_sites(model))
    return site_dims(cfg.num_hidden_layers, cfg.hidden_size, parallel=parallel, **kwargs)


def load_schedule(spec: str) -> list[int]:
    """A schedule from a JSON file (a list, or {"site_dims": [...]}) or a comma-separated list."""
    if os.path.exists(spec):
        try:
            data = json.loads(Path(spec).read_text())
        except (ValueError, UnicodeDecodeError):
            raise UsageError(f"schedule file {spec} is not JSON") from None
        data = data.get("site_dims") if isinstance(data, dict) else data
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
