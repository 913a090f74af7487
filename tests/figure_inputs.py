"""Hand-made tidy inputs for the figure and widget tests: small Fisher tables, dense metrics and measured rows
(no model anywhere)."""

from __future__ import annotations

import torch

from slicedim_lab import schema
from slicedim_lab.predict import predict_point
from slicedim_lab.predict.fisher import FisherTables
from slicedim_lab.predict.registry import DenseMetrics

D, S, W = 64, 5, 3  # width, sites (two layers), gradient windows


def make_tables(semi_dims: list[int]) -> FisherTables:
    """Tables whose increments fall smoothly with the width (zero at full width)."""
    d = torch.arange(D + 1, dtype=torch.float64)
    drop = ((D - d) / D) ** 2  # 1 at d=0, 0 at d=D
    diag = torch.stack([(s + 1) * 40.0 * drop for s in range(S)])
    cross = torch.stack([(w + 1) * 60.0 * drop for w in range(W)])
    energy = torch.stack([1 - 0.5 * drop ** (s + 1) for s in range(S)])
    semi_diag = torch.stack([diag[:, k] * 0.8 for k in semi_dims]) if semi_dims else None
    semi_cross = torch.stack([cross[:, k] * 0.9 for k in semi_dims], 1) if semi_dims else None
    return FisherTables(hidden=D, diag=diag, cross=cross, full=cross * 1.1, tokens=1000, energy=energy,
                        cal_nll=2.5, semi_dims=list(semi_dims), semi_diag=semi_diag, semi_cross=semi_cross)


def measured_row(dense: DenseMetrics, tables: FisherTables, dim: int, ppl: float, acc: float) -> dict:
    """A results row as the sweep writes it: measured values, every prediction and its signed error."""
    row = {"dim": dim, "sparsity": 1 - dim / D, schema.measured("ppl"): ppl, schema.measured("acc"): acc}
    row.update(predict_point(dense, dim, {"fisher": tables}, measured=row))
    row[schema.est("cal_ratio")], row[schema.est_err("cal_ratio")] = ppl * 1.05, 5.0
    return row
