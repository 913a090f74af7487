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
# # 05 · Which tokens suffer when the representation dimension shrinks
#
# **What it shows.** The eval text itself, each token coloured by how much its next-token loss grows when the
# model is sliced to d' (sliced − dense, in nats: red worse, blue better). The sliced model is emulated
# exactly: the dense model with its residual stream projected on the top-d' PCA directions at every write
# site (`slicedim_lab.core.emulate`), the same function as SliceGPT's smaller model with these bases.
# Hover a token for the dense and the sliced model's top-1 prediction and the site where its damage entered
# (the prediction decomposition of notebook 01, per position). Below: the worst tokens (sort and filter by
# kind), the loss increase by kind of token (words, word pieces, code identifiers, numbers, punctuation,
# whitespace), and sliced against dense loss for every token.
#
# **What you will learn.** Slicing does not hurt every token alike: the loss of a narrower model is an
# average over tokens whose predictions hardly move and a few that collapse. You will see which kinds of token
# carry the increase on Python's documentation, whether the tokens that suffer are those the dense model
# already found hard, and at which depth their damage enters.
#
# **How long.** Default sizes (8 × 256 calibration, 2 × 256 eval tokens, SmolLM2): see the table in
# docs/notebooks.md for the measured first and second run-all and the machine. A first run makes the dense
# pass, the dense PCA and the token table at the default d' and keeps them in the cache (`CACHE_DIR`, shared
# with notebooks 01 and 02); a second run reads them back. A d' move is one emulated forward and the
# decomposition's gradient passes (`NODES`). The CI run (2 layers, 2 × 64 tokens) takes well under a minute.

# %% tags=["parameters"]
MODEL = "smollm2-135m-instruct"  # alias (smollm2-135m-instruct, gemma3-270m), local folder or hub id
DEVICE = "auto"  # auto | cpu | cuda
INTERACTIVE = True  # False: drive the widgets from code and save the figures (headless / CI)
OUT_DIR = "runs/notebooks"  # figures (HTML) and a JSON record of the run go here
CORPUS = "python-docs"  # python-docs (offline) | wikitext2 | path to a UTF-8 text file
BATCH_SIZE = 4
MAX_LAYERS = None  # keep only the first N decoder layers for a quick smoke run; None keeps them all
SPARSITY = 0.25  # the initial d' is this sparsity's width (SliceGPT's rule)...
DIM = None  # ...unless a width is given here
BASIS = "dense"  # dense (one PCA for every d') or interleaved (SliceGPT's calibration per d')
NODES = 1  # Gauss-Legendre nodes of the decomposition that finds each token's entry site; 0: first order
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
print(setup.summary())
session = setup.flow_session(BATCH_SIZE)

# %% [markdown]
# ## The text, coloured by the loss increase at d'
#
# Drag d' (the table recomputes when you release it). The kind filter greys every other kind of token; the
# sort and the rows slider set the table of the worst tokens below the bars.

# %%
tokens = sw.tokens_explorer(session, dim=DIM, basis=BASIS, nodes=NODES)
sw.show(tokens, INTERACTIVE)
print(setup.store.summary())

# %% [markdown]
# By kind of token at the current d': how many, their mean loss dense and sliced, the mean and summed loss
# increase, each kind's share of the whole increase, and how often the top-1 prediction changed.

# %%
tokens.state["summary"].round(4)

# %% [markdown]
# ## Exercises
#
# 1. At the default d', which kind of token carries the largest share of the loss increase, and which has the
#    largest mean increase per token? Are they the same kind? (the bars; the table above)
# 2. Sort by "largest increase" and hover the worst tokens: at which sites did their damage enter — early
#    layers, middle or late? Does the sliced model predict a plausible token instead, or something unrelated?
# 3. Drag d' down to half of D. Do new kinds of token join the worst ones, or do the same tokens get worse?
#    In the scatter, do the tokens that suffer most start from a low or a high dense loss?

# %% [markdown]
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
# saves every figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    tokens.controls["kind"].value = "punctuation"
    tokens.controls["sort"].value = "largest decrease"
    tokens.controls["dim"].value = max(8, DIM - D // 6 // 8 * 8)
    print(tokens.state["worst"][["token", "kind", "dloss", "top_dense", "top_sliced", "site_label"]].head())

# %%
summary = tokens.state["summary"].to_dict("records")
record = sw.save_run(OUT_DIR, "05_tokens", explorers={"tokens": tokens},
                     extra={"dim": tokens.state["dim"], "summary": summary})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
