"""A predictor with a dense statistic of its own, written as a newcomer would: this one module and its two
registrations (`register`), with no edit anywhere else. `tests/unit/sweep/test_open_registry.py` registers
it from the test tree and finds it in results.csv, report.html, `slicedim predict --json` and the widget.

The statistic `toy_energy` is the mean squared norm of the dense residual at every site (from the shared
dense pass: trace(H_s) / tokens); the predictor `toy` charges ΔL(d') = 0.05 · s · ln(1 + mean energy),
s = 1 − d'/D, and states a ±20 % interval on ΔL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from slicedim_lab.predict.registry import DenseMetrics, Prediction, Predictor, from_dloss, register_predictor
from slicedim_lab.predict.statistics import DenseInputs, Statistic, register_statistic

BUILT: list[int] = []  # one entry per build: a saved copy is reloaded, not built again


@dataclass
class ToyEnergy:
    hidden: int
    energy: list[float]

    def save(self, path: Path) -> None:
        torch.save(asdict(self), path)

    @classmethod
    def load(cls, path: Path) -> ToyEnergy:
        return cls(**torch.load(path))


def build(inp: DenseInputs, widths: Sequence[int]) -> ToyEnergy:
    del widths
    m = inp.moments()
    BUILT.append(len(m.second))
    return ToyEnergy(inp.hidden, [float(torch.trace(h)) / m.tokens for h in m.second])


def predict_toy(dense: DenseMetrics, dim: int, stat: ToyEnergy) -> Prediction:
    dl = 0.05 * (1 - dim / dense.hidden) * math.log1p(sum(stat.energy) / len(stat.energy))
    pr = from_dloss(dense, dl)
    pr.ppl_lo, pr.ppl_hi = dense.ppl * math.exp(0.8 * dl), dense.ppl * math.exp(1.2 * dl)
    return pr


def register() -> None:
    register_statistic(Statistic("toy_energy", build, ToyEnergy.save, ToyEnergy.load,
                                 "mean squared residual norm per site (a test statistic)"))
    register_predictor(Predictor("toy", predict_toy, "0.05·s·ln(1 + mean energy) (a test predictor)",
                                 needs="toy_energy", shown=True, interval=True))
