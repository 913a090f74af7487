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
# # 03 · Dimension sweep: predicted against measured performance, live
#
# **What it shows.** Perplexity, next-token accuracy and multiple-choice accuracy against the kept width d'.
# The predicted curves come from the dense model alone and answer for every d' at once — the slider moves them
# instantly. **Measure d'** slices the model to the slider's d' for real, evaluates it and adds the point; the
# error of every predictor at the measured points is shown below. Two points (`MEASURE_SPARSITIES`) are
# measured when the notebook first opens. The state lives in a sweep folder (`SWEEP_DIR`, the format of
# `slicedim sweep --out`): the dense metrics, the Fisher tables and every measured point are cached there, so
# reopening the notebook keeps them.
#
# Predictors (none runs a sliced model; see `slicedim_lab/predict/`):
#
# | predictor | formula | inputs | cost |
# |---|---|---|---|
# | `paper` | ln PPL(d') = (D/d')·ln PPL₀; acc(d') = acc₀^(D/d') (our reading of the paper's accuracy relation) | dense PPL₀, acc₀ | nothing |
# | `fisher` | PPL₀·exp(Σ_s ½·mean_t (g_{s,t}·δ_{s,t})²), δ_s what site s newly cuts, g sampled-label gradients | dense PCA + gradient windows | one forward+backward per gradient window, then a lookup per d' |
# | `fisher_cross` | ½·mean_t (Σ_s g·δ_s)²: keeps cross-site terms | same | same |
# | `fisher_full` | ½·(1/T)·Σ_windows (Σ_{s,t} g·δ)²: keeps all cross terms | same | same |
# | `fisher_semi` | as `fisher`, in semi-interleaved bases (the PCA of the stream after the upstream cuts, from dense moments) | + cross moments of neighbouring sites | per width named in advance (`SEMI_DIMS`) |
# | `fisher_semi_cross`, `fisher_semi_geo` | cross-site sum; geometric mean of the two | same | same |
# | `jvp_power` (interleaved bases only) | PPL₀·exp(ΔL_J·(s/s_J)^β): a first-order anchor at s_J = 1/9 from the dense model's linearisation, grown by a power law in s (β fitted on python-docs) | dense moments + the eval windows | one linearisation pass, then a closed form per d' |
# | `ours` (v3, interleaved bases only) | `jvp_power`'s ΔL × e^μ·(s/0.3)^γ, the form and constants chosen leave-one-text-out on eight texts, with a 90 % band from the held-out errors | same | same |
#
# **The headline** (beside `paper` in every table, `predict.registry.headline(basis)`): `ours` for
# `interleaved` bases, `fisher` (the Fisher sum in the dense bases it projects on) for `dense` bases. The
# Fisher gradients are taken on calibration windows the PCA did not see.
#
# Accuracies of the Fisher predictors, `jvp_power` and `ours` use the paper's coupling acc₀^(ln PPL / ln PPL₀).
#
# `MODEL = "gemma3-270m"` sweeps Gemma 3 270M the same way (the widths follow from its D = 640).
#
# **What you will learn.** How well the quality of a sliced model can be predicted from the dense model
# alone: how far the paper's law is off on a real model, what the Fisher-increment predictors get right,
# and how a measured point tells you which one to trust.
#
# **How long.** Default sizes (8 × 256 calibration, 8 × 256 eval, 4 gradient windows, 16 MC items): a first
# Run All 85 s, a second 21 s (idle 2-core CPU, measured by `bench/bench_notebooks.py`). The sweep folder
# (`SWEEP_DIR`, by default one per settings in the cache) keeps the dense metrics, the dense statistics and
# every measured point, so a second run reads them back. A slider move is instant; Measure takes one
# evaluation (`dense` bases) or a SliceGPT calibration too (`interleaved`). Not measured on a GPU. The CI run
# (2 layers, 2 × 64 tokens) takes well under a minute.

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
BASIS = "dense"  # bases for Measure: dense is fast, interleaved is SliceGPT proper
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 8
EVAL_SEQLEN = 256
GRAD_WINDOWS = 4  # gradient windows of the Fisher predictors
TASKS = ["corpus-mc"]  # offline multiple choice; lm-eval task names where their datasets are reachable
MC_ITEMS = 16
SEMI_SPARSITIES = [0.25, 1 / 3, 5 / 12, 0.5]  # the semi-interleaved Fisher predictors answer at their widths
SEMI_DIMS = None  # ...or at these widths
CACHE_DIR = ""  # the sweep folder's home; empty: $SLICEDIM_CACHE/notebooks; None: runs/notebooks
SWEEP_DIR = None  # the sweep folder; None: one per settings under CACHE_DIR (relative: to the notebook)
FRESH = False  # True discards a SWEEP_DIR that holds other settings
MEASURE_SPARSITIES = [0.25, 0.5]  # measured when the notebook opens (once: the sweep folder keeps them)
MEASURE_DIMS = None  # what the headless run measures; None: the initial d'

# %%
from slicedim_lab import widgets as sw
from slicedim_lab.core.widths import dim_for_sparsity
from slicedim_lab.load.models import load_model
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.runner import SweepRunner
from slicedim_lab.widgets.setup import sweep_folder

cfg = SweepConfig(model=MODEL, corpus=CORPUS, basis=BASIS, cal_samples=CAL_WINDOWS, cal_seqlen=CAL_SEQLEN,
                  eval_seqlen=EVAL_SEQLEN, max_eval_windows=EVAL_WINDOWS, grad_windows=GRAD_WINDOWS,
                  tasks=TASKS, mc_items=MC_ITEMS)
lm = load_model(MODEL, device=DEVICE)
D = lm.model.config.hidden_size
DIM = DIM or dim_for_sparsity(SPARSITY, D)
SEMI_DIMS = SEMI_DIMS or [dim_for_sparsity(s, D) for s in SEMI_SPARSITIES]
SWEEP_DIR = SWEEP_DIR or sweep_folder(cfg, MAX_LAYERS, CACHE_DIR)
runner = SweepRunner.open(cfg, SWEEP_DIR, lm=lm, device=DEVICE, batch_size=BATCH_SIZE, fresh=FRESH,
                          max_layers=MAX_LAYERS, widths=SEMI_DIMS)
print(f"dense: PPL {runner.dense.ppl:.3f}, top-1 {runner.dense.acc:.4f}, MC {runner.dense.mc_acc}; "
      f"{len(runner.rows)} point(s) already measured in {SWEEP_DIR}")
for d in [dim_for_sparsity(s, D) for s in MEASURE_SPARSITIES]:
    if d not in runner.measured():
        runner.measure(d)

# %% [markdown]
# ## Drag d', then measure
#
# The dashed line marks the slider's d'; the coloured dots are each predictor's value there; black diamonds
# are measured points. **Find width** answers "how narrow can I go?": type a target (`ppl<=1.25x` of the
# dense perplexity, `ppl<=20`, `acc>=0.4`, `mc_acc>=0.8`) and it measures at most three widths — the
# headline's curve says where to look, each measured width corrects it — then prints the narrowest width that
# meets the target and moves the slider there (`slicedim sweep --target` does the same from a shell).

# %%
sweep = sw.sweep_explorer(runner, dim=DIM)
sw.show(sweep, INTERACTIVE)

# %% [markdown]
# ## Exercises
#
# 1. Drag d' to the default width and click Measure: which predictor comes closest, and by how many percent is
#    the paper's law off? (the table above the figures, then the error figure)
# 2. Where does the paper's law predict the perplexity to double, and where does `fisher`? (drag d' until the
#    predicted PPL in the table is twice the dense one)
# 3. Measure two more widths, one mild and one strong cut: does the headline predictor over-predict the mild
#    cut and under-predict the strong one? (the error figure)

# %% [markdown]
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
# saves every figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    for d in MEASURE_DIMS or [DIM]:
        sweep.controls["dim"].value = d
        sweep.controls["measure"].click()  # slices (or projects) to d and evaluates
    sweep.controls["dim"].value = max(sweep.controls["dim"].min, DIM - 64)  # predictions only: instant

# %% [markdown]
# Every measured point with each predictor's perplexity and signed error (%):

# %%
sw.sweep_table(runner).round(4)

# %%
record = sw.save_run(OUT_DIR, "03_dimension_sweep", explorers={"sweep": sweep},
                     extra={"rows": runner.rows, "sweep_dir": str(SWEEP_DIR)})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
