"""Measuring one kept width: the one per-point function of every executor.

`measure_point` (settings + windows + dense bases + model + d' → metrics) is a pure function of what the
driver hands it, so the in-process executor and Ray workers (`sweep/executors.py`) give the same rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch.nn as nn

from ..core.pca import SitePCA
from ..core.replay import ProjectedModel, dense_bases
from ..core.size import count_params
from ..core.slicing import slice_model
from ..core.widths import model_site_dims
from .config import SweepConfig
from .inputs import Inputs, measure, sliced_params


@dataclass
class PointWork:
    """What measuring any width needs besides the model, made once by the driver (and shipped to workers:
    `inp` then holds no model)."""

    cfg: SweepConfig
    inp: Inputs
    pcas: list[SitePCA] | None  # the dense bases of a `dense`-basis sweep
    batch_size: int
    progress: bool


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
    t0 = time.perf_counter()
    cfg, inp, bs, bar = work.cfg, replace(work.inp, model=model), work.batch_size, work.progress
    sd = model_site_dims(model, dim=dim, slice_head=cfg.slice_head)
    if cfg.basis == "interleaved":
        res = slice_model(model, inp.cal_ids, sd, batch_size=bs, progress=bar)
        meas, params, cal_loss = measure(res.model, inp, cfg, bs, bar), count_params(res.model), res.cal_loss
    else:
        projected = ProjectedModel(model, dense_bases(work.pcas, sd))
        meas, params, cal_loss = measure(projected, inp, cfg, bs, bar), sliced_params(model, sd), None
    return Measured(dim, meas, params, cal_loss, time.perf_counter() - t0)
