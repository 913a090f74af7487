"""Dense statistics: what a predictor reads beside `DenseMetrics`, declared once next to the predictor.

A predictor that needs more than the dense metrics names a statistic (`Predictor.needs`). The statistic's
declaration says how it is built from the dense model and its windows (`DenseInputs`), how it is saved and
loaded (a sweep folder keeps it as `<name>.pt`), which prediction settings invalidate a saved copy, for which
sweep bases it is made, at which widths a built copy answers, and what it adds to a measured row or to the
report. The sweep runner, its folder and the report loop over `statistics()` and never name one, so a
predictor with a statistic of its own is one module and its two registrations.

Every statistic is dense-only: built from the unmodified dense model, it never runs a sliced or projected one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn
from jaxtyping import Int
from torch import Tensor

from ..core.pca import SitePCA
from ..schema import BASES
from .moments import DenseMoments, dense_moments
from .registry import add_named, get_named


@dataclass
class DenseInputs:
    """What a statistic is built from: the dense model, its calibration, held-out gradient and eval windows,
    the sweep's settings (`SweepConfig` as a dict: `slice_head`, `seed`, `grad_heldout`, …), the dense PCA of
    a dense-basis sweep, and one dense pass over the calibration windows that every statistic shares."""

    model: nn.Module
    cal_ids: Int[Tensor, "n pos"]
    eval_ids: Int[Tensor, "m pos"]
    grad_ids: Int[Tensor, "g pos"]
    grad_heldout: bool  # whether `grad_ids` are disjoint from `cal_ids`
    settings: Mapping[str, Any]
    pcas: list[SitePCA] | None = None
    progress: bool = True
    log: Callable[[str], None] = print
    _moments: DenseMoments | None = field(default=None, repr=False)

    @property
    def hidden(self) -> int:
        return self.model.config.hidden_size

    def moments(self) -> DenseMoments:
        """The shared dense pass (second and cross moments, calibration loss), made on first use only."""
        if self._moments is None:
            self._moments = dense_moments(self.model, self.cal_ids, progress=self.progress)
        return self._moments


def _every_width(stat: Any) -> None:
    del stat


@dataclass(frozen=True)
class Statistic:
    """A registered dense statistic.

    `build(inputs, widths)`: the statistic from the dense model (`widths`: the kept widths below D the sweep
    will ask about, for a statistic that answers at named widths only). `save(obj, path)` / `load(path)`:
    its file. `summary`: one line for the report. `depends_on`: the prediction settings (`SweepConfig` fields
    that change no measured value) it reads — changing one drops a saved copy; measurement settings discard
    everything anyway. `bases`: the sweep bases it is made for. `widths(obj)`: the widths a built copy
    answers at (None: every width); a copy missing a requested width is rebuilt with both. `diagnostics(obj,
    dim)`: columns it adds to a measured row (`diagnostic_columns` names them for the CSV). `sites(obj,
    dims)`: per-site rows (`site`, `label`, `dim`, `dloss`, `discarded`) that the report draws under
    `sites_title`. Built objects carry `hidden`, the width D they are for."""

    name: str
    build: Callable[[DenseInputs, Sequence[int]], Any]
    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]
    summary: str
    depends_on: tuple[str, ...] = ()
    bases: tuple[str, ...] = BASES
    widths: Callable[[Any], Collection[int] | None] = _every_width
    diagnostics: Callable[[Any, int], dict[str, float]] | None = None
    diagnostic_columns: tuple[str, ...] = ()
    sites: Callable[[Any, Sequence[int]], list[dict]] | None = None
    sites_title: str = ""

    @property
    def file(self) -> str:
        """Its file in a sweep folder."""
        return f"{self.name}.pt"

    def missing(self, stat: Any, widths: Collection[int]) -> list[int]:
        """The widths of `widths` a built copy does not answer at (none for an every-width statistic)."""
        have = self.widths(stat)
        return [] if have is None else sorted(set(widths) - set(have))


_STATISTICS: dict[str, Statistic] = {}


def register_statistic(stat: Statistic) -> Statistic:
    """Add a statistic (names are unique)."""
    return add_named(_STATISTICS, stat, "statistic")


def get_statistic(name: str) -> Statistic:
    return get_named(_STATISTICS, name, "statistic")


def statistics(basis: str | None = None) -> list[Statistic]:
    """Every registered statistic in registration order (only those made for `basis`, if given)."""
    return [s for s in _STATISTICS.values() if basis is None or basis in s.bases]
