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
# # 01 · Activation flow: where along depth a smaller representation dimension hurts
#
# **What it shows.** The residual stream of the dense model against the same model sliced to d' (emulated
# exactly with TransformerLens hooks: the residual is projected on the top-d' PCA directions at every write
# site). Sliders for d' and the layer; plotly figures update live:
# - the eigen-spectra of the chosen layer's two sites with the cut at d';
# - along depth: the fraction of energy discarded (on calibration text, on eval text through the dense
#   activations, and on the activations that actually reach each projection in the sliced model);
# - the relative error ‖x̃ − x‖/‖x‖ and the cosine of the sliced residual against the dense one;
# - the logit lens: KL(dense ‖ sliced) of next-token distributions read at every layer's output, and the loss;
# - the prediction decomposition (tick its box; several times slower per move): how much of the loss
#   increase each site's cut accounts for (integrated gradients along dense → sliced, and the first-order
#   term); attributions + remainder reconstruct the sliced loss exactly.
#
# With `dense` bases (one PCA of the dense model serves every d') a d' move costs one emulated forward pass
# (plus the gradient passes of the decomposition); `interleaved` runs SliceGPT's calibration per d'.
# `MODEL = "gemma3-270m"` draws the same for Gemma 3 270M (the default d' and layer follow its D and depth).
#
# **What you will learn.** Where along depth a narrower residual stream hurts: that the energy a cut
# discards is tiny while the loss grows, that the error of the residual stream builds up layer by layer, at
# which layer the next-token distribution (logit lens) departs from the dense one, and which sites account
# for the loss increase.
#
# **How long.** Default sizes (8 × 256 calibration, 2 × 256 eval tokens): a first Run All 75 s, a second 15 s
# (idle 2-core CPU, measured by `bench/bench_notebooks.py`). The dense pass, the dense PCA and every report
# computed (each d' visited, the interleaved comparison) are kept in the cache (`CACHE_DIR`, shared with
# notebooks 02 and 05), so a second run reads them back. A d' move is one emulated forward (about twice that
# with the prediction decomposition ticked); layer moves are instant. Not measured on a GPU. The CI run (2
# layers, 2 × 64 tokens) takes well under a minute.

# %% tags=["parameters"]
MODEL = "smollm2-135m-instruct"  # alias, local Hugging Face folder or hub id
DEVICE = "auto"  # auto | cpu | cuda
INTERACTIVE = True  # False: drive the widgets from code and save the figures (headless / CI)
OUT_DIR = "runs/notebooks"  # figures (HTML) and a JSON record of the run go here
CORPUS = "python-docs"  # python-docs (offline) | wikitext2 | path to a UTF-8 text file
BATCH_SIZE = 4
MAX_LAYERS = None  # keep only the first N decoder layers for a quick smoke run; None keeps them all
SPARSITY = 0.25  # the initial d' is this sparsity's width (SliceGPT's rule)...
DIM = None  # ...unless a width is given here
LAYER = None  # initial layer; None: the middle one
BASIS = "dense"  # dense or interleaved
ATTRIBUTION = False  # start with the prediction decomposition on, several times slower per move
NODES = 2  # Gauss-Legendre nodes of the decomposition, 0 keeps the first-order term only
COMPARE_INTERLEAVED = True  # also compare dense and interleaved bases at DIM, one calibration
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 2
EVAL_SEQLEN = 256
CACHE_DIR = ""  # the dense state is kept here for later runs; empty: $SLICEDIM_CACHE/notebooks; None: off

# %%
from slicedim_lab import widgets as sw
from slicedim_lab.widgets.setup import notebook_setup

setup = notebook_setup(MODEL, DEVICE, CORPUS, cal_windows=CAL_WINDOWS, cal_seqlen=CAL_SEQLEN,
                       eval_windows=EVAL_WINDOWS, eval_seqlen=EVAL_SEQLEN, max_layers=MAX_LAYERS,
                       cache_dir=CACHE_DIR)
lm, L, D = setup.lm, setup.n_layers, setup.hidden
DIM = DIM or setup.width(SPARSITY)
LAYER = L // 2 if LAYER is None else LAYER
print(setup.summary())
session = setup.flow_session(BATCH_SIZE)
print("one-off costs (s):", {k: round(v, 1) for k, v in session.seconds.items()})

# %% [markdown]
# ## Explore
#
# Drag d' (the figures recompute when you release it) and the layer (instant: the orange band marks its two
# sites along depth). Site 0 is the embeddings, site 2i+1 the residual after layer i's attention block, 2i+2
# after its MLP block.

# %%
flow = sw.flow_explorer(session, dim=DIM, layer=LAYER, basis=BASIS, attribution=ATTRIBUTION, nodes=NODES)
sw.show(flow, INTERACTIVE)

# %% [markdown]
# One row per layer at the current d': the metrics at its output site and its summed attributions.

# %%
flow.state["report"].per_layer().round(4)

# %% [markdown]
# ## Dense bases against SliceGPT's interleaved calibration
#
# The slider uses dense bases. SliceGPT calibrates layer by layer on activations that already went through the
# sliced earlier layers; the gap between the two is itself a finding (7–13% perplexity on this model at
# d' = 432 … 288 with 32 × 512 calibration tokens).

# %%
session.compare(DIM) if COMPARE_INTERLEAVED else None

# %% [markdown]
# ## Exercises
#
# 1. Drag d' down until the logit-lens KL at the last layer passes 1 nat: at which layer does the lens KL
#    first exceed 0.1 nat at that d'? (the logit-lens figure)
# 2. At the default d', what fraction of the energy do the sites discard on eval text — and how much did the
#    perplexity grow? Which is the better guide to the damage? (the status line and the energy figure)
# 3. Tick the prediction decomposition: which three sites account for most of the loss increase? Are they
#    where the relative error of the residual stream jumps? (the decomposition and the error figures)

# %% [markdown]
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
# saves every figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    flow.controls["layer"].value = 1
    flow.controls["dim"].value = max(8, DIM - D // 6 // 8 * 8)
    flow.controls["attribution"].value = True  # the prediction decomposition at that d'
    flow.controls["layer"].value = L - 1
    print({k: round(float(flow.state[k]), 4) for k in ("ppl_dense", "ppl_sliced", "kl")},
          {k: round(v, 4) for k, v in flow.state["layer_row"].items()})

# %%
record = sw.save_run(OUT_DIR, "01_activation_flow", explorers={"flow": flow},
                     extra={"summary": flow.state["report"].summary, "dim": flow.state["dim"]})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
