# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Quickstart: slice SmolLM2 to a smaller representation dimension
#
# **What it shows.** Load the embedded default model offline (SmolLM2-135M-Instruct, width D = 576, 30
# layers), measure its perplexity and next-token accuracy, slice it with SliceGPT to one kept width d' (every
# residual site keeps d' PCA directions; the LM head keeps full width), measure again, look at the
# eigen-spectra the slicer cut, and let the dense and the sliced model answer the same prompt. `MODEL =
# "gemma3-270m"` runs the same on Gemma 3 270M (D = 640, 18 layers): the widths follow from `SPARSITY`.
#
# **What you will learn.** What "slicing to a smaller representation dimension" does to a real model: every
# residual site keeps d' of D directions, the model really gets smaller (parameters), and the cost shows up
# as perplexity and accuracy — and in what it says.
#
# **How long.** Default sizes (16 × 256 calibration and 16 × 256 eval tokens): a first Run All 55 s, a second
# 15 s (idle 2-core CPU, measured by `bench/bench_notebooks.py`). The dense metrics and the sliced model are
# kept in the cache (`CACHE_DIR`), so a second run only reads them back. Not measured on a GPU. The CI run (2
# layers, 2 × 64 tokens) takes well under a minute.

# %% tags=["parameters"]
MODEL = "smollm2-135m-instruct"  # alias, local Hugging Face folder or hub id
DEVICE = "auto"  # auto | cpu | cuda
INTERACTIVE = True  # False: drive the widgets from code and save the figures (headless / CI)
OUT_DIR = "runs/notebooks"  # figures (HTML) and a JSON record of the run go here
CORPUS = "python-docs"  # python-docs (offline) | wikitext2 | path to a UTF-8 text file
BATCH_SIZE = 4
MAX_LAYERS = None  # keep only the first N decoder layers for a quick smoke run; None keeps them all
SPARSITY = 0.25  # the kept width d' is this sparsity's width (SliceGPT's rule: 432 of 576 for SmolLM2)...
DIM = None  # ...unless a width is given here
CAL_WINDOWS = 16  # calibration windows for the PCA
CAL_SEQLEN = 256
EVAL_WINDOWS = 16  # eval windows for perplexity and accuracy
EVAL_SEQLEN = 256
PROMPT = "What is the capital of France?"
MAX_NEW_TOKENS = 24
CACHE_DIR = ""  # the dense state is kept here for later runs; empty: $SLICEDIM_CACHE/notebooks; None: off

# %%
from slicedim_lab import widgets as sw
from slicedim_lab.core.sites import model_layer_sites
from slicedim_lab.core.size import count_params
from slicedim_lab.core.widths import model_site_dims
from slicedim_lab.widgets.setup import notebook_setup

setup = notebook_setup(MODEL, DEVICE, CORPUS, cal_windows=CAL_WINDOWS, cal_seqlen=CAL_SEQLEN,
                       eval_windows=EVAL_WINDOWS, eval_seqlen=EVAL_SEQLEN, max_layers=MAX_LAYERS,
                       cache_dir=CACHE_DIR)
lm, L, D = setup.lm, setup.n_layers, setup.hidden
DIM = DIM or setup.width(SPARSITY)
print(setup.summary())

# %% [markdown]
# ## Dense model

# %%
dense = setup.dense_metrics(BATCH_SIZE)
print(f"dense: perplexity {dense.ppl:.3f}, top-1 accuracy {dense.accuracy:.4f}")

# %% [markdown]
# ## Slice to d'
#
# `setup.slice` calls `slice_and_measure`, which slices (SliceGPT's `slice_model`: it folds the RMSNorm scales
# into the linear maps, computes each residual site's PCA on the calibration windows — interleaved: each
# layer's bases come from activations that already went through the sliced earlier layers —, rotates every
# site into its eigenbasis and keeps the first d' directions), then measures the result, an ordinary, smaller
# `transformers` model: the same slice-then-measure as `slicedim slice` and every sweep point. The sliced
# model is saved in the cache, so a second run loads it instead of slicing again.

# %%
dims = model_site_dims(lm.model, dim=DIM)
sliced, small = setup.slice(dims, BATCH_SIZE)
results = {"dense": dense, f"sliced d'={DIM}": small}
params_count = {"dense": count_params(lm.model), f"sliced d'={DIM}": count_params(sliced.model)}
sw.compare_table(results, params_count)

# %%
metrics_fig = sw.metrics_figure(results, params_count)
sw.show(metrics_fig, INTERACTIVE)

# %% [markdown]
# ## What the slicer cut
#
# Top: the eigenvalues of the residual stream's second moment at one site (each direction's share of the
# energy), the kept d' directions in blue, the discarded tail in red. Bottom: the fraction of the energy each
# site discards. Move the site slider. (The last site feeds the LM head and keeps its full width.)

# %%
spectra = sw.spectrum_explorer(sliced.pcas, dims=sliced.dims, site=1, title="interleaved PCA, ")
sw.show(spectra, INTERACTIVE)

# %% [markdown]
# ## Ask both models

# %%
chat = sw.generation_explorer({"dense": lm.model, f"sliced d'={DIM}": sliced.model}, lm.tokenizer, PROMPT,
                              MAX_NEW_TOKENS)
sw.show(chat, INTERACTIVE)

# %% [markdown]
# ## Exercises
#
# 1. How many parameters did slicing to d' remove, and by how much did perplexity grow? Is the relative
#    growth of perplexity larger or smaller than the share of parameters removed? (the table and the bars)
# 2. Move the site slider along depth: at which sites does d' discard the most energy? Is it more than 1 %
#    anywhere? (the lower figure)
# 3. Click Generate: where does the sliced model's answer first differ from the dense one? Rerun with
#    `SPARSITY = 0.5`: does it still answer the question?

# %% [markdown]
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
# saves every figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    spectra.controls["site"].value = model_layer_sites(lm.model)[L // 2].out  # after the middle layer
    chat.controls["generate"].click()  # runs both models on PROMPT
    for name, reply in chat.state.items():
        print(f"{name}: {reply}")

# %%
record = sw.save_run(OUT_DIR, "00_quickstart", explorers={"spectra": spectra, "chat": chat},
                     figures={"metrics": metrics_fig},
                     extra={"dense": dense.to_dict(), "sliced": small.to_dict(), "dim": DIM})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
