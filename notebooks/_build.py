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
BATCH_SIZE = 4
MAX_LAYERS = None  # keep only the first N decoder layers for a quick smoke run; None keeps them all'''

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

**How long.** Default sizes (16 × 256 calibration and 16 × 256 eval tokens): the whole notebook runs in
32 s on an idle 2-core CPU (7.4 minutes when the CPU was shared with other jobs), most of it evaluation and
calibration + slicing.
On a GPU: not measured (the embedded model cannot travel to our GPU machine); expect well under a minute.
The CI run (2 × 64 tokens) takes about a minute.
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
sw.keep_layers(lm.model, MAX_LAYERS)
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

Top: the eigenvalues of the residual stream's second moment at one site (each direction's share of the
energy), the kept d' directions in blue, the discarded tail in red. Bottom: the fraction of the energy each
site discards. Move the site slider. (The last site feeds the LM head and keeps its full width.)
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


# ----------------------------------------------------------------------------- 04 theory

THEORY = [
    md("""
# 04 · Theory: why slicing is a projection, and where the performance relations come from

**What it shows.** A teaching notebook, each step checked live on the real model:
1. RMSNorm commutes with orthogonal maps, so every residual site can be rotated into its PCA basis;
2. folding the norms and rotating every site changes nothing (slice at full width: same logits);
3. cutting to d' directions is the same as projecting the dense model's residual stream at every write site
   (emulation with TransformerLens hooks: same logits as the sliced model);
4. retained energy is not loss: ~99% of the energy kept can still cost a lot of perplexity;
5. the paper's law ln PPL(d') = (D/d') ln PPL₀ and its accuracy counterpart, against a measured point;
6. our Fisher-increment estimate from a second-order expansion of the loss, and where along depth it
   charges the loss — with a d' slider.

**How long.** Default sizes (8 × 256 calibration, 8 × 256 eval, 4 gradient windows): the whole notebook runs
in 50 s on an idle 2-core CPU (16 minutes when the CPU was shared with other jobs; two SliceGPT calibrations
dominate). On a GPU: not
measured (the embedded model cannot travel to our GPU machine); expect a minute or two. The CI run
(2 layers, 2 × 64 tokens) takes under a minute.
"""),
    params("""
DIM = 432  # the kept width the checks use
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 8
EVAL_SEQLEN = 256
GRAD_WINDOWS = 4  # calibration windows with gradients, for the Fisher estimate
"""),
    code("""
import math

from slicedim_lab import widgets as sw
from slicedim_lab.bridge import boot_bridge
from slicedim_lab.calibrate import n_sites
from slicedim_lab.corpus import load_windows
from slicedim_lab.emulate import emulated_logits
from slicedim_lab.metrics import evaluate
from slicedim_lab.models import load_model
from slicedim_lab.predict import DenseMetrics, fisher_tables, predict_point
from slicedim_lab.sites import dense_pcas, run_sites
from slicedim_lab.slicing import site_dims, slice_model

lm = load_model(MODEL, device=DEVICE)
sw.keep_layers(lm.model, MAX_LAYERS)
L, D = lm.model.config.num_hidden_layers, lm.model.config.hidden_size
cal = load_windows(lm.tokenizer, CORPUS, "calibration", CAL_SEQLEN, CAL_WINDOWS)
evw = load_windows(lm.tokenizer, CORPUS, "eval", EVAL_SEQLEN, EVAL_WINDOWS)
dense = evaluate(lm.model, evw, BATCH_SIZE)
print(f"{lm.name}: {L} layers, D = {D}, {n_sites(L)} residual sites; dense PPL {dense.ppl:.3f}, "
      f"top-1 accuracy {dense.accuracy:.4f} on {tuple(evw.shape)} eval tokens")
"""),
    md(r"""
## 1 · RMSNorm commutes with orthogonal maps

A Llama block reads its residual x through RMSNorm(x) = g ⊙ x / √(‖x‖²/D + ε). Fold the scale g into the
linear maps that read the norm's output (W ← W·diag(g)); what is left, N(x) = x / √(‖x‖²/D + ε), depends on x
only through ‖x‖. An orthogonal Q keeps norms (‖xQ‖ = ‖x‖), hence **N(xQ) = N(x)Q**. So the residual stream
can be expressed in any orthonormal basis if every reader gets W ← QᵀW... and every writer W ← WQ.

Check on real residuals (the middle site of the model, one eval window) with a random orthogonal Q:
"""),
    code("""
sites, _ = run_sites(lm.model, evw[:1].to(lm.device), logits=False)
sw.rmsnorm_invariance(sites[len(sites) // 2], eps=lm.model.config.rms_norm_eps)
"""),
    md(r"""
## 2 · Rotating every site into its PCA basis changes nothing

SliceGPT picks, per site, Q = the eigenvectors of the uncentred second moment H = Σ xᵀx of the residual on
calibration text (eigenvalues descending). With all D directions kept, the sliced model must compute the dense
function up to rounding: slicing to d' = D at every site is a test of the whole fold-and-rotate machinery.
"""),
    code("""
full = slice_model(lm.model, cal, [D] * n_sites(L), batch_size=BATCH_SIZE)
sw.compare_logits(sw.model_logits(lm.model, evw[:2]), sw.model_logits(full.model, evw[:2]))
"""),
    md(r"""
## 3 · Cutting to d' directions = projecting the residual stream

Keep the first d' columns B_s of each Q_s. Every reader of site s sees x B_s instead of x; every writer emits
coordinates in B_s; the skip connection between sites becomes B_{s'}ᵀB_s. Because the weightless norm keeps
dividing by the *original* D (‖xB‖ = ‖xBBᵀ‖), the sliced model computes exactly the dense model in which the
residual is projected with P_s = B_s B_sᵀ after the embeddings, after each attention block and after each MLP
block. In TransformerLens that is three hooks per layer (`slicedim_lab.emulate`): the block outputs are
rewritten to P(x + a) − x. Both sides below use the same bases; the logits must agree to float32 rounding.
"""),
    code("""
sliced = slice_model(lm.model, cal, site_dims(L, D, dim=DIM), batch_size=BATCH_SIZE)
bridge = boot_bridge(lm.model, lm.tokenizer)
ids = evw[:2]
emulated = emulated_logits(bridge, ids.to(lm.device), sliced.bases)
sw.compare_logits(sw.model_logits(sliced.model, ids), emulated)
"""),
    md(r"""
## 4 · Retained energy is not loss

If slicing were judged by energy, d' = 432 of 576 would look harmless: the residual stream of SmolLM2 is
dominated by a few outlier directions, and every site keeps nearly all of its energy. Move the sliders
(dense-model PCA: the bases for every d' at once, so a move costs nothing).
"""),
    code("""
pcas = dense_pcas(lm.model, cal, batch_size=BATCH_SIZE)
small = evaluate(sliced.model, evw, BATCH_SIZE)
print(f"d' = {DIM}: PPL {dense.ppl:.3f} -> {small.ppl:.3f} (x{small.ppl / dense.ppl:.2f}), "
      f"top-1 {dense.accuracy:.4f} -> {small.accuracy:.4f}")
energy = sw.spectrum_explorer(pcas, dim=DIM, site=2 * (L // 2) + 1, title="dense PCA, ")
sw.show(energy, INTERACTIVE)
"""),
    md(r"""
## 5 · The paper's relations

Xu et al. (arXiv 2503.04377) relate the sliced model's perplexity to the dense one through the sparsity
s = 1 − d'/D alone: **ln PPL₀ / ln PPL(d') = 1 − s**, i.e. ln PPL(d') = (D/d')·ln PPL₀. Since ln PPL is the
mean next-token cross-entropy, the law says the loss grows like D/d': every removed dimension costs the same
share of the loss, whatever it carried. For accuracy the paper states ln(acc/acc₀) ∝ 1 − s; the form that is
exact at s = 0 and consistent with the perplexity law is acc(d') = acc₀^(D/d') — *our reading*, not the
paper's words. A slope κ ≠ 1 (ln PPL₀/ln PPL = 1 − κ·s) is the first thing a measured point tells you:
"""),
    code("""
kappa = sw.implied_kappa(dense.ppl, small.ppl, D, DIM)
pred = predict_point(DenseMetrics(ppl=dense.ppl, acc=dense.accuracy, hidden=D), DIM)
print(f"paper at d' = {DIM}: PPL {pred['ppl_pred_paper']:.3f} (measured {small.ppl:.3f}), "
      f"top-1 {pred['acc_pred_paper']:.4f} (measured {small.accuracy:.4f}); implied slope κ = {kappa:.3f}")
law_fig = sw.paper_law_figure(dense.ppl, D, {DIM: small.ppl}, kappas=(1.0, round(kappa, 2)))
sw.show(law_fig, INTERACTIVE)
"""),
    md(r"""
## 6 · A second-order estimate from the dense model alone

Write the sliced run as the dense run plus a perturbation at every site. Site s removes
δ_s = −(I−P_s)(x_s − (I−P_{s−1})x_{s−1}): only what it *newly* cuts (a direction cut at s−1 stays cut
through the skip path and must not be charged twice). Expanding the loss to second order,
ΔL ≈ gᵀδ + ½ δᵀHδ. With labels *sampled from the model's own softmax* the first-order term vanishes in
expectation and E[g gᵀ] is the Fisher (Gauss-Newton) curvature, so ΔL ≈ ½ E_t[(g_tᵀδ_t)²]: one
forward+backward per gradient window, then a table lookup for every d' (`slicedim_lab.predict`):
PPL(d') = PPL₀·exp(Σ_s ½ mean_t (g_{s,t}·δ_{s,t})²). Its cross-site and full variants keep the cross terms.

The gradient windows are calibration windows the PCA did **not** see: the eval text is out-of-sample for
the bases, so the charged perturbation must be too (on the PCA's own windows the discarded energy is the
minimum over all bases, and the estimate comes out optimistic — the more so the fewer calibration windows).
"""),
    code("""
more = load_windows(lm.tokenizer, CORPUS, "calibration", CAL_SEQLEN, CAL_WINDOWS + GRAD_WINDOWS)
held_out = more[CAL_WINDOWS:]  # the calibration windows after the PCA's
tables = fisher_tables(lm.model, cal, pcas=pcas, batch_size=2, grad_ids=held_out)
dm = DenseMetrics(ppl=dense.ppl, acc=dense.accuracy, hidden=D, cal_nll=tables.cal_nll)
theory = sw.theory_explorer(dm, tables, measured={DIM: small.ppl}, dim=DIM)
sw.show(theory, INTERACTIVE)
"""),
    md(HEADLESS_NOTE),
    code("""
if not INTERACTIVE:
    energy.controls["dim"].value = D // 2
    energy.controls["site"].value = 1
    theory.controls["dim"].value = DIM - 64
    theory.controls["dim"].value = DIM
    print({k: round(v, 4) for k, v in theory.state.items() if k.startswith(("ppl_pred", "dloss"))})
"""),
    code("""
record = sw.save_run(OUT_DIR, "04_theory", explorers={"energy": energy, "theory": theory},
                     figures={"law": law_fig},
                     extra={"dense_ppl": dense.ppl, "sliced_ppl": small.ppl, "dim": DIM, "kappa": kappa})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
"""),
]


# ----------------------------------------------------------------------------- 01 activation flow

FLOW_SETUP = """
from slicedim_lab import widgets as sw
from slicedim_lab.corpus import load_windows
from slicedim_lab.flow import FlowSession
from slicedim_lab.models import load_model

lm = load_model(MODEL, device=DEVICE)
sw.keep_layers(lm.model, MAX_LAYERS)
L, D = lm.model.config.num_hidden_layers, lm.model.config.hidden_size
cal = load_windows(lm.tokenizer, CORPUS, "calibration", CAL_SEQLEN, CAL_WINDOWS)
evw = load_windows(lm.tokenizer, CORPUS, "eval", EVAL_SEQLEN, EVAL_WINDOWS)
session = FlowSession(lm.model, cal, evw, tokenizer=lm.tokenizer, batch_size=BATCH_SIZE, progress=True)
print(f"{lm.name}: {L} layers, D = {D}; one-off costs (s):",
      {k: round(v, 1) for k, v in session.seconds.items()})
"""

FLOW = [
    md("""
# 01 · Activation flow: where along depth a smaller representation dimension hurts

**What it shows.** The residual stream of the dense model against the same model sliced to d' (emulated
exactly with TransformerLens hooks: the residual is projected on the top-d' PCA directions at every write
site). Sliders for d' and the layer; plotly figures update live:
- the eigen-spectra of the chosen layer's two sites with the cut at d';
- along depth: the fraction of energy discarded (on calibration text, on eval text through the dense
  activations, and on the activations that actually reach each projection in the sliced model);
- the relative error ‖x̃ − x‖/‖x‖ and the cosine of the sliced residual against the dense one;
- the logit lens: KL(dense ‖ sliced) of next-token distributions read at every layer's output, and the loss;
- the prediction decomposition (tick its box; several times slower per move): how much of the loss
  increase each site's cut accounts for (integrated gradients along dense → sliced, and the first-order
  term); attributions + remainder reconstruct the sliced loss exactly.

With `dense` bases (one PCA of the dense model serves every d') a d' move costs one emulated forward pass
(plus the gradient passes of the decomposition); `interleaved` runs SliceGPT's calibration per d'.

**How long.** Default sizes (8 × 256 calibration, 2 × 256 eval tokens): the headless run — setup plus the
d' and layer moves of its last cells — takes 81 s on an idle 2-core CPU. When the CPU was shared with other
jobs: 1.5 minutes to set up, then about 1.5 minutes per d' move (about 3 with the prediction decomposition
ticked); layer moves are instant.
On a GPU: not measured (the embedded model cannot travel to our GPU machine); expect seconds per move.
The CI run (2 layers, 2 × 64 tokens) takes about a minute.
"""),
    params("""
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
"""),
    code(FLOW_SETUP),
    md("""
## Explore

Drag d' (the figures recompute when you release it) and the layer (instant: the orange band marks its two
sites along depth). Site 0 is the embeddings, site 2i+1 the residual after layer i's attention block, 2i+2
after its MLP block.
"""),
    code("""
flow = sw.flow_explorer(session, dim=DIM, layer=LAYER, basis=BASIS, attribution=ATTRIBUTION, nodes=NODES)
sw.show(flow, INTERACTIVE)
"""),
    md("One row per layer at the current d': the metrics at its output site and its summed attributions."),
    code("""
flow.state["report"].per_layer().round(4)
"""),
    md("""
## Dense bases against SliceGPT's interleaved calibration

The slider uses dense bases. SliceGPT calibrates layer by layer on activations that already went through the
sliced earlier layers; the gap between the two is itself a finding (7–13% perplexity on this model at
d' = 432 … 288 with 32 × 512 calibration tokens).
"""),
    code("""
compare = session.compare(DIM) if COMPARE_INTERLEAVED else None
compare
"""),
    md(HEADLESS_NOTE),
    code("""
if not INTERACTIVE:
    flow.controls["layer"].value = 1
    flow.controls["dim"].value = DIM - 96
    flow.controls["attribution"].value = True  # the prediction decomposition at that d'
    flow.controls["layer"].value = L - 1
    print({k: round(float(flow.state[k]), 4) for k in ("ppl_dense", "ppl_sliced", "kl")},
          {k: round(v, 4) for k, v in flow.state["layer_row"].items()})
"""),
    code("""
record = sw.save_run(OUT_DIR, "01_activation_flow", explorers={"flow": flow},
                     extra={"summary": flow.state["report"].summary, "dim": flow.state["dim"]})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
"""),
]


# ----------------------------------------------------------------------------- 02 linear maps

MAPS = [
    md("""
# 02 · Linear maps: how a layer's maps split into kept and dropped directions

**What it shows.** Slicing restricts every linear map that touches the residual stream: a *reader* (q, k, v,
gate, up — and the LM head) sees only the kept directions, W ↦ W·B; a *writer* (o, down — and the embedding)
can only write into them, W ↦ Bᵀ·W (B the site's D × d' basis). For a chosen layer and d':
- per map, the share of its output energy on real (dense, eval) activations that the kept and the dropped
  directions carry, and the share of its weight energy that survives;
- along depth, the share each kind of map sends through dropped directions;
- the singular values of one map, full against sliced (the sliced map has rank ≤ d');
- the eigen-spectra of the residual sites those maps read and write.

**How long.** The headless run (setup plus its scripted moves) takes 47 s on an idle 2-core CPU. When the
CPU was shared with other jobs: about 1.5 minutes to set up and 1.5 minutes per d' move (one emulated
forward pass and the map statistics); a layer or map move takes a second or two (singular values of that
layer's maps). On a GPU: not measured (the
embedded model cannot travel to our GPU machine); expect seconds. The CI run (2 layers, 2 × 64 tokens)
takes under a minute.
"""),
    params("""
DIM = 432  # initial kept width
LAYER = 14  # initial layer
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 2
EVAL_SEQLEN = 256
"""),
    code(FLOW_SETUP),
    md("""
## Kept and dropped directions, per map

Readers: the fractions ‖W P n‖² and ‖W (I−P) n‖² of ‖W n‖² (n the normalised residual; they need not sum to
one: the cross term can be either sign). Writers: ‖Bᵀw‖²/‖w‖² and its complement.
"""),
    code("""
maps = sw.maps_explorer(session, dim=DIM, layer=LAYER)
sw.show(maps, INTERACTIVE)
"""),
    code("""
sw.layer_maps_table(maps.state["maps"], maps.controls["layer"].value, maps.state["weight_kept"]).round(4)
"""),
    md("## The spectra those maps see (dense PCA of every site)"),
    code("""
spectra = sw.spectrum_explorer(session.pcas, dim=DIM, site=2 * LAYER + 1, title="dense PCA, ")
sw.show(spectra, INTERACTIVE)
"""),
    md(HEADLESS_NOTE),
    code("""
if not INTERACTIVE:
    maps.controls["layer"].value = 0
    maps.controls["map"].value = maps.controls["map"].options[-1][1]
    maps.controls["dim"].value = DIM - 96
    spectra.controls["dim"].value = DIM - 96
    print(maps.state["map"], round(maps.state["sigma1_ratio"], 4))
"""),
    code("""
record = sw.save_run(OUT_DIR, "02_linear_maps", explorers={"maps": maps, "spectra": spectra},
                     extra={"dim": maps.state["dim"], "layer": maps.controls["layer"].value})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
"""),
]


# ----------------------------------------------------------------------------- 03 dimension sweep

PREDICTOR_TABLE = "\n".join([
    "| predictor | formula | inputs | cost |",
    "|---|---|---|---|",
    "| `paper` | ln PPL(d') = (D/d')·ln PPL₀; acc(d') = acc₀^(D/d') (our reading of the paper's accuracy "
    "relation) | dense PPL₀, acc₀ | nothing |",
    "| `fisher` | PPL₀·exp(Σ_s ½·mean_t (g_{s,t}·δ_{s,t})²), δ_s what site s newly cuts, g sampled-label "
    "gradients | dense PCA + gradient windows | one forward+backward per gradient window, "
    "then a lookup per d' |",
    "| `fisher_cross` | ½·mean_t (Σ_s g·δ_s)²: keeps cross-site terms | same | same |",
    "| `fisher_full` | ½·(1/T)·Σ_windows (Σ_{s,t} g·δ)²: keeps all cross terms | same | same |",
    "| `fisher_semi` | as `fisher`, in semi-interleaved bases (the PCA of the stream after the upstream "
    "cuts, from dense moments) | + cross moments of neighbouring sites | per width named in advance "
    "(`SEMI_DIMS`) |",
    "| `fisher_semi_cross`, `fisher_semi_geo` | cross-site sum; geometric mean of the two | same | same |",
])
OURS_NOTE = ("**Ours** (the headline beside `paper`): `fisher` for `dense` bases, `fisher_semi` for "
             "`interleaved` (each is the Fisher sum in the bases that sweep slices with). Gradients are "
             "taken on calibration windows the PCA did not see.")

SWEEP = [
    md(f"""
# 03 · Dimension sweep: predicted against measured performance, live

**What it shows.** Perplexity, next-token accuracy and multiple-choice accuracy against the kept width d'.
The predicted curves come from the dense model alone and answer for every d' at once — the slider moves them
instantly. **Measure d'** slices the model to the slider's d' for real, evaluates it and adds the point; the
error of every predictor at the measured points is shown below. The state lives in a sweep folder
(`SWEEP_DIR`, the format of `slicedim sweep --out`): the dense metrics, the Fisher tables and every measured
point are cached there, so reopening the notebook keeps them.

Predictors (none runs a sliced model; see `slicedim_lab/predict.py`):

{PREDICTOR_TABLE}

{OURS_NOTE}

Accuracies of the Fisher predictors use the paper's coupling acc₀^(ln PPL / ln PPL₀).

**How long.** Default sizes (8 × 256 calibration, 8 × 256 eval, 4 gradient windows, 16 MC items): the
headless run — setup (cached in `SWEEP_DIR`: a rerun skips the dense evaluation and the Fisher tables) and
one measured point with `dense` bases — takes 54 s on an idle 2-core CPU (6.5 minutes of setup and 2 per
point when the CPU was shared with other jobs). A slider move is instant; `interleaved` measurements take
longer (a SliceGPT calibration per point). On a GPU: not measured
(the embedded model cannot travel to our GPU machine); expect seconds per measurement. The CI run
(2 layers, 2 × 64 tokens) takes under a minute.
"""),
    params("""
DIM = 432  # initial kept width
BASIS = "dense"  # bases for Measure: dense is fast, interleaved is SliceGPT proper
CAL_WINDOWS = 8
CAL_SEQLEN = 256
EVAL_WINDOWS = 8
EVAL_SEQLEN = 256
GRAD_WINDOWS = 4  # gradient windows of the Fisher predictors
TASKS = ["corpus-mc"]  # offline multiple choice; lm-eval task names where their datasets are reachable
MC_ITEMS = 16
SEMI_DIMS = [432, 384, 336, 288]  # widths named in advance for the semi-interleaved Fisher predictors
SWEEP_DIR = "runs/notebooks/sweep"  # relative to the notebook folder when run in Jupyter
FRESH = False  # True discards a SWEEP_DIR that holds other settings
MEASURE_DIMS = [432]  # what the headless run measures
"""),
    code("""
from slicedim_lab import widgets as sw
from slicedim_lab.sweep import SweepConfig

cfg = SweepConfig(model=MODEL, corpus=CORPUS, basis=BASIS, cal_samples=CAL_WINDOWS, cal_seqlen=CAL_SEQLEN,
                  eval_seqlen=EVAL_SEQLEN, max_eval_windows=EVAL_WINDOWS, grad_windows=GRAD_WINDOWS,
                  tasks=TASKS, mc_items=MC_ITEMS)
bench = sw.SweepBench(cfg, SWEEP_DIR, device=DEVICE, batch_size=BATCH_SIZE, fresh=FRESH,
                      max_layers=MAX_LAYERS, semi_dims=SEMI_DIMS)
print(f"dense: PPL {bench.dense.ppl:.3f}, top-1 {bench.dense.acc:.4f}, MC {bench.dense.mc_acc}; "
      f"{len(bench.rows)} point(s) already measured in {SWEEP_DIR}")
"""),
    md("""
## Drag d', then measure

The dashed line marks the slider's d'; the coloured dots are each predictor's value there; black diamonds
are measured points.
"""),
    code("""
sweep = sw.sweep_explorer(bench, dim=DIM)
sw.show(sweep, INTERACTIVE)
"""),
    md(HEADLESS_NOTE),
    code("""
if not INTERACTIVE:
    for d in MEASURE_DIMS:
        sweep.controls["dim"].value = d
        sweep.controls["measure"].click()  # slices (or projects) to d and evaluates
    sweep.controls["dim"].value = max(sweep.controls["dim"].min, DIM - 64)  # predictions only: instant
"""),
    md("Every measured point with each predictor's perplexity and signed error (%):"),
    code("""
bench.table().round(4)
"""),
    code("""
record = sw.save_run(OUT_DIR, "03_dimension_sweep", explorers={"sweep": sweep},
                     extra={"rows": bench.rows, "sweep_dir": str(SWEEP_DIR)})
print(f"saved {len(record['figures'])} figures to {OUT_DIR}; widget callbacks run: {record['callbacks']}")
"""),
]


NOTEBOOKS: dict[str, list[nbformat.NotebookNode]] = {
    "00_quickstart": QUICKSTART,
    "01_activation_flow": FLOW,
    "02_linear_maps": MAPS,
    "03_dimension_sweep": SWEEP,
    "04_theory": THEORY,
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
