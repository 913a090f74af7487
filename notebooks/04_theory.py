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
# # 04 · Theory: why slicing is a projection, and where the performance relations come from
#
# **What it shows.** A teaching notebook, each step checked live on the real model:
# 1. RMSNorm commutes with orthogonal maps, so every residual site can be rotated into its PCA basis;
# 2. folding the norms and rotating every site changes nothing (slice at full width: same logits);
# 3. cutting to d' directions is the same as projecting the dense model's residual stream at every write site
#    (emulation with TransformerLens hooks: same logits as the sliced model);
# 4. retained energy is not loss: ~99% of the energy kept can still cost a lot of perplexity;
# 5. the paper's law ln PPL(d') = (D/d') ln PPL₀ and its accuracy counterpart, against a measured point;
# 6. our Fisher-increment estimate from a second-order expansion of the loss, and where along depth it
#    charges the loss — with a d' slider;
# 7. two models side by side (SmolLM2 and Gemma 3 270M by default): their spectra, the energy their sites
#    discard along depth and their perplexity against the sparsity, measured and predicted, on one figure.
#
# **What you will learn.** Why SliceGPT can cut the residual stream at all (computational invariance), that
# a sliced model is exactly a projected dense model, why "energy kept" is a poor guide to the damage, what
# the paper's law assumes and how far it is off, how a second-order expansion does better — and that two
# models of similar size can respond very differently to the same sparsity.
#
# **How long.** Default sizes (8 × 256 calibration, 8 × 256 eval, 4 gradient windows, two models): a first Run
# All 136 s, a second 30 s (idle 2-core CPU, measured by `bench/bench_notebooks.py`). The dense metrics, the
# PCA, the sliced models, the Fisher tables and the comparison's measured points are kept in the cache
# (`CACHE_DIR`), so a second run reads them back. Not measured on a GPU. The CI run (2 layers, 2 × 64 tokens,
# SmolLM2 against itself) takes well under a minute.

# %% tags=["parameters"]
MODEL = "smollm2-135m-instruct"  # alias, local Hugging Face folder or hub id
DEVICE = "auto"  # auto | cpu | cuda
INTERACTIVE = True  # False: drive the widgets from code and save the figures (headless / CI)
OUT_DIR = "runs/notebooks"  # figures (HTML) and a JSON record of the run go here
CORPUS = "python-docs"  # python-docs (offline) | wikitext2 | path to a UTF-8 text file
BATCH_SIZE = 4
MAX_LAYERS = None  # keep only the first N decoder layers for a quick smoke run; None keeps them all
SPARSITY = 0.25  # the kept width the checks use is this sparsity's width (SliceGPT's rule)...
DIM = None  # ...unless a width is given here
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 8
EVAL_SEQLEN = 256
GRAD_WINDOWS = 4  # calibration windows with gradients, for the Fisher estimate
CACHE_DIR = ""  # the dense state is kept here for later runs; empty: $SLICEDIM_CACHE/notebooks; None: off
COMPARE_MODEL = "gemma3-270m"  # the model set beside MODEL in section 7 (same sizes); None skips it
COMPARE_SPARSITIES = [0.25, 0.5]  # where both models are measured (dense bases)
COMPARE_PREDICTORS = ["paper", "fisher"]  # predicted curves drawn for MODEL...
PREDICT_SECOND = False  # ...and, if True, for COMPARE_MODEL too

# %%
from slicedim_lab import widgets as sw
from slicedim_lab.core.bridge import boot_bridge
from slicedim_lab.core.emulate import emulated_logits
from slicedim_lab.core.replay import run_sites
from slicedim_lab.core.sites import model_layer_sites
from slicedim_lab.core.widths import model_site_dims
from slicedim_lab.predict import predict_point
from slicedim_lab.predict.registry import DenseMetrics
from slicedim_lab.widgets.setup import notebook_setup

sizes = dict(cal_windows=CAL_WINDOWS, cal_seqlen=CAL_SEQLEN, eval_windows=EVAL_WINDOWS,
             eval_seqlen=EVAL_SEQLEN, max_layers=MAX_LAYERS, grad_windows=GRAD_WINDOWS, cache_dir=CACHE_DIR)
setup = notebook_setup(MODEL, DEVICE, CORPUS, **sizes)
lm, evw, L, D = setup.lm, setup.evw, setup.n_layers, setup.hidden
DIM = DIM or setup.width(SPARSITY)
print(setup.summary())
dense = setup.dense_metrics(BATCH_SIZE)
print(f"dense PPL {dense.ppl:.3f}, top-1 accuracy {dense.accuracy:.4f} on {tuple(evw.shape)} eval tokens")

# %% [markdown]
# ## 1 · RMSNorm commutes with orthogonal maps
#
# A Llama block reads its residual x through RMSNorm(x) = g ⊙ x / √(‖x‖²/D + ε). Fold the scale g into the
# linear maps that read the norm's output (W ← W·diag(g)); what is left, N(x) = x / √(‖x‖²/D + ε), depends on
# x only through ‖x‖. An orthogonal Q keeps norms (‖xQ‖ = ‖x‖), hence **N(xQ) = N(x)Q**. So the residual
# stream can be expressed in any orthonormal basis if every reader gets W ← QᵀW... and every writer W ← WQ.
#
# Check on real residuals (the middle site of the model, one eval window) with a random orthogonal Q:

# %%
sites, _ = run_sites(lm.model, evw[:1].to(lm.device), logits=False)
sw.rmsnorm_invariance(sites[len(sites) // 2], eps=lm.model.config.rms_norm_eps)

# %% [markdown]
# ## 2 · Rotating every site into its PCA basis changes nothing
#
# SliceGPT picks, per site, Q = the eigenvectors of the uncentred second moment H = Σ xᵀx of the residual on
# calibration text (eigenvalues descending). With all D directions kept, the sliced model must compute the
# dense function up to rounding: slicing to d' = D at every site is a test of the whole fold-and-rotate
# machinery.

# %%
full, _ = setup.slice([D] * setup.n_sites, BATCH_SIZE, measure=False)
sw.compare_logits(sw.model_logits(lm.model, evw[:2]), sw.model_logits(full.model, evw[:2]))

# %% [markdown]
# ## 3 · Cutting to d' directions = projecting the residual stream
#
# Keep the first d' columns B_s of each Q_s. Every reader of site s sees x B_s instead of x; every writer
# emits coordinates in B_s; the skip connection between sites becomes B_{s'}ᵀB_s. Because the weightless norm
# keeps dividing by the *original* D (‖xB‖ = ‖xBBᵀ‖), the sliced model computes exactly the dense model in
# which the residual is projected with P_s = B_s B_sᵀ after the embeddings, after each attention block and
# after each MLP block. In TransformerLens that is three hooks per layer (`slicedim_lab.core.emulate`): the
# block outputs are rewritten to P(x + a) − x. Both sides below use the same bases; the logits must agree to
# float32 rounding.

# %%
sliced, small = setup.slice(model_site_dims(lm.model, dim=DIM), BATCH_SIZE)
bridge = boot_bridge(lm.model, lm.tokenizer)
ids = evw[:2]
emulated = emulated_logits(bridge, ids.to(lm.device), sliced.bases)
sw.compare_logits(sw.model_logits(sliced.model, ids), emulated)

# %% [markdown]
# ## 4 · Retained energy is not loss
#
# If slicing were judged by energy, a 25 % cut (d' = 432 of 576 on SmolLM2) would look harmless: the
# residual stream is dominated by a few outlier directions, and every site keeps nearly all of its energy.
# Move the sliders (dense-model PCA: the bases for every d' at once, so a move costs nothing).

# %%
pcas = setup.dense_pcas(BATCH_SIZE)
print(f"d' = {DIM}: PPL {dense.ppl:.3f} -> {small.ppl:.3f} (x{small.ppl / dense.ppl:.2f}), "
      f"top-1 {dense.accuracy:.4f} -> {small.accuracy:.4f}")
middle = model_layer_sites(lm.model)[L // 2].own[0]  # the first site the middle layer writes
energy = sw.spectrum_explorer(pcas, dim=DIM, site=middle, title="dense PCA, ")
sw.show(energy, INTERACTIVE)

# %% [markdown]
# ## 5 · The paper's relations
#
# Xu et al. (arXiv 2503.04377) relate the sliced model's perplexity to the dense one through the sparsity
# s = 1 − d'/D alone: **ln PPL₀ / ln PPL(d') = 1 − s**, i.e. ln PPL(d') = (D/d')·ln PPL₀. Since ln PPL is the
# mean next-token cross-entropy, the law says the loss grows like D/d': every removed dimension costs the same
# share of the loss, whatever it carried. For accuracy the paper states ln(acc/acc₀) ∝ 1 − s; the form that is
# exact at s = 0 and consistent with the perplexity law is acc(d') = acc₀^(D/d') — *our reading*, not the
# paper's words. A slope κ ≠ 1 (ln PPL₀/ln PPL = 1 − κ·s) is the first thing a measured point tells you:

# %%
kappa = sw.implied_kappa(dense.ppl, small.ppl, D, DIM)
pred = predict_point(DenseMetrics(ppl=dense.ppl, acc=dense.accuracy, hidden=D), DIM)
print(f"paper at d' = {DIM}: PPL {pred['ppl_pred_paper']:.3f} (measured {small.ppl:.3f}), "
      f"top-1 {pred['acc_pred_paper']:.4f} (measured {small.accuracy:.4f}); implied slope κ = {kappa:.3f}")
law_fig = sw.paper_law_figure(dense.ppl, D, {DIM: small.ppl}, kappas=(1.0, round(kappa, 2)))
sw.show(law_fig, INTERACTIVE)

# %% [markdown]
# ## 6 · A second-order estimate from the dense model alone
#
# Write the sliced run as the dense run plus a perturbation at every site. Site s removes
# δ_s = −(I−P_s)(x_s − (I−P_{s−1})x_{s−1}): only what it *newly* cuts (a direction cut at s−1 stays cut
# through the skip path and must not be charged twice). Expanding the loss to second order,
# ΔL ≈ gᵀδ + ½ δᵀHδ. With labels *sampled from the model's own softmax* the first-order term vanishes in
# expectation and E[g gᵀ] is the Fisher (Gauss-Newton) curvature, so ΔL ≈ ½ E_t[(g_tᵀδ_t)²]: one
# forward+backward per gradient window, then a table lookup for every d' (`slicedim_lab.predict`):
# PPL(d') = PPL₀·exp(Σ_s ½ mean_t (g_{s,t}·δ_{s,t})²). Its cross-site and full variants keep the cross terms.
#
# The gradient windows are calibration windows the PCA did **not** see: the eval text is out-of-sample for
# the bases, so the charged perturbation must be too (on the PCA's own windows the discarded energy is the
# minimum over all bases, and the estimate comes out optimistic — the more so the fewer calibration windows).

# %%
# setup.grad: calibration windows besides the PCA's, picked as `slicedim sweep` picks them
tables = setup.fisher_tables(pcas)
dm = DenseMetrics(ppl=dense.ppl, acc=dense.accuracy, hidden=D, cal_nll=tables.cal_nll)
theory = sw.theory_explorer(dm, tables, measured={DIM: small.ppl}, dim=DIM)
sw.show(theory, INTERACTIVE)

# %% [markdown]
# ## 7 · Two models side by side
#
# The same questions for a second model (`COMPARE_MODEL`, Gemma 3 270M by default: D = 640, 18 layers, a
# vocabulary of 262k tokens) on the same text and window sizes. The models differ in width and depth, so the
# axes are relative: direction / D, depth as a fraction of the sites, sparsity s = 1 − d'/D, and perplexity
# as a ratio to each dense model's. Measured points project the residual stream on dense bases (one PCA per
# model serves every width); the predicted curves are the dense-basis predictors (`COMPARE_PREDICTORS`, for
# the second model only with `PREDICT_SECOND`). Move s: the spectra's cut and the energy panel follow.

# %%
first = f"{lm.name}, {L} layers"
models = [sw.model_tables(setup, COMPARE_SPARSITIES, COMPARE_PREDICTORS, BATCH_SIZE, name=first)]
if COMPARE_MODEL:
    other = notebook_setup(COMPARE_MODEL, DEVICE, CORPUS, **sizes)
    print(other.summary())
    name = f"{other.lm.name}, {other.n_layers} layers"
    name += " (again)" if name == first else ""
    models.append(sw.model_tables(other, COMPARE_SPARSITIES, COMPARE_PREDICTORS if PREDICT_SECOND else (),
                                  BATCH_SIZE, name=name))
two = sw.two_models_explorer(models, SPARSITY)
sw.show(two, INTERACTIVE)
print(setup.store.summary())

# %% [markdown]
# ## Exercises
#
# 1. In section 4, drag d' until a site discards 1 % of its energy: how much has perplexity grown by then
#    (section 5's measured point gives the scale)? What does that say about energy as a criterion?
# 2. In section 6, which sites does the Fisher estimate charge most at the default d', and does its predicted
#    perplexity land closer to the measured one than the paper's law?
# 3. In section 7, move s: which model discards more energy at the same sparsity, and which loses more
#    perplexity? Is the ordering the same for both?

# %% [markdown]
# *Headless:* with `INTERACTIVE = False` (e.g. `papermill -p INTERACTIVE False`), the cell
# below sets the widgets' values from code — which fires the same callbacks as dragging — and the last cell
# saves every figure to `OUT_DIR`.

# %%
if not INTERACTIVE:
    energy.controls["dim"].value = D // 2
    energy.controls["site"].value = 1
    theory.controls["dim"].value = DIM - 64
    theory.controls["dim"].value = DIM
    two.controls["sparsity"].value = 0.5
    print({k: round(v, 4) for k, v in theory.state.items() if k.startswith(("ppl_pred", "dloss"))})

# %%
record = sw.save_run(OUT_DIR, "04_theory", explorers={"energy": energy, "theory": theory, "models": two},
                     figures={"law": law_fig},
                     extra={"dense_ppl": dense.ppl, "sliced_ppl": small.ppl, "dim": DIM, "kappa": kappa})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
