"""Write the notebooks in this folder from the cell lists below (run: `python notebooks/_build.py`).

The notebooks are thin shells over `slicedim_lab`: every computation and every widget is a package
function (most widgets live in `slicedim_lab/widgets.py`). Each notebook opens with what it shows and how
long it takes, has a `parameters` cell (papermill tag) with MODEL, DEVICE, INTERACTIVE, OUT_DIR and sizes,
and with INTERACTIVE = False drives its widgets from code and saves its figures and a JSON record to OUT_DIR.
Outputs are never written here; the built files hold no outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

COMMON_PARAMS = '''MODEL = "smollm2-135m-instruct"  # alias, local Hugging Face folder or hub id
DEVICE = "auto"  # auto | cpu | cuda
INTERACTIVE = True  # False: drive the widgets from code and save the figures (headless / CI)
OUT_DIR = "runs/notebooks"  # figures (HTML) and a JSON record of the run go here
CORPUS = "python-docs"  # python-docs (offline) | wikitext2 | path to a UTF-8 text file
BATCH_SIZE = 4'''

HEADLESS_NOTE = """*Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
saves every figure to `OUT_DIR`."""


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(src: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(src.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def params(extra: str) -> nbformat.NotebookNode:
    return code(COMMON_PARAMS + "\n" + extra.strip("\n"), tags=["parameters"])


# ----------------------------------------------------------------------------- 00 quickstart

QUICKSTART = [
    md("""
# 00 · Quickstart: slice SmolLM2 to a smaller representation dimension

**What it shows.** Load the embedded default model offline (SmolLM2-135M-Instruct, width D = 576, 30 layers),
measure its perplexity and next-token accuracy, slice it with SliceGPT to one kept width d' (every residual
site keeps d' PCA directions; the LM head keeps full width), measure again, look at the eigen-spectra the
slicer cut, and let the dense and the sliced model answer the same prompt.

**How long.** Default sizes (16 × 256 calibration tokens, 16 × 256 eval tokens), measured on a 2-core CPU:
about 3 minutes, most of it calibration + slicing. On a GPU: well under a minute (not measured here; the
embedded model cannot travel to our GPU machine). The CI run (2 × 64 tokens) takes about a minute.
"""),
    params('''
DIM = 432  # kept width d, here 25 percent slicing of the 576-wide model
CAL_WINDOWS = 16  # calibration windows for the PCA
CAL_SEQLEN = 256
EVAL_WINDOWS = 16  # eval windows for perplexity and accuracy
EVAL_SEQLEN = 256
PROMPT = "What is the capital of France?"
MAX_NEW_TOKENS = 24
'''),
    code('''
from slicedim_lab import widgets as sw
from slicedim_lab.corpus import load_windows
from slicedim_lab.metrics import evaluate
from slicedim_lab.models import load_model
from slicedim_lab.slicing import count_params, site_dims, slice_model

lm = load_model(MODEL, device=DEVICE)
L, D = lm.model.config.num_hidden_layers, lm.model.config.hidden_size
cal = load_windows(lm.tokenizer, CORPUS, "calibration", CAL_SEQLEN, CAL_WINDOWS)
evw = load_windows(lm.tokenizer, CORPUS, "eval", EVAL_SEQLEN, EVAL_WINDOWS)
print(f"{lm.name} on {lm.device}: {L} layers, width D = {D}, {count_params(lm.model) / 1e6:.1f} M parameters")
print(f"calibration {tuple(cal.shape)}, eval {tuple(evw.shape)} token windows of {CORPUS}")
'''),
    md("## Dense model"),
    code('''
dense = evaluate(lm.model, evw, BATCH_SIZE)
print(f"dense: perplexity {dense.ppl:.3f}, top-1 accuracy {dense.accuracy:.4f} ({dense.seconds:.1f} s)")
'''),
    md("""
## Slice to d'

`slice_model` folds the RMSNorm scales into the linear maps, computes each residual site's PCA on the
calibration windows (interleaved: each layer's bases come from activations that already went through the
sliced earlier layers), rotates every site into its eigenbasis and keeps the first d' directions. The result
is an ordinary, smaller `transformers` model.
"""),
    code('''
dims = site_dims(L, D, dim=DIM)
sliced = slice_model(lm.model, cal, dims, batch_size=BATCH_SIZE)
small = evaluate(sliced.model, evw, BATCH_SIZE)
results = {"dense": dense, f"sliced d'={DIM}": small}
params_count = {"dense": count_params(lm.model), f"sliced d'={DIM}": count_params(sliced.model)}
sw.compare_table(results, params_count)
'''),
    code('''
metrics_fig = sw.metrics_figure(results, params_count)
sw.show(metrics_fig, INTERACTIVE)
'''),
    md("""
## What the slicer cut

Left: the eigenvalues of the residual stream's second moment at one site, the kept d' directions in blue,
the discarded tail in red. Right: the fraction of the energy each site keeps. Move the site slider.
"""),
    code('''
spectra = sw.spectrum_explorer(sliced.pcas, dims=sliced.dims, site=1, title="interleaved PCA, ")
sw.show(spectra, INTERACTIVE)
'''),
    md("## Ask both models"),
    code('''
chat = sw.generation_explorer({"dense": lm.model, f"sliced d'={DIM}": sliced.model}, lm.tokenizer, PROMPT,
                              MAX_NEW_TOKENS)
sw.show(chat, INTERACTIVE)
'''),
    md(HEADLESS_NOTE),
    code('''
if not INTERACTIVE:
    spectra.controls["site"].value = 2 * (L // 2) + 2  # after the middle layer's MLP
    chat.controls["generate"].click()  # runs both models on PROMPT
    for name, reply in chat.state.items():
        print(f"{name}: {reply}")
'''),
    code('''
record = sw.save_run(OUT_DIR, "00_quickstart", explorers={"spectra": spectra, "chat": chat},
                     figures={"metrics": metrics_fig},
                     extra={"dense": dense.to_dict(), "sliced": small.to_dict(), "dim": DIM})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
'''),
]


NOTEBOOKS: dict[str, list[nbformat.NotebookNode]] = {
    "00_quickstart": QUICKSTART,
}


def build(names: list[str] | None = None) -> list[Path]:
    """Write the named notebooks (all by default) next to this script; return their paths."""
    paths = []
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nb = new_notebook(cells=cells)
        for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives no diff
            cell.id = f"c{i:02d}"
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        path = HERE / f"{name}.ipynb"
        nbformat.validate(nb)
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build(sys.argv[1:] or None):
        print(p)
