"""The static pages (`viz.static`, `viz.pages`) from a hand-made executed notebook (no kernel): plotly
outputs become figure divs, the builder's cell is folded into the widget state (each FigureWidget an HTML
widget holding its last figure), a headless explorer's plain plots become its box again, the page loads
nothing from a CDN, the index lists what each notebook teaches."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from slicedim_lab.viz import pages
from slicedim_lab.viz import static as st

FIG = {"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4], "name": "</script><b>"}], "layout": {}}


def executed() -> nbformat.NotebookNode:
    """What papermill returns for a notebook with a plot, a widget box (a slider and a FigureWidget) and the
    builder's last cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 09 · A title\n\n**What it shows.** Things.\n\n"
                                      "**What you will learn.** More.\n\n**How long.** A while."),
        nbformat.v4.new_code_cell("fig", outputs=[nbformat.v4.new_output(
            "display_data", data={st.PLOTLY_MIME: FIG, "text/plain": "Figure"})]),
        nbformat.v4.new_code_cell("box", outputs=[nbformat.v4.new_output("display_data", data={
            st.VIEW_MIME: {"model_id": "box", "version_major": 2, "version_minor": 0}})]),
        nbformat.v4.new_code_cell(st.DUMP_CODE, metadata={"tags": [st.DUMP_TAG]}, outputs=[
            nbformat.v4.new_output("display_data", data={st.FIGURES_MIME: {"fw": FIG, "gone": FIG}})]),
    ]
    model = {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0"}
    nb.metadata["widgets"] = {st.STATE_MIME: {"version_major": 2, "version_minor": 0, "state": {
        "box": {**model, "model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_fw"]}},
        "s": {**model, "model_name": "IntSliderModel", "state": {"value": 432, "description": "d'"}},
        "fw": {"model_name": "AnyModel", "model_module": "anywidget", "model_module_version": "~0.11.*",
               "state": {"_esm": "x" * 1000, "_widget_data": []}},
    }}}
    return nb


def test_figure_html_is_safe_json() -> None:
    div = st.figure_html(FIG)
    blob = div.split("<script type='application/json'>")[1].rsplit("</script>", 1)[0]
    assert "</script>" not in blob and json.loads(blob)["data"][0]["name"] == "</script><b>"


def test_static_notebook() -> None:
    nb, count = st.static_notebook(executed())
    assert len(nb["cells"]) == 3 and count == 2  # the displayed plot and the figure widget in the box
    plot = nb["cells"][1]["outputs"][0]["data"]
    assert list(plot) == ["text/html"] and "sdl-figure" in plot["text/html"]
    state = nb["metadata"]["widgets"][st.STATE_MIME]["state"]
    assert state["fw"]["model_name"] == "HTMLModel" and "sdl-figure" in state["fw"]["state"]["value"]
    assert state[state["fw"]["state"]["layout"].removeprefix("IPY_MODEL_")]["model_name"] == "LayoutModel"
    assert state["s"]["state"]["value"] == 432 and "gone" not in state  # other models as they were
    assert "_esm" not in json.dumps(state)  # the 5 MB widget bundle does not travel


def test_a_headless_explorer_becomes_its_box_again() -> None:
    nb = executed()
    plain = [nbformat.v4.new_output("display_data", data={st.PLOTLY_MIME: FIG}) for _ in range(2)]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi"), *plain,
                           nbformat.v4.new_output("display_data", data=st.box_marker("box", 2))]
    static, count = st.static_notebook(nb)
    outs = static["cells"][2]["outputs"]
    assert [o["output_type"] for o in outs] == ["stream", "display_data"]
    assert outs[1]["data"][st.VIEW_MIME]["model_id"] == "box" and count == 2


def test_page_loads_nothing_remote() -> None:
    nb, _ = st.static_notebook(executed())
    page = pages.page_html(nb, "09 · A title")
    for asset in ("_static/plotly.min.js", "_static/pages.js", "_static/widgets/embed.js"):
        assert f'<script src="{asset}"></script>' in page
    assert "cdn" not in page.lower() and 'src="http' not in page and "require.min.js" not in page
    assert st.STATE_MIME in page and st.VIEW_MIME in page and "A static copy" in page


def test_intro_and_index() -> None:
    title, what = pages.intro(executed())
    assert title == "09 · A title" and what.startswith("**What it shows.**") and "How long" not in what
    index = pages.index_html([{"page": "09_x.html", "title": title, "intro": what, "seconds": 12.3,
                               "figures": 2}], report=True, note="Built now.")
    assert "href='09_x.html'" in index and "report.html" in index and "12 s, 2 figures" in index


def test_assets_need_the_widget_manager(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="html-manager"):
        pages.copy_assets(tmp_path / "site", tmp_path / "missing")
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ("embed.js", "embed.js.map", "a1b2.woff2", "embed-amd.js"):
        (dist / name).write_text("x")
    pages.copy_assets(tmp_path / "site", dist)
    static = tmp_path / "site" / "_static"
    assert sorted(p.name for p in (static / "widgets").iterdir()) == ["a1b2.woff2", "embed.js"]
    assert (static / "plotly.min.js").stat().st_size > 1_000_000
    assert "sdl-figure" in (static / "pages.js").read_text()
