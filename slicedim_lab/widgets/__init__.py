"""Notebook widgets: ipywidgets controls wired to the pure figures of `viz`, over the package's own
computations. The notebooks import this package as `sw` and call only the names below."""

from ..eval.compare import compare_logits, model_logits, rmsnorm_invariance
from ..eval.generate import generate_text
from ..load.models import keep_first_layers
from ..predict.law import implied_kappa
from ..viz.theory import paper_law_figure
from .base import Explorer, redraw, save_figures, save_run, show
from .compare import ModelTables, comparison_table, model_tables, two_models_explorer
from .flow import ReportCache, flow_explorer
from .maps import layer_maps_table, map_layer, map_singular_values, map_table, maps_explorer
from .plan import notebook_planner, plan_explorer, plan_table
from .quickstart import compare_table, generation_explorer, metrics_figure
from .spectrum import spectrum_explorer
from .sweep import SweepBench, sweep_explorer, sweep_table
from .theory import prediction_html, theory_explorer
from .tokens import tokens_explorer

keep_layers = keep_first_layers

__all__ = [
    "Explorer", "ModelTables", "ReportCache", "SweepBench", "compare_logits", "compare_table",
    "comparison_table", "flow_explorer", "generate_text", "generation_explorer", "implied_kappa",
    "keep_first_layers", "keep_layers", "layer_maps_table", "map_layer", "map_singular_values", "map_table",
    "maps_explorer", "metrics_figure", "model_logits", "model_tables", "notebook_planner", "paper_law_figure",
    "plan_explorer", "plan_table", "prediction_html",
    "redraw", "rmsnorm_invariance", "save_figures", "save_run", "show", "spectrum_explorer", "sweep_explorer",
    "sweep_table", "theory_explorer", "tokens_explorer", "two_models_explorer",
]
