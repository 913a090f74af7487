"""Predict a sliced model's perplexity and accuracy WITHOUT running any sliced or projected model.

`registry.py` holds the predictor registry and the dense metrics, `statistics.py` the registry of the dense
statistics predictors read; each predictor module registers itself (and its statistic) on import
(`paper.py`: the paper's relations; `fisher.py`: the Fisher-increment family and its tables; `jvp.py`: a
dense JVP carried by a power law; `ours.py`: the headline of interleaved sweeps, over one of those).
`rows.py` turns the registry into table rows.
"""

from __future__ import annotations

from . import paper  # noqa: F401  (registers `paper` first: every table starts with the paper's law)

# isort: split
from . import fisher  # noqa: F401  (registers the Fisher family and its tables)

# isort: split
from . import jvp  # noqa: F401  (registers `jvp_power` and its statistic, the dense JVP)

# isort: split
from . import ours  # noqa: F401  (registers `ours`, the headline of interleaved sweeps, over its base)
from .rows import Anchoring, Stats, anchoring, curve_dims, curves, predict, predict_point

__all__ = ["Anchoring", "Stats", "anchoring", "curve_dims", "curves", "predict", "predict_point"]
