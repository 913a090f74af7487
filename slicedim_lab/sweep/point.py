"""Measuring one kept width: slice then measure, and the one per-point function of every executor.

`slice_and_measure` is the one "slice then measure" of the package: `slicedim slice`, the quickstart
notebook and every interleaved sweep point call it. `measure_point` (settings + windows + dense bases +
model + d' → metrics) is a pure function of what the driver hands it, so the in-process executor and Ray
workers (`sweep/executors.py`) give the same rows. Slicing is reached only through `core.slicing.slice_model`
(looked up on that module at call time: one seam for a test to forbid it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn as nn
from jaxtyping import Int
from torch import Tensor

from ..core import slicing
from ..core.memory import device_peak_bytes, reset_device_peak
from ..core.pca import SitePCA
from ..core.replay import ProjectedModel, dense_bases
from ..core.size import count_params
from ..core.widths import model_site_dims
from .config import SweepConfig
from .inputs import Inputs, measure, sliced_params


@dataclass
class Sliced:
    """A model sliced then measured: the slice (`core.slicing.SliceResult`), what `measure` returned for the
    sliced model, and the cost of calibrate + slice (seconds; peak device bytes, None off CUDA)."""

    result: slicing.SliceResult
    measured: Any
    seconds_slice: float
    peak_device: int | None


def slice_and_measure(model: nn.Module, cal_ids: Int[Tensor, "n pos"], dims: list[int],
                      measure_fn: Callable[[nn.Module], Any], *, batch_size: int = 4,
                      device: str | torch.device | None = None, progress: bool = True,
                      **options: Any) -> Sliced:
    """SliceGPT `model` to the per-site widths `dims` (interleaved calibration on `cal_ids`; the layers visit
    `device` one at a time, default the model's own; `options` go to `core.slicing.slice_model`: `inplace`,
    `untie_head`, `final_orientation`, `seed`), move the sliced model to that device and measure it with
    `measure_fn`."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    reset_device_peak(dev)
    t0 = time.perf_counter()
    res = slicing.slice_model(model, cal_ids, dims, batch_size=batch_size, device=device, progress=progress,
                              **options)
    seconds, peak = time.perf_counter() - t0, device_peak_bytes(dev)
    res.model.to(dev)
    return Sliced(res, measure_fn(res.model), seconds, peak)


@dataclass
class PointWork:
    """What measuring any width needs besides the model, made once by the driver (and shipped to workers:
    `inp` then holds no model)."""

    cfg: SweepConfig
    inp: Inputs
    pcas: list[SitePCA] | None  # the dense bases of a `dense`-basis sweep
    batch_size: int
    progress: bool
    schedules: dict[int, list[int]] = field(default_factory=dict)  # `sweep --plan`: uniform d' → plan


@dataclass
class Measured:
    """One width's measured metrics, parameter count, sliced calibration loss (interleaved) and wall time."""

    dim: int
    meas: dict
    params: int
    cal_loss: float | None
    seconds: float


def measure_point(work: PointWork, model: nn.Module, dim: int) -> Measured:
    """Slice `model` to `dim` (interleaved SliceGPT) or project it on the dense bases, and measure it; the
    model itself is left untouched. The one per-point function of every executor."""
    return _measure_dims(work, model, dim, model_site_dims(model, dim=dim, slice_head=work.cfg.slice_head))


def measure_planned(work: PointWork, model: nn.Module, dim: int) -> Measured:
    """`sweep --plan`: slice (or project) `model` to the schedule planned for uniform width `dim`'s parameter
    count (`work.schedules[dim]`) and measure it like any point (its result keeps `dim` as its key)."""
    return _measure_dims(work, model, dim, work.schedules[dim])


def _measure_dims(work: PointWork, model: nn.Module, dim: int, sd: list[int]) -> Measured:
    """Slice (interleaved) or project (dense bases) `model` to the per-site widths `sd` and measure it."""
    t0 = time.perf_counter()
    cfg, inp, bs, bar = work.cfg, replace(work.inp, model=model), work.batch_size, work.progress
    if cfg.basis == "interleaved":
        done = slice_and_measure(model, inp.cal_ids, sd, lambda m: measure(m, inp, cfg, bs, bar),
                                 batch_size=bs, progress=bar)
        res = done.result
        meas, params, cal_loss = done.measured, count_params(res.model), res.cal_loss
    else:
        projected = ProjectedModel(model, dense_bases(work.pcas, sd))
        meas, params, cal_loss = measure(projected, inp, cfg, bs, bar), sliced_params(model, sd), None
    return Measured(dim, meas, params, cal_loss, time.perf_counter() - t0)
