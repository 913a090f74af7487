"""The predictor registry: a predictor is one function and one `register_predictor` call.

Every consumer — `predict_point`, the sweep's columns, `slicedim predict`, the report and the widgets —
iterates `predictors()`, so a new predictor needs no other edit. A predictor sees only what the dense model
gives: `DenseMetrics`, and the dense statistic it names in `needs` (declared with `register_statistic`,
`predict/statistics.py`, which says how the sweep builds, saves and reloads it); it never runs a sliced or
projected model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from ..errors import UsageError
from .anchor import Anchor


@dataclass
class DenseMetrics:
    """What the predictors know of the dense model: its measured eval PPL and top-1 accuracy, its
    multiple-choice accuracy and that task's chance level (None if not measured), the width D, and its loss
    on the calibration windows."""

    ppl: float
    acc: float
    hidden: int
    mc_acc: float | None = None
    cal_nll: float | None = None
    mc_chance: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prediction:
    """One predictor's answer at one width: perplexity, next-token and multiple-choice accuracy, and the
    predicted loss increase in nats (None for predictors that do not model the loss)."""

    ppl: float
    acc: float
    mc_acc: float | None = None
    dloss: float | None = None
    ppl_lo: float | None = None  # the 90% interval (`eval.uncertainty.LEVEL`) of `ppl`, if the predictor
    ppl_hi: float | None = None  # states one


PredictFn = Callable[[DenseMetrics, int, Any], "Prediction | None"]
# (statistic, dense, d', anchors, anchored PPL) -> the 90% interval of the anchored prediction at d'
AnchoredIntervalFn = Callable[[Any, DenseMetrics, int, list[Anchor], float], tuple[float, float]]


@dataclass(frozen=True)
class Predictor:
    """A registered predictor. `fn(dense, dim, stat)` returns its `Prediction` at kept width `dim`, or None
    where it has no answer (e.g. a width its statistic was not built for). `needs`: the name of the dense
    statistic it reads (a registered `Statistic`; `fn` gets that object as `stat`, and the predictor is
    skipped where it was not made), None for a predictor of the dense metrics alone. `shown`: drawn when a
    figure opens (others wait in the legend). `headline_for`: the sweep bases for which it is the headline
    predictor, set beside the paper's law and corrected by the anchor widths. `interval`: its predictions
    carry a 90% interval (`Prediction.ppl_lo/ppl_hi`); `anchored_interval`: the interval of its anchored
    prediction (None: the anchored prediction states none)."""

    name: str
    fn: PredictFn
    summary: str
    needs: str | None = None
    shown: bool = False
    headline_for: tuple[str, ...] = ()
    interval: bool = False
    anchored_interval: AnchoredIntervalFn | None = None

    @property
    def needs_tables(self) -> bool:
        return self.needs is not None


_REGISTRY: dict[str, Predictor] = {}
T = TypeVar("T")


def add_named(table: dict[str, T], item: T, kind: str) -> T:
    """Add `item` to a registry under its unique `name` (the predictors' here, the statistics' too)."""
    name = item.name  # type: ignore[attr-defined]
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered")
    table[name] = item
    return item


def get_named(table: dict[str, T], name: str, kind: str) -> T:
    """A registered item by name; an unknown name is a one-line UsageError listing the known ones."""
    if name not in table:
        raise UsageError(f"unknown {kind} {name!r}; choose one of: {', '.join(table)}")
    return table[name]


def register_predictor(predictor: Predictor) -> Predictor:
    """Add a predictor (names are unique)."""
    return add_named(_REGISTRY, predictor, "predictor")


def get_predictor(name: str) -> Predictor:
    return get_named(_REGISTRY, name, "predictor")


def predictors() -> list[Predictor]:
    """Every registered predictor, in registration order."""
    return list(_REGISTRY.values())


def predictor_names() -> list[str]:
    return list(_REGISTRY)


def shown_names() -> list[str]:
    """The predictors a figure draws when it opens."""
    return [p.name for p in _REGISTRY.values() if p.shown]


def headline(basis: str) -> str:
    """The name of the headline predictor of a sweep in `basis` (interleaved or dense): the one set beside
    the paper's law in every table and corrected by the anchor widths."""
    for p in _REGISTRY.values():
        if basis in p.headline_for:
            return p.name
    raise UsageError(f"no headline predictor for basis {basis!r}")


# ----------------------------------------------------------------------------- accuracy from perplexity


def coupled_acc(acc0: float, ppl0: float, ppl: float) -> float:
    """The paper's accuracy–perplexity coupling applied to any predicted PPL: acc_0^(ln PPL / ln PPL_0)."""
    return acc0 ** (math.log(ppl) / math.log(ppl0))


def scaled_mc_acc(mc0: float, chance: float, acc0: float, acc: float) -> float:
    """Multiple-choice accuracy whose part above chance shrinks like next-token accuracy:
    chance + (mc_0 − chance) · acc / acc_0 (mc_0 when the dense model never predicts a token right)."""
    return chance + (mc0 - chance) * acc / acc0 if acc0 > 0 else mc0


def from_dloss(dense: DenseMetrics, dl: float) -> Prediction:
    """A predicted loss increase turned into every metric: PPL = PPL_0 · exp(ΔL), next-token accuracy by the
    paper's coupling, multiple-choice accuracy by `scaled_mc_acc` (by the coupling if chance is unknown)."""
    ppl = dense.ppl * math.exp(dl)
    acc = coupled_acc(dense.acc, dense.ppl, ppl)
    mc = None
    if dense.mc_acc is not None and dense.mc_chance is not None:
        mc = scaled_mc_acc(dense.mc_acc, dense.mc_chance, dense.acc, acc)
    elif dense.mc_acc is not None:
        mc = coupled_acc(dense.mc_acc, dense.ppl, ppl)
    return Prediction(ppl=ppl, acc=acc, mc_acc=mc, dloss=dl)
