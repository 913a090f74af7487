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
# # 02 · Linear maps: how a layer's maps split into kept and dropped directions
#
# **What it shows.** Slicing restricts every linear map that touches the residual stream: a *reader* (q, k, v,
# gate, up — and the LM head) sees only the kept directions, W ↦ W·B; a *writer* (o, down — and the embedding)
# can only write into them, W ↦ Bᵀ·W (B the site's D × d' basis). For a chosen layer and d':
# - per map, the share of its output energy on real (dense, eval) activations that the kept and the dropped
#   directions carry, and the share of its weight energy that survives;
# - along depth, the share each kind of map sends through dropped directions;
# - the singular values of one map, full against sliced (the sliced map has rank ≤ d');
# - the eigen-spectra of the residual sites those maps read and write.
# `MODEL = "gemma3-270m"` draws the same for Gemma 3 270M (the default d' and layer follow its D and depth).
#
# **What you will learn.** Slicing is not only a cut of the residual stream: it restricts every linear map
# that reads or writes it. You will see which maps lose the most of their output on real text (readers or
# writers, attention or MLP), how that changes along depth, and that a sliced map keeps its largest
# singular values while its rank drops to d'.
#
# **How long.** Default sizes (8 × 256 calibration, 2 × 256 eval tokens): a first Run All 56 s, a second 15 s
# (idle 2-core CPU, measured by `bench/bench_notebooks.py`). The dense pass, the dense PCA and every report
# computed are kept in the cache (`CACHE_DIR`, shared with notebooks 01 and 05), so a second run reads them
# back. A d' move is one emulated forward pass and the map statistics; a layer or map move computes the
# singular values of that layer's maps. Not measured on a GPU. The CI run (2 layers, 2 × 64 tokens) takes well
# under a minute.

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
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 2
EVAL_SEQLEN = 256
CACHE_DIR = ""  # the dense state is kept here for later runs; empty: $SLICEDIM_CACHE/notebooks; None: off

# %%
from slicedim_lab import widgets as sw
from slicedim_lab.core.sites import model_layer_sites
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
# ## Kept and dropped directions, per map
#
# Readers: the fractions ‖W P n‖² and ‖W (I−P) n‖² of ‖W n‖² (n the normalised residual; they need not sum to
# one: the cross term can be either sign). Writers: ‖Bᵀw‖²/‖w‖² and its complement.

# %%
maps = sw.maps_explorer(session, dim=DIM, layer=LAYER)
sw.show(maps, INTERACTIVE)

# %%
sw.layer_maps_table(maps.state["maps"], maps.controls["layer"].value, maps.state["weight_kept"]).round(4)

# %% [markdown]
# ## The spectra those maps see (dense PCA of every site)

# %%
spectra = sw.spectrum_explorer(session.pcas, dim=DIM, site=model_layer_sites(lm.model)[LAYER].own[0],
                               title="dense PCA, ")
sw.show(spectra, INTERACTIVE)

# %% [markdown]
# ## Exercises
#
# 1. At the default d' and the middle layer, which map sends the largest share of its output energy through
#    dropped directions — a reader or a writer? (the per-map bars)
# 2. Along depth, does the dropped share of `o_proj` and `down_proj` grow or shrink? Which layer is the worst?
#    (the along-depth figure)
# 3. Pick a map and drag d' down: at which d' does its largest singular value first change, and what happens
#    to the tail of its spectrum? (the singular values)

# %% [markdown]
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
# saves every figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    maps.controls["layer"].value = 0
    maps.controls["map"].value = maps.controls["map"].options[-1][1]
    maps.controls["dim"].value = max(8, DIM - D // 6 // 8 * 8)
    spectra.controls["dim"].value = max(8, DIM - D // 6 // 8 * 8)
    print(maps.state["map"], round(maps.state["sigma1_ratio"], 4))

# %%
record = sw.save_run(OUT_DIR, "02_linear_maps", explorers={"maps": maps, "spectra": spectra},
                     extra={"dim": maps.state["dim"], "layer": maps.controls["layer"].value})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
