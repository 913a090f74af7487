"""SliceGPT slicing: fold the norms, rotate every residual site into its PCA basis, keep d_s directions.

Interleaved calibration, layer by layer: layer i's bases come from activations that already went through
the sliced layers 0..i-1. Activations wait at the layer boundary (on the host when the model is), so only
one layer at a time needs to be on the compute device.

Memory: the dense weights exist once. Each sliced piece is built as its dense piece is consumed, and the
consumed piece is dropped (`inplace`) or, for a memory-mapped checkpoint, its pages are given back
(`core.memory.release_pages`); without `inplace` the model is an alias copy (`core.memory.alias_copy`:
new module objects on the same storage) and the sliced model copies only what it keeps unchanged.

Exactness: norms keep dividing by the original width D, and RMSNorm models' embeddings are NOT mean-centred
(the reference implementation centres them, which changes the function); at d_s = D the sliced model
computes the dense function up to rounding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..adapters import Adapter, adapter_for
from ..errors import UsageError
from .export import sliced_config
from .folding import assign, centre, fold_reader, map_rows, norm_fold
from .memory import alias_copy, own_tensors, release_pages, storage_ptrs, tensors_of
from .modeling_sliced import DimRMSNorm, MapBackNorm, SlicedForCausalLM, _set_module
from .nll import next_token_ce
from .pca import SitePCA
from .replay import layer_inputs
from .sites import check_sites, is_parallel, layers_of, sites_for
from .slice_layer import Run, pca_of, rotate, slice_layer

# ----------------------------------------------------------------------------- the algorithm


@dataclass
class SliceResult:
    """The sliced model and what calibration found: per-site PCA, the bases used (D x d_s, float64) and the
    sliced model's mean next-token loss on the calibration windows (a by-product, not an eval)."""

    model: SlicedForCausalLM
    dims: list[int]
    bases: list[Float[Tensor, "d_model d_site"]]
    pcas: list[SitePCA | None]
    cal_loss: float
    settings: dict = field(default_factory=dict)


def _check_inputs(
    model: nn.Module, sites: list, cal_ids: Tensor, dims: list[int], final_orientation: str
) -> None:
    check_sites(len(dims), model.config.num_hidden_layers, parallel=is_parallel(sites))
    if final_orientation not in ("pca", "random"):
        raise UsageError(f"final orientation must be pca or random, got {final_orientation!r}")
    if cal_ids.ndim != 2 or cal_ids.shape[0] < 1:
        raise UsageError("need at least one calibration window")
    if cal_ids.numel() < max(dims) and max(dims) < model.config.hidden_size:
        warnings.warn(f"{cal_ids.numel()} calibration tokens < kept width {max(dims)}: second moments are "
                      "rank-deficient and directions past their rank are an arbitrary pick", stacklevel=3)


def _place(model: nn.Module, run: Run) -> None:
    """Everything but the decoder layers goes to the compute device (the host pages it leaves are given
    back); layers visit it one at a time."""
    layers = model.get_submodule(run.adapter.layers)
    parent, _, attr = run.adapter.layers.rpartition(".")
    setattr(model.get_submodule(parent), attr, nn.ModuleList())
    host = tensors_of(model)
    model.to(run.dev)
    setattr(model.get_submodule(parent), attr, layers)
    if run.dev != run.home:
        release_pages(host)


def _embed_inputs(model: nn.Module, run: Run, cal_ids: Tensor, batch_size: int) -> tuple[list, list]:
    """Site 0's residual (the embeddings, mean-free for LayerNorm models) and each layer's keyword arguments
    (`kws[batch][layer]`), batch by batch, parked. Layer 0 stays on the compute device, to be sliced next."""
    layers = model.get_submodule(run.adapter.layers)
    xs, kws = [], []
    host = tensors_of(layers[0])
    layers[0].to(run.dev)
    for ids in torch.split(cal_ids, batch_size):
        h, kw = layer_inputs(model, run.adapter, ids.to(run.dev))
        h = h - h.mean(-1, keepdim=True) if run.centred else h
        xs.append(h.to(run.offload))
        kws.append(kw)
    if run.dev != run.home:
        release_pages(host)
    return xs, kws


def _slice_table(embed: nn.Module, basis: Float[Tensor, "d_model d_site"], centred: bool) -> None:
    """An embedding table (tokens or positions) emits site 0's coordinates directly, in place (row blocks:
    a token's row is its own); the dense table's pages are given back."""
    old = embed.weight
    b = basis.to(old.device)
    w, _ = map_rows(lambda r: (centre(old[r].double().T, centred).T @ b, None), *old.shape, old.dtype,
                    old.device, consumed=old)
    embed.weight = nn.Parameter(w, requires_grad=False)
    embed.embedding_dim = w.shape[1]
    release_pages([old])


def _slice_embedding(model: nn.Module, run: Run, basis: Tensor) -> None:
    """Untied: the token (and position) embeddings emit site 0's coordinates (a tied one keeps its basis).
    The tables change in place, so a scaled lookup (Gemma's sqrt(D)) keeps its scale."""
    _slice_table(model.get_submodule(run.adapter.embed), basis, run.centred)
    if run.adapter.pos_embed:
        _slice_table(model.get_submodule(run.adapter.pos_embed), basis, run.centred)


def _slice_head(
    model: nn.Module, run: Run, head_w: Tensor, head_b: Tensor | None, last_basis: Tensor,
    last_pca: SitePCA | None
) -> None:
    """Final norm and LM head. Tied (or `keep_io`): a norm that maps the last site back to D before the
    shared (or untouched) head; untied: the head reads the last site's coordinates, the norm's scale (and
    bias) folded in."""
    a = run.adapter
    g_final, b_final = norm_fold(model.get_submodule(a.final_norm), a)
    if run.keep_io:
        norm = MapBackNorm(run.D, run.eps, run.dims[-1], bias=b_final is not None).to(run.dev, run.dtype)
        norm.weight.copy_(g_final)
        if b_final is not None:
            norm.bias.copy_(b_final)
        if run.dims[-1] == run.D and last_pca is None:
            norm.output_map.weight.copy_(torch.eye(run.D))
        else:
            norm.output_map.weight.copy_(last_basis)
        _set_module(model, a.final_norm, norm)
        if not run.tied:  # an untied head reading D: its own copy of the original weights
            head = nn.Linear(run.D, head_w.shape[0], bias=head_b is not None, device="meta")
            assign(head, head_w, head_b, norm)  # the dense tensors themselves (a copy only to another dtype)
            _set_module(model, a.lm_head, head.to(run.dev))
        return
    like = model.get_submodule(a.final_norm)
    _set_module(model, a.final_norm, DimRMSNorm(run.D, run.eps))
    head = nn.Linear(run.dims[-1], head_w.shape[0], bias=False, device="meta")

    def rows(r: slice) -> tuple[Tensor, Tensor | None]:  # the head's rows (one per token) are its own
        lin = SimpleNamespace(weight=head_w[r], bias=None if head_b is None else head_b[r])
        return fold_reader(lin, (g_final, b_final), last_basis)

    w, bias = map_rows(rows, *head_w.shape, run.dtype, head_w.device, consumed=head_w)
    if bias is not None:
        head.bias = nn.Parameter(torch.empty(head_w.shape[0], device="meta"))
    assign(head, w, bias, like if hasattr(like, "weight") else model.get_submodule(a.embed))
    _set_module(model, a.lm_head, head.to(run.dev))


def _assemble(model: nn.Module, run: Run, settings: dict) -> SlicedForCausalLM:
    """Move the transformed modules into a `SlicedForCausalLM` (the class exports load with)."""
    a = run.adapter
    cfg = sliced_config(model, a, run.dims, run.tied, settings, run.keep_io)
    cfg.dtype = run.dtype
    with torch.device("meta"):
        sliced = SlicedForCausalLM(cfg)
    sd = model.state_dict()
    if run.tied:
        sd.pop(a.lm_head + ".weight", None)
    missing, unexpected = sliced.load_state_dict(sd, assign=True, strict=False)
    if unexpected or [k for k in missing if not (run.tied and k == a.lm_head + ".weight")]:
        raise RuntimeError(f"sliced state dict mismatch: missing {missing}, unexpected {unexpected}")
    own = dict(sliced.named_buffers())
    for name, buf in model.named_buffers():  # non-persistent buffers (rotary frequencies) are not in sd
        # one the sliced model's config does not declare is one it never reads (e.g. the global layers'
        # rotary of a Gemma 3 cut to its first, local layers by `keep_first_layers`)
        if name in own and own[name].is_meta:
            mod, _, bname = name.rpartition(".")
            sliced.get_submodule(mod).register_buffer(bname, buf, persistent=False)
    if run.tied:
        sliced.get_submodule(a.lm_head).weight = sliced.get_input_embeddings().weight
    return sliced.eval()


@torch.no_grad()
def slice_model(
    model: nn.Module,
    cal_ids: Int[Tensor, "n pos"],
    dims: list[int],
    *,
    untie_head: bool = False,
    final_orientation: str = "pca",
    seed: int = 0,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    inplace: bool = False,
    progress: bool = True,
) -> SliceResult:
    """Calibrate (interleaved PCA) and slice `model` to the per-site widths `dims` (one per site of
    `core.sites.model_sites`: 2L+1 for sequential layers, L+1 for parallel ones).

    A tied embedding/head stays tied (the embedding keeps its basis, a D x d_0 map follows the lookup and a
    d_L x D map precedes the final norm) unless `untie_head`. `inplace=True` consumes `model` layer by layer;
    otherwise `model` is left as it was (an alias copy is sliced: no dense weight is duplicated, and the
    sliced model copies only the tensors it keeps unchanged). `device`: where the layers are calibrated
    and sliced, one at a time, while the model stays where it is. Weights stay in the model's dtype, the
    PCA and the transforms run in float64. LayerNorm models: every writer is made mean-free and each
    LayerNorm's scale and bias are folded into its readers (see the module docstring).
    """
    adapter, cfg = adapter_for(model), model.config
    sites = sites_for(adapter, cfg.num_hidden_layers)
    _check_inputs(model, sites, cal_ids, dims, final_orientation)
    foreign = None if inplace else storage_ptrs(model)
    model = model if inplace else alias_copy(model)
    model.eval()
    home = next(model.parameters()).device
    dev = torch.device(device) if device is not None else home
    run = Run(adapter=adapter, dims=list(dims), D=cfg.hidden_size, eps=adapter.eps(cfg),
               tied=bool(getattr(cfg, "tie_word_embeddings", False)) and not untie_head, dev=dev, home=home,
               offload=home if home.type == "cpu" else dev, dtype=next(model.parameters()).dtype,
               orientation=final_orientation, seed=seed)
    settings = {"final_orientation": final_orientation, "seed": seed, "cal_windows": int(cal_ids.shape[0]),
                "cal_seqlen": int(cal_ids.shape[1])}

    _place(model, run)
    xs, kws = _embed_inputs(model, run, cal_ids, batch_size)
    pcas: list[SitePCA | None] = [pca_of(xs)]
    bases = [run.basis(pcas[0], 0)]
    cs = rotate(xs, bases[0], run)
    head = model.get_submodule(adapter.lm_head)
    head_w = head.weight.detach()  # nothing writes into it: slicing replaces tensors, never edits them
    head_b = None if getattr(head, "bias", None) is None else head.bias.detach()
    del head
    if not run.keep_io:
        _slice_embedding(model, run, bases[0])

    layers = model.get_submodule(adapter.layers)
    L = cfg.num_hidden_layers
    for ls in tqdm(layers_of(sites), desc="calibrate+slice", disable=not progress):
        host = tensors_of(layers[ls.layer])
        new, cs, ps, bs = slice_layer(layers[ls.layer], ls, run, cs, [kw[ls.layer] for kw in kws],
                                      bases[ls.inp], ls.layer == L - 1)
        pcas += ps
        bases += bs
        if run.keep_io and ls.layer == 0:  # the lookup (+ positions) in D, made mean-free, then basis 0
            new.input_map = nn.Linear(run.D, dims[0], bias=False, device="meta")
            assign(new.input_map, centre(bases[0], run.centred).T, None, new.attn_shortcut)
        layers[ls.layer] = new.to(home)
        release_pages(host)
        del host, new

    _slice_head(model, run, head_w, head_b, bases[-1], pcas[-1])
    if not run.tied:
        release_pages([head_w, head_b])
    del head_w, head_b
    sliced = _assemble(model, run, settings)
    cal_loss = _cal_loss(sliced, adapter, cs, cal_ids)
    sliced = sliced.to(home)
    if foreign is not None:
        own_tensors(sliced, foreign)
    return SliceResult(model=sliced, dims=list(dims), bases=[b.cpu() for b in bases], pcas=pcas,
                       cal_loss=cal_loss, settings=settings)


@torch.no_grad()
def _cal_loss(sliced: nn.Module, adapter: Adapter, cs: list[Tensor], cal_ids: Tensor) -> float:
    """Mean next-token loss of the sliced model on the calibration windows, from the last site's values."""
    norm, head = sliced.get_submodule(adapter.final_norm), sliced.get_submodule(adapter.lm_head)
    dev = next(head.parameters()).device
    total, count = 0.0, 0
    for c, ids in zip(cs, torch.split(cal_ids, cs[0].shape[0])):
        ce = next_token_ce(head(norm(c.to(dev))), ids.to(dev))
        total += ce.double().sum().item()
        count += ce.numel()
    return total / count
