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
# # 06 · Spend the width where it matters: per-site widths planned from the dense model
#
# **What it shows.** Uniform SliceGPT keeps the same width d' at every residual site. The plan gives every
# site its own width for the same number of parameters, chosen from the dense model alone (no sliced model
# runs while planning; docs/planning.md): each site's cut is charged the loss its Fisher increment predicts,
# every width has its exact parameter price (readers, writers, the shortcut matrices between neighbouring
# sites, the tied head's maps), and a dynamic programme along the sites picks the cheapest schedule in loss
# for the budget. A slider moves the budget (a fraction of the dense parameter count); the figure shows the
# planned width of every site against uniform's, and below it the loss each site is charged under both. At
# the end, the plan and uniform slicing at the same count are sliced for real and measured.
#
# **What you will learn.** Which sites the dense model says to keep wide (on SmolLM2: the first layers), how
# the plan changes as the budget shrinks, what a width costs at each site (the attention output site feeds
# two 1536-wide MLP readers, the MLP output site three narrower attention readers), and how much perplexity
# the same parameters buy when they are spent where the predicted loss is largest.
#
# **How long.** Default sizes (8 × 256 calibration, 4 gradient and 4 eval windows of 256 tokens, SmolLM2):
# the dense metrics and the plan tables (one dense pass and one forward+backward per 2 gradient windows) are
# made once and kept in the cache (`CACHE_DIR`); a slider move re-plans in well under a second; the two
# measured slices at the end are two SliceGPT calibrations (cached too). See the table in docs/notebooks.md
# for measured run-all times. The CI run (2 layers, 2 × 64 tokens) takes well under a minute.

# %% tags=["parameters"]
MODEL = "smollm2-135m-instruct"  # alias (smollm2-135m-instruct, gemma3-270m), local folder or hub id
DEVICE = "auto"  # auto | cpu | cuda
INTERACTIVE = True  # False: drive the widgets from code and save the figures (headless / CI)
OUT_DIR = "runs/notebooks"  # figures (HTML) and a JSON record of the run go here
CORPUS = "python-docs"  # python-docs (offline) | wikitext2 | path to a UTF-8 text file
BATCH_SIZE = 4
MAX_LAYERS = None  # keep only the first N decoder layers for a quick smoke run; None keeps them all
SPARSITY = 0.3  # the initial budget: as many parameters as uniform slicing at this sparsity
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 4
EVAL_SEQLEN = 256
GRAD_WINDOWS = 4  # held-out calibration windows of the gradient pass
MEASURE = True  # slice the plan and uniform at the initial budget for real and measure both
CACHE_DIR = ""  # the dense state is kept here for later runs; empty: $SLICEDIM_CACHE/notebooks; None: off

# %%
from slicedim_lab import widgets as sw
from slicedim_lab.widgets.setup import notebook_setup

setup = notebook_setup(MODEL, DEVICE, CORPUS, cal_windows=CAL_WINDOWS, cal_seqlen=CAL_SEQLEN,
                       eval_windows=EVAL_WINDOWS, eval_seqlen=EVAL_SEQLEN, grad_windows=GRAD_WINDOWS,
                       max_layers=MAX_LAYERS, cache_dir=CACHE_DIR)
print(setup.summary())
planner = sw.notebook_planner(setup, BATCH_SIZE)
uniform_dim = setup.width(SPARSITY)
FRACTION = planner.cost.count(planner.uniform(uniform_dim)) / planner.dense_params
print(f"dense: PPL {planner.dense.ppl:.3f}, {planner.dense_params:,} parameters; uniform slicing at "
      f"s = {SPARSITY} (d' = {uniform_dim}) keeps {FRACTION:.1%} of them; plan tables made in "
      f"{planner.tables.seconds:.0f} s")

# %% [markdown]
# ## Drag the budget
#
# Top: the planned width of every site (green) and uniform's (dashed grey) at the same count. Bottom: the
# loss increase each site is charged (nats) under each. Hover a site for the price that chose its width: the
# predicted loss one more step of width would save, per parameter it costs.

# %%
plan = sw.plan_explorer(planner, fraction=FRACTION, lo=max(0.3, FRACTION - 0.3), hi=1.0)
sw.show(plan, INTERACTIVE)

# %% [markdown]
# ## Measured: the plan against uniform slicing at the same parameter count
#
# Both are sliced for real (SliceGPT's interleaved calibration on the same calibration windows) and measured
# on the same eval windows. `slicedim sweep --plan` does the same at several budgets, with the
# multiple-choice task too.

# %%
measured = {}
if MEASURE:
    table, summary = sw.plan_table(planner, FRACTION)
    for name, dims in (("uniform", planner.uniform(uniform_dim)), ("planned", summary["dims"])):
        result, ev = setup.slice(dims, BATCH_SIZE)
        measured[name] = {"params": planner.cost.count(dims), "ppl": ev.ppl, "acc": ev.accuracy}
    for name, m in measured.items():
        print(f"{name:>8}: {m['params']:,} parameters, PPL {m['ppl']:.3f}, top-1 {m['acc']:.4f}")
    change = 100 * (measured["planned"]["ppl"] / measured["uniform"]["ppl"] - 1)
    print(f"planned vs uniform: {change:+.1f}% perplexity at the same parameter count")

# %% [markdown]
# ## Exercises
#
# 1. At the default budget, which sites does the plan keep wider than uniform, and which narrower? Are they
#    the sites whose charged loss (bottom panel) is largest under uniform slicing?
# 2. The attention output sites and the MLP output sites alternate along depth. Which of the two does the plan
#    cut more, and why (hover: parameters per kept direction)?
# 3. Drag the budget down from 90 % to 60 % of the dense parameters. Where does the width go first? Does the
#    predicted gain over uniform grow or shrink? Check one budget for real with `slicedim sweep --plan`.

# %% [markdown]
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the slider from code — which fires the same callback as dragging — and the last cell saves every
# figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    plan.controls["budget"].value = round(max(plan.controls["budget"].min, FRACTION - 0.1), 3)
    u = plan.state["ppl_uniform"]
    print(f"{plan.state['params']:,} parameters: predicted PPL {plan.state['ppl_plan']:.2f} planned, "
          + ("no uniform width fits" if u is None else f"{u:.2f} uniform"))

# %%
record = sw.save_run(OUT_DIR, "06_width_plan", explorers={"plan": plan},
                     extra={"fraction": FRACTION, "state": plan.state, "measured": measured})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
