"""Pages that open without a kernel: every notebook executed, then written as static HTML (`make pages`).

`build_site(out, notebooks)` runs each notebook with papermill (its default sizes unless `params` say
otherwise, `INTERACTIVE=True`, so its widget boxes are displayed and their state is stored in the executed
notebook, and the builder's last cell `static.DUMP_CODE` appended), then `write_site` writes
`out/NN_name.html` per notebook (`static.static_notebook`, then nbconvert's `lab` template without its
requirejs, MathJax and mermaid loaders: `PAGE_TEMPLATE`), `out/index.html` and, from notebook 03's sweep
folder, `out/report.html` (`viz.report`). `write_site` also takes notebooks executed elsewhere with that last
cell, e.g. headless (the tests build their site from their headless runs). Everything renders offline from
disk: plotly.js comes from the plotly package (`_static/plotly.min.js`), the widget manager from the npm
package `@jupyter-widgets/html-manager` (its standalone `embed.js` and fonts, copied to `_static/widgets/`;
`make pages` installs it under `notebooks/pages/`), and `_static/pages.js` draws the figures: no CDN anywhere.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import nbformat
import papermill
from nbconvert import HTMLExporter
from plotly.offline import get_plotlyjs

from ..files import write_json, write_text
from .report import write_report
from .static import DUMP_CODE, DUMP_TAG, static_notebook

WIDGETS_PACKAGE = "@jupyter-widgets/html-manager"
DEFAULT_WIDGETS_DIST = Path("notebooks/pages/node_modules") / WIDGETS_PACKAGE / "dist"
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style>.sdl-banner {background: #fff8e1; border: 1px solid #f0c36d; padding: 6px 12px; margin: 8px 0;
  font-family: sans-serif; font-size: 13px} .sdl-figure {min-height: 40px}</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
<div class="sdl-banner">A static copy of this notebook, run with the parameters below: the sliders show their
saved state beside the figures they drew. Open the notebook in JupyterLab to move them
(<a href="index.html">all notebooks</a>).</div>
{%- endblock body_header -%}
{%- block footer_js -%}
<script src="_static/plotly.min.js"></script>
<script src="_static/pages.js"></script>
<script src="_static/widgets/embed.js"></script>
{%- endblock footer_js -%}
"""
PAGES_JS = """// Draw every static figure of the page (div.sdl-figure holding its plotly JSON), also those the
// widget manager renders later (they arrive inside HTML widgets). window.sdlPages counts them for tests.
(function () {
  window.sdlPages = {figures: 0, drawn: 0, errors: []};
  function draw(el) {
    if (el.dataset.sdlDrawn) return;
    el.dataset.sdlDrawn = "1";
    window.sdlPages.figures += 1;
    try {
      var spec = JSON.parse(el.querySelector("script[type='application/json']").textContent);
      var div = document.createElement("div");
      el.appendChild(div);
      Plotly.newPlot(div, spec.data || [], spec.layout || {}, {displaylogo: false, responsive: true})
        .then(function () { window.sdlPages.drawn += 1; });
    } catch (e) {
      window.sdlPages.errors.push(String(e));
    }
  }
  function scan(node) {
    if (node.nodeType !== 1) return;
    if (node.matches(".sdl-figure")) draw(node);
    node.querySelectorAll(".sdl-figure").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", function () {
    scan(document.body);
    new MutationObserver(function (changes) {
      changes.forEach(function (c) { c.addedNodes.forEach(scan); });
    }).observe(document.body, {childList: true, subtree: true});
  });
})();
"""


# ----------------------------------------------------------------------------- pages and the site


def page_html(nb: dict, title: str) -> str:
    """A static notebook (`static.static_notebook`) as one HTML page (nbconvert's `lab` template,
    `PAGE_TEMPLATE`)."""
    exporter = HTMLExporter(template_name="lab", template_file="page.html.j2",
                            extra_loaders=[jinja2.DictLoader({"page.html.j2": PAGE_TEMPLATE})])
    node = nbformat.from_dict(nb)
    node.metadata["title"] = title
    body, _ = exporter.from_notebook_node(node)
    return body


def with_dump_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` with the builder's last cell (`DUMP_CODE`) appended."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells.append(nbformat.v4.new_code_cell(DUMP_CODE, metadata={"tags": [DUMP_TAG]}))
    return nb


def execute(notebook: Path, out: Path, params: dict[str, Any], cwd: Path, timeout: int | None = None) -> None:
    """Run `notebook` with `params` (papermill) in `cwd`, widget state stored, plotly figures as their JSON
    (`PLOTLY_RENDERER=plotly_mimetype` for the kernel); the executed notebook is also written to `out`."""
    src = out.with_suffix(".input.ipynb")
    nbformat.write(with_dump_cell(nbformat.read(notebook, as_version=4)), src)
    old = os.environ.get("PLOTLY_RENDERER")
    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
    try:
        papermill.execute_notebook(str(src), str(out), parameters=params, kernel_name="python3",
                                   cwd=str(cwd), progress_bar=False, execution_timeout=timeout)
    finally:
        if old is None:
            os.environ.pop("PLOTLY_RENDERER", None)
        else:
            os.environ["PLOTLY_RENDERER"] = old
        src.unlink(missing_ok=True)


def intro(nb: dict) -> tuple[str, str]:
    """(title, the first cell's "What it shows" and "What you will learn" paragraphs as plain text)."""
    cells = nb.get("cells", [])
    first = "".join(cells[0]["source"]) if cells else ""
    lines = first.splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), "notebook")
    keep, on = [], False
    for ln in lines:
        if ln.startswith("**What"):
            on = True
        elif ln.startswith("**How long"):
            on = False
        if on:
            keep.append(ln)
    return title, "\n".join(keep).strip()


def copy_assets(out: Path, widgets_dist: Path) -> None:
    """`_static/`: plotly.js, the widget manager (embed.js and its fonts) and pages.js."""
    static = out / "_static"
    if not (widgets_dist / "embed.js").exists():
        raise FileNotFoundError(f"{widgets_dist / 'embed.js'} is missing: install {WIDGETS_PACKAGE} "
                                "(make pages does: npm install --prefix notebooks/pages)")
    write_text(static / "plotly.min.js", get_plotlyjs())
    write_text(static / "pages.js", PAGES_JS)
    target = static / "widgets"
    target.mkdir(parents=True, exist_ok=True)
    for f in widgets_dist.iterdir():
        if f.is_file() and not f.name.endswith((".map", ".LICENSE.txt")) and f.name != "embed-amd.js" \
                and not f.name.startswith("libembed"):
            shutil.copy(f, target / f.name)


def index_html(entries: Sequence[dict], report: bool, note: str) -> str:
    """The site's index: every notebook page with its title, what it shows and teaches, and its run time."""
    items = "".join(
        f"<li><h2><a href='{html.escape(e['page'])}'>{html.escape(e['title'])}</a></h2>"
        f"<p class='what'>{html.escape(e['intro']).replace(chr(10), '<br>')}</p>"
        f"<p class='meta'>run in {e['seconds']:.0f} s, {e['figures']} figures</p></li>" for e in entries)
    rep = ("<p>The sweep of notebook 03 as a report: <a href='report.html'>report.html</a>.</p>"
           if report else "")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>slicedim-lab notebooks</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:auto;padding:0 12px}}
ul{{list-style:none;padding:0}} li{{border-bottom:1px solid #ddd}}
.meta{{color:#777;font-size:12px}} h2{{font-size:18px}}</style></head>
<body><h1>slicedim-lab: the notebooks, as static pages</h1>
<p>Each page is a notebook run from top to bottom: its figures, tables and widgets as the run left them. They
open from disk with no kernel and no network. {html.escape(note)}</p>{rep}<ul>{items}</ul></body></html>"""


def site_entry(out: Path, executed: Path) -> dict:
    """Write the page of one executed notebook (`executed`, papermill's output: its parameters and duration
    are in its metadata) to `out`; copy report.html from its sweep folder if it names one (notebook 03's
    record, `OUT_DIR/<name>.json`). Returns its entry of the index."""
    nb = nbformat.read(executed, as_version=4)  # sources and texts joined into strings
    name = executed.stem
    static, count = static_notebook(nb)
    title, what = intro(nb)
    write_text(out / f"{name}.html", page_html(static, title))
    meta = nb.get("metadata", {}).get("papermill", {})
    out_dir = Path(meta.get("parameters", {}).get("OUT_DIR", "out"))
    record = (out_dir if out_dir.is_absolute() else executed.parent / out_dir) / f"{name}.json"
    sweep = json.loads(record.read_text()).get("sweep_dir") if record.exists() else None
    report = bool(sweep) and (Path(sweep) / "results.json").exists()
    if report:
        shutil.copy(write_report(sweep), out / "report.html")
    return {"name": name, "page": f"{name}.html", "title": title, "intro": what, "figures": count,
            "seconds": float(meta.get("duration") or 0.0), "report": report}


def write_site(out: str | Path, executed: Sequence[Path], widgets_dist: Path = DEFAULT_WIDGETS_DIST) -> dict:
    """The site of executed notebooks: `_static/`, a page each, index.html and report.html (from notebook
    03's sweep folder). Returns the build record, also written to `out/site.json`."""
    out = Path(out).resolve()
    copy_assets(out, Path(widgets_dist))
    entries = [site_entry(out, Path(e)) for e in executed]
    report = any(e["report"] for e in entries)
    note = f"Built {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} CPU cores."
    write_text(out / "index.html", index_html(entries, report, note))
    site = {"pages": entries, "report": report, "built": note}
    write_json(out / "site.json", site)
    return site


def build_site(out: str | Path, notebooks: Sequence[Path], params: dict[str, Any] | None = None,
               widgets_dist: Path = DEFAULT_WIDGETS_DIST, timeout: int | None = None,
               per_notebook: dict[str, dict] | None = None, log=print) -> dict:
    """Execute every notebook (INTERACTIVE=True; `params` for all, `per_notebook[name]` for one) under
    `out/_runs/<name>/`, then `write_site`."""
    runs = Path(out).resolve() / "_runs"
    executed = []
    for nb_path in notebooks:
        name, work = nb_path.stem, runs / nb_path.stem
        work.mkdir(parents=True, exist_ok=True)
        p = {"INTERACTIVE": True, "OUT_DIR": str(work / "out"), **(params or {}),
             **(per_notebook or {}).get(name, {})}
        log(f"running {name} …")
        t0 = time.perf_counter()
        execute(nb_path, work / f"{name}.ipynb", p, work, timeout)
        log(f"{name}: {time.perf_counter() - t0:.0f} s")
        executed.append(work / f"{name}.ipynb")
    return write_site(out, executed, widgets_dist)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slicedim_lab.viz.pages",
                                 description="Execute the notebooks; write static pages that open offline.")
    ap.add_argument("--out", default="site", help="the site folder (default: site)")
    ap.add_argument("--notebooks", default="notebooks", help="the notebooks' folder (NN_name.ipynb)")
    ap.add_argument("--only", default="", help="comma-separated notebook names (default: all)")
    ap.add_argument("--params", default="{}", help="JSON: parameters given to every notebook")
    ap.add_argument("--per-notebook", default="{}", help="JSON: {name: parameters} for single notebooks")
    ap.add_argument("--executed", default="",
                    help="comma-separated notebooks already executed (with the builder's last cell): pages "
                         "of these, nothing run")
    ap.add_argument("--widgets-dist", default=str(DEFAULT_WIDGETS_DIST),
                    help=f"the dist/ folder of the npm package {WIDGETS_PACKAGE}")
    ap.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    args = ap.parse_args(argv)
    if args.executed:
        site = write_site(args.out, [Path(p) for p in args.executed.split(",")], Path(args.widgets_dist))
    else:
        names = [n for n in args.only.split(",") if n]
        found = Path(args.notebooks).glob("[0-9][0-9]_*.ipynb")
        nbs = sorted(p for p in found if not names or p.stem in names)
        if not nbs:
            print(f"error: no notebook found in {args.notebooks}", file=sys.stderr)
            return 2
        site = build_site(args.out, nbs, json.loads(args.params), Path(args.widgets_dist), args.timeout,
                          json.loads(args.per_notebook))
    print(f"site: {Path(args.out).resolve() / 'index.html'} ({len(site['pages'])} pages"
          f"{', report.html' if site['report'] else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
