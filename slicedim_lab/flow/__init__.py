"""Activation flow under slicing: where along depth, and through which linear maps, a kept width d' hurts.

Everything is a tidy pandas table (one row per site x metric, plus per-map rows) with the columns of
`tables.COLUMNS`: `basis, dim, site, hook, layer, kind, map, role, metric, value`, the site columns being
`core.sites.Site.row()`. Modules, in the order a report is built: `tables` (schema, spectra, per-layer
roll-up), `lens` (the logit lens), `attribution` (the prediction decomposition), `maps` (linear maps),
`passes` (the dense and the emulated sliced pass), `session` (`FlowSession`, `FlowReport`), `text`.
"""

from .attribution import attribute_batch, decomposition_summary, gauss_legendre, prediction_decomposition
from .lens import Head, LensCache
from .maps import MapDecomposition, linear_maps, map_weight
from .passes import DenseEval
from .session import FlowReport, FlowSession
from .tables import COLUMNS, per_layer, retained_at, site_row, spectrum_table
from .text import LAYER_COLUMNS, format_layers

__all__ = [
    "COLUMNS", "DenseEval", "FlowReport", "FlowSession", "Head", "LAYER_COLUMNS", "LensCache",
    "MapDecomposition", "attribute_batch", "decomposition_summary", "format_layers", "gauss_legendre",
    "linear_maps", "map_weight", "per_layer", "prediction_decomposition", "retained_at", "site_row",
    "spectrum_table",
]
