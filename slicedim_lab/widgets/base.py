"""What every explorer shares: the `Explorer` record, callback counting, live figures redrawn from pure
ones, saving a notebook run, and showing an explorer headless or live.

Every builder returns an `Explorer`: display it (or `.box`), read its `.controls` and `.figures` by name,
and `.calls`, the number of callback runs so far. Setting a control's value from code
(`ex.controls["dim"].value = 432`) or clicking a button from code (`ex.controls["measure"].click()`) runs
the same callbacks a user's drag or click does — that is how the notebooks run headless
(`INTERACTIVE=False`), and `save_run` writes their figures (HTML) and a JSON record of what ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import display
from plotly.offline import get_plotlyjs

from ..core.widths import dim_for_sparsity
from ..files import write_text
from ..viz.static import box_marker

KEEP = ("visible", "uid")  # trace properties the front end owns (a legend click) and a redraw keeps


@dataclass
class Explorer:
    """A widget box with named controls, plotly FigureWidgets and output widgets; `calls` counts callbacks."""

    box: W.Box
    controls: dict[str, W.Widget]
    figures: dict[str, go.FigureWidget]
    outputs: dict[str, W.Widget] = field(default_factory=dict)
    calls: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.box._repr_mimebundle_(**kwargs)

    def save(self, folder: str | Path, prefix: str) -> list[Path]:
        """Write every figure to `folder/<prefix>_<name>.html` (plotly.js once per folder, offline)."""
        return save_figures(folder, {f"{prefix}_{k}": v for k, v in self.figures.items()})


def counted(ex: Explorer, update: Callable[..., None]) -> Callable[..., None]:
    """Wrap a callback so that every run is counted in `ex.calls`."""

    def run(*args: Any) -> None:
        update(*args)
        ex.calls += 1

    return run


def live(fig: go.Figure | None = None) -> go.FigureWidget:
    """A FigureWidget showing a pure figure (empty until the first `redraw` without one)."""
    return go.FigureWidget(fig)


def redraw(widget: go.FigureWidget, fig: go.Figure) -> None:
    """Give `widget` the data and layout of the pure figure `fig`, in one front-end update. Traces that
    match by position, type and name are updated in place and keep the visibility the user chose in the
    legend; otherwise the traces are replaced. Properties `fig` lacks are cleared, not left stale."""
    new_layout = fig.layout.to_plotly_json()
    same = len(widget.data) == len(fig.data) and all(
        a.type == b.type and a.name == b.name for a, b in zip(widget.data, fig.data))
    with widget.batch_update():
        if same:
            for old, new in zip(widget.data, fig.data):
                props = new.to_plotly_json()
                props.pop("type", None)
                for k in set(old.to_plotly_json()) - set(props) - {"type", *KEEP}:
                    old[k] = None
                for k in KEEP:
                    props.pop(k, None)
                old.update(props, overwrite=True)
        else:
            widget.data = []
            widget.add_traces(list(fig.data))
        for k in set(widget.layout.to_plotly_json()) - set(new_layout):
            widget.layout[k] = None
        widget.layout.update(new_layout, overwrite=True)


def save_figures(folder: str | Path, figures: dict[str, go.Figure]) -> list[Path]:
    """Write each figure to `folder/<name>.html`; plotly.js goes once into `folder/plotly.min.js`."""
    folder = Path(folder)
    if not (folder / "plotly.min.js").exists():
        write_text(folder / "plotly.min.js", get_plotlyjs())
    paths = []
    for name, fig in figures.items():
        path = write_text(folder / f"{name}.html", go.Figure(fig).to_html(include_plotlyjs="directory"))
        paths.append(path)
    return paths


def save_run(
    folder: str | Path,
    notebook: str,
    explorers: dict[str, Explorer] | None = None,
    figures: dict[str, go.Figure] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save every explorer's and figure's plots under `folder` and write `folder/<notebook>.json`:
    `{"notebook", "callbacks" (sum of the explorers' `calls`), "figures" (file names), **extra}`."""
    explorers, figures = explorers or {}, figures or {}
    paths = save_figures(folder, {f"{notebook}_{k}": v for k, v in figures.items()})
    for name, ex in explorers.items():
        paths += ex.save(folder, f"{notebook}_{name}")
    record = {
        "notebook": notebook,
        "callbacks": sum(ex.calls for ex in explorers.values()),
        "callbacks_by_explorer": {k: ex.calls for k, ex in explorers.items()},
        "figures": [p.name for p in paths],
        **(extra or {}),
    }
    write_text(Path(folder) / f"{notebook}.json", json.dumps(record, indent=1, default=str))
    return record


def show(obj: Any, interactive: bool) -> None:
    """Display a widget or figure in a live notebook; headless (`interactive=False`) show plain figures
    (so the executed notebook still holds static plots) and, after them, a marker naming the explorer's
    widget box (`viz.static.box_marker`: a static page shows the box there, at its saved state)."""
    if isinstance(obj, Explorer):
        if interactive:
            display(obj.box)
        else:
            for fig in obj.figures.values():
                display(go.Figure(fig))
            display(box_marker(obj.box.model_id, len(obj.figures)), raw=True)
    else:
        display(obj)


def default_width(hidden: int, sparsity: float = 0.25) -> int:
    """An explorer's initial d' when none is given: `sparsity`'s width for a model of width `hidden`."""
    return dim_for_sparsity(sparsity, hidden)


def slider(value: int, lo: int, hi: int, description: str = "d'", step: int = 1, continuous: bool = False
           ) -> W.IntSlider:
    """A wide integer slider (value clamped into [lo, hi])."""
    return W.IntSlider(value=min(max(value, lo), hi), min=lo, max=hi, step=step, description=description,
                       continuous_update=continuous, layout=W.Layout(width="70%"))
