"""An executed notebook made static (pure functions on its JSON, no kernel): what a page of `viz.pages` shows.

- a displayed plotly figure becomes a `div.sdl-figure` holding its JSON (`figure_html`), which the page's
  `pages.js` draws;
- a live `FigureWidget` inside a widget box becomes an HTML widget holding its figure as it was at the end of
  the run: a last cell (`DUMP_CODE`, tagged `DUMP_TAG`, appended before execution) reads every FigureWidget
  from the kernel; `static_notebook` folds it into the stored widget state and drops the cell;
- a headless run (`widgets.show(explorer, interactive=False)`) displays an explorer's figures as plain
  plots followed by a `BOX_MIME` marker naming its widget box: the marker and those plots become the box's
  widget view again, so the page shows the sliders at their saved state beside the figures they drew.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

FIGURES_MIME = "application/vnd.slicedim.figures+json"
BOX_MIME = "application/vnd.slicedim.box+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"
DUMP_TAG = "slicedim-pages-figures"
DUMP_CODE = f"""import json as _json
import ipywidgets as _W
import plotly.graph_objects as _go
from IPython.display import display as _display
_live = [w for w in list(_W.widgets.widget._instances.values()) if isinstance(w, _go.FigureWidget)]
_figures = {{w.model_id: _json.loads(_go.Figure(w).to_json()) for w in _live}}
_display({{{FIGURES_MIME!r}: _figures}}, raw=True)"""


def box_marker(model_id: str, figures: int) -> dict:
    """The mimebundle a headless `show` displays after an explorer's `figures` plain plots: its box's id."""
    return {BOX_MIME: {"model_id": model_id, "figures": figures}, "text/plain": ""}


def figure_html(figure: dict) -> str:
    """A plotly figure (its JSON: data, layout) as a `div.sdl-figure` that `pages.js` draws."""
    blob = json.dumps({"data": figure.get("data", []), "layout": figure.get("layout", {})})
    safe = blob.replace("</", "<\\/")  # a JSON string may hold "</script>"
    return f"<div class='sdl-figure'><script type='application/json'>{safe}</script></div>"


def html_widget_state(model_id: str, value: str) -> dict[str, dict]:
    """Widget-state entries of an HTML widget showing `value` under `model_id` (with its own layout and
    style models, named after it)."""
    base = {"_view_count": None, "_view_module_version": "2.0.0", "_model_module_version": "2.0.0"}
    controls = {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0"}
    layout, style = f"{model_id}-layout", f"{model_id}-style"
    return {
        model_id: {**controls, "model_name": "HTMLModel", "state": {
            **base, "_model_module": "@jupyter-widgets/controls", "_model_name": "HTMLModel",
            "_view_module": "@jupyter-widgets/controls", "_view_name": "HTMLView", "_dom_classes": [],
            "description": "", "description_allow_html": False, "layout": f"IPY_MODEL_{layout}",
            "style": f"IPY_MODEL_{style}", "placeholder": "\u200b", "tabbable": None, "tooltip": None,
            "value": value}},
        layout: {"model_name": "LayoutModel", "model_module": "@jupyter-widgets/base",
                 "model_module_version": "2.0.0", "state": {
                     **base, "_model_module": "@jupyter-widgets/base", "_model_name": "LayoutModel",
                     "_view_module": "@jupyter-widgets/base", "_view_name": "LayoutView"}},
        style: {**controls, "model_name": "HTMLStyleModel", "state": {
            **base, "_model_module": "@jupyter-widgets/controls", "_model_name": "HTMLStyleModel",
            "_view_module": "@jupyter-widgets/base", "_view_name": "StyleView", "description_width": "",
            "background": None, "font_size": None, "text_color": None}},
    }


def static_widget_state(state: dict, figures: dict[str, dict]) -> dict:
    """The stored widget state with every FigureWidget (`figures`: model id → its final figure) turned into
    an HTML widget that holds the figure (`figure_html`); every other model as it was."""
    models = dict(state["state"])
    for model_id, fig in figures.items():
        if model_id in models:
            models.update(html_widget_state(model_id, figure_html(fig)))
    return {**state, "state": models}


def view_output(model_id: str) -> dict:
    """A display output showing the widget `model_id`."""
    return {"output_type": "display_data", "metadata": {}, "data": {
        VIEW_MIME: {"model_id": model_id, "version_major": 2, "version_minor": 0}, "text/plain": "widget"}}


def boxes_restored(outputs: list[dict]) -> list[dict]:
    """A cell's outputs with each `BOX_MIME` marker and the plain plots shown just before it replaced by the
    view of the widget box it names."""
    out: list[dict] = []
    for o in outputs:
        box = o.get("data", {}).get(BOX_MIME)
        if box is None:
            out.append(o)
            continue
        for _ in range(box["figures"]):
            if out and PLOTLY_MIME in out[-1].get("data", {}):
                out.pop()
        out.append(view_output(box["model_id"]))
    return out


def displayed_widgets(cells: Sequence[dict]) -> set[str]:
    """The model ids of the widgets the cells' outputs display."""
    return {o["data"][VIEW_MIME]["model_id"] for c in cells for o in c.get("outputs", [])
            if VIEW_MIME in o.get("data", {})}


def shown_figures(models: dict, roots: set[str], figures: set[str]) -> set[str]:
    """The figure widgets reachable from the displayed widget boxes `roots` (through `children`)."""
    seen, todo = set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen or m not in models:
            continue
        seen.add(m)
        for ref in models[m]["state"].get("children", []) or []:
            todo.append(str(ref).removeprefix("IPY_MODEL_"))
    return seen & figures


def static_notebook(nb: dict) -> tuple[dict, int]:
    """The executed notebook (its JSON) ready for a page: the builder's last cell removed (its figures folded
    into the widget state), headless explorers' boxes restored (`boxes_restored`), every plotly output a
    `figure_html` div. Returns it and the number of figures the page will draw."""
    nb = json.loads(json.dumps(nb))
    figures: dict[str, dict] = {}
    cells = []
    for cell in nb["cells"]:
        if DUMP_TAG in cell.get("metadata", {}).get("tags", []):
            for out in cell.get("outputs", []):
                figures.update(out.get("data", {}).get(FIGURES_MIME, {}))
            continue
        if "outputs" in cell:
            cell["outputs"] = boxes_restored(cell["outputs"])
        cells.append(cell)
    count = 0
    for cell in cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME in data:
                out["data"] = {"text/html": figure_html(data[PLOTLY_MIME])}
                count += 1
    nb["cells"] = cells
    widgets = nb.get("metadata", {}).get("widgets", {})
    if STATE_MIME in widgets:
        widgets[STATE_MIME] = static_widget_state(widgets[STATE_MIME], figures)
        count += len(shown_figures(widgets[STATE_MIME]["state"], displayed_widgets(cells), set(figures)))
    return nb, count
