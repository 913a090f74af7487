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
#
# **How long.** Default sizes (8 × 256 calibration, 2 × 256 eval tokens): the headless run — setup plus the
# d' and layer moves of its last cells — took 81 s, measured once on an idle 2-core CPU with no GPU and the
# default model already in its cache (other jobs on the same cores slow it several-fold). A d' move is one
# emulated forward (about twice that with the prediction decomposition ticked); layer moves are instant.
# Not measured on a GPU. The CI run (2 layers, 2 × 64 tokens) takes about a minute.

# %% tags=["parameters"]
MODEL = "smollm2-135m-instruct"  # alias, local Hugging Face folder or hub id
DEVICE = "auto"  # auto | cpu | cuda
INTERACTIVE = True  # False: drive the widgets from code and save the figures (headless / CI)
OUT_DIR = "runs/notebooks"  # figures (HTML) and a JSON record of the run go here
CORPUS = "python-docs"  # python-docs (offline) | wikitext2 | path to a UTF-8 text file
BATCH_SIZE = 4
MAX_LAYERS = None  # keep only the first N decoder layers for a quick smoke run; None keeps them all
DIM = 432  # initial kept width
LAYER = 14  # initial layer
BASIS = "dense"  # dense or interleaved
ATTRIBUTION = False  # start with the prediction decomposition on, several times slower per move
NODES = 2  # Gauss-Legendre nodes of the decomposition, 0 keeps the first-order term only
COMPARE_INTERLEAVED = True  # also compare dense and interleaved bases at DIM, one calibration
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 2
EVAL_SEQLEN = 256

# %%
from slicedim_lab import widgets as sw
from slicedim_lab.flow.session import FlowSession
from slicedim_lab.widgets.setup import notebook_setup

setup = notebook_setup(MODEL, DEVICE, CORPUS, cal_windows=CAL_WINDOWS, cal_seqlen=CAL_SEQLEN,
                       eval_windows=EVAL_WINDOWS, eval_seqlen=EVAL_SEQLEN, max_layers=MAX_LAYERS)
lm, cal, evw, L, D = setup.lm, setup.cal, setup.evw, setup.n_layers, setup.hidden
print(setup.summary())
session = FlowSession(lm.model, cal, evw, tokenizer=lm.tokenizer, batch_size=BATCH_SIZE, progress=True)
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
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
# saves every figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    flow.controls["layer"].value = 1
    flow.controls["dim"].value = DIM - 96
    flow.controls["attribution"].value = True  # the prediction decomposition at that d'
    flow.controls["layer"].value = L - 1
    print({k: round(float(flow.state[k]), 4) for k in ("ppl_dense", "ppl_sliced", "kl")},
          {k: round(v, 4) for k, v in flow.state["layer_row"].items()})

# %%
record = sw.save_run(OUT_DIR, "01_activation_flow", explorers={"flow": flow},
                     extra={"summary": flow.state["report"].summary, "dim": flow.state["dim"]})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
