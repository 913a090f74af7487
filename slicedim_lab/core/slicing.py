"""SliceGPT slicing: fold the norms, rotate every residual site into its PCA basis, keep d_s directions.

Interleaved calibration, layer by layer: layer i's bases come from activations that already went through
the sliced layers 0..i-1. Activations wait at the layer boundary (on the host when the model is), so only
one layer at a time needs to be on the compute device.

Exactness: norms keep dividing by the original width D, and RMSNorm models' embeddings are NOT mean-centred
(the reference implementation centres them, which changes the function); at d_s = D the sliced model
computes the dense function up to rounding.
"""

from __future__ import annotations

import copy
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
from .folding import assign, centre, fold_reader, mean_free_basis, norm_fold, rotate_writer
from .modeling_sliced import (
    DimRMSNorm,
    MapBackNorm,
    SlicedDecoderLayer,
    SlicedForCausalLM,
    _resized,
    _set_module,
)
from .nll import next_token_ce
from .pca import SitePCA, pca, random_rotation, second_moment
from .replay import layer0_inputs
from .sites import LayerSites, check_sites, is_parallel, layers_of, sites_for

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


def _pca_of(zs: list[Tensor]) -> SitePCA:
    h = None
    for z in zs:
        m = second_moment(z)
        h = m if h is None else h + m
    return pca(h)


@dataclass
class _Run:
    """What every step of one slicing run needs: devices, dtype, width, epsilon and the basis choice."""

    adapter: Adapter
    dims: list[int]
    D: int
    eps: float
    tied: bool
    dev: torch.device  # where the layer being sliced runs
    home: torch.device  # where the model lives
    offload: torch.device  # where activations wait between layers
    dtype: torch.dtype
    orientation: str
    seed: int

    @property
    def centred(self) -> bool:
        return self.adapter.centred

    @property
    def keep_io(self) -> bool:
        """The embedding output and the final norm's output stay D wide (a tied head, or an architecture
        that reshapes its output to its embeddings' width): a D x d_0 map follows the lookup, a d_L x D map
        precedes the final norm."""
        return self.tied or self.adapter.full_width_io

    @property
    def tr(self) -> bool:
        return self.adapter.transposed

    def basis(self, p: SitePCA, site: int) -> Tensor:
        d = self.dims[site]
        b = p.basis(d, random_rotation(d, self.seed + site) if self.orientation == "random" else None)
        return mean_free_basis(b) if self.centred else b


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


def _place(model: nn.Module, run: _Run) -> None:
    """Everything but the decoder layers goes to the compute device; layers visit it one at a time."""
    layers = model.get_submodule(run.adapter.layers)
    parent, _, attr = run.adapter.layers.rpartition(".")
    setattr(model.get_submodule(parent), attr, nn.ModuleList())
    model.to(run.dev)
    setattr(model.get_submodule(parent), attr, layers)


def _embed_inputs(model: nn.Module, run: _Run, cal_ids: Tensor, batch_size: int) -> tuple[list, list]:
    """Site 0's residual (the embeddings, mean-free for LayerNorm models) and every layer's keyword arguments,
    batch by batch, parked."""
    layers = model.get_submodule(run.adapter.layers)
    xs, kws = [], []
    layers[0].to(run.dev)
    for ids in torch.split(cal_ids, batch_size):
        h, kw = layer0_inputs(model, run.adapter, ids.to(run.dev))
        h = h - h.mean(-1, keepdim=True) if run.centred else h
        xs.append(h.to(run.offload))
        kws.append(kw)
    layers[0].to(run.home)
    return xs, kws


def _rotate(zs: list[Tensor], basis: Tensor, run: _Run) -> list[Tensor]:
    """Coordinates of parked residuals in a site's basis (parked again)."""
    return [(z.to(run.dev) @ basis.to(run.dev, run.dtype)).to(run.offload) for z in zs]


def _slice_table(embed: nn.Module, basis: Tensor, centred: bool) -> None:
    """An embedding table (tokens or positions) emits site 0's coordinates directly, in place."""
    w = centre(embed.weight.double().T, centred).T @ basis.to(embed.weight.device)
    embed.weight = nn.Parameter(w.to(embed.weight.dtype).contiguous(), requires_grad=False)
    embed.embedding_dim = w.shape[1]


def _slice_embedding(model: nn.Module, run: _Run, basis: Tensor) -> None:
    """Untied: the token (and position) embeddings emit site 0's coordinates (a tied one keeps its basis).
    The tables change in place, so a scaled lookup (Gemma's sqrt(D)) keeps its scale."""
    _slice_table(model.get_submodule(run.adapter.embed), basis, run.centred)
    if run.adapter.pos_embed:
        _slice_table(model.get_submodule(run.adapter.pos_embed), basis, run.centred)


def _block_writer(dense: nn.Module, run: _Run) -> nn.Module:
    """A writer as calibration runs it, in the original basis: as it is, or (LayerNorm, Conv1D) an
    nn.Linear with its output made mean-free."""
    if not (run.centred or run.tr):
        return dense
    with torch.device("meta"):
        lin = _resized(dense, transposed=run.tr)
    D = lin.out_features
    assign(lin, *rotate_writer(dense, torch.eye(D, dtype=torch.float64), run.centred, run.tr), dense)
    return lin


def _delta_inputs(cs: list[Tensor], kws: list[dict], b_in: Tensor, run: _Run):
    """Each parked batch's coordinates on the device, its residual in the original basis and its kwargs."""
    for c, kw in zip(cs, kws):
        c = c.to(run.dev)
        yield c, c @ b_in.T.to(run.dev, run.dtype), _to(kw, run.dev)


def _slice_layer(
    layer: nn.Module, ls: LayerSites, run: _Run, cs: list[Tensor], kws: list[dict], b_in: Tensor, last: bool
) -> tuple[SlicedDecoderLayer, list[Tensor], list[SitePCA | None], list[Tensor]]:
    """Calibrate and slice one decoder layer on the parked coordinates `cs` of its input site (basis `b_in`):
    returns the sliced layer, the coordinates at its output site, and the PCAs and bases of its own sites
    (two for a sequential layer, one for a parallel one)."""
    a, dims = run.adapter, run.dims
    layer = layer.to(run.dev)
    f_attn = norm_fold(layer.get_submodule(a.attn_norm), a)
    f_mlp = norm_fold(layer.get_submodule(a.mlp_norm), a)
    dense = {p: layer.get_submodule(p) for p in (*a.attn_in, *a.mlp_in, a.attn_out, a.mlp_out)}
    shape = (dims[ls.inp], None if ls.parallel else dims[ls.mid], dims[ls.out])
    with torch.device("meta"):
        _shape_layer(layer, a, shape, run.D, run.eps)
        new = SlicedDecoderLayer(layer, a.layout(), shape, None)
    for p in a.attn_in:
        assign(new.get_submodule(p), *fold_reader(dense[p], f_attn, b_in, run.tr), dense[p])
    _set_module(new, a.attn_out, _block_writer(dense[a.attn_out], run))
    if ls.parallel:  # one site: attention and MLP both read the layer input, their writes are summed
        for p in a.mlp_in:
            assign(new.get_submodule(p), *fold_reader(dense[p], f_mlp, b_in, run.tr), dense[p])
        _set_module(new, a.mlp_out, _block_writer(dense[a.mlp_out], run))
        zs = [(x + new.attn_delta(c, **kw) + new.mlp_delta(c)).to(run.offload)
              for c, x, kw in _delta_inputs(cs, kws, b_in, run)]
        p_out, b_out = _out_basis(zs, ls, run, last)
        _write_block(new, a.attn_out, dense[a.attn_out], b_out, new.attn_shortcut, b_in, dims[ls.out], run)
        _write_block(new, a.mlp_out, dense[a.mlp_out], b_out, None, b_in, dims[ls.out], run)
        return new, _rotate(zs, b_out, run), [p_out], [b_out]
    # attention block: its site from activations that went through the sliced layers before
    zs = [(x + new.attn_delta(c, **kw)).to(run.offload) for c, x, kw in _delta_inputs(cs, kws, b_in, run)]
    p_mid = _pca_of(zs)
    b_mid = run.basis(p_mid, ls.mid)
    _write_block(new, a.attn_out, dense[a.attn_out], b_mid, new.attn_shortcut, b_in, dims[ls.mid], run)
    cs = _rotate(zs, b_mid, run)
    # MLP block: its site
    for p in a.mlp_in:
        assign(new.get_submodule(p), *fold_reader(dense[p], f_mlp, b_mid, run.tr), dense[p])
    _set_module(new, a.mlp_out, _block_writer(dense[a.mlp_out], run))
    zs = [(c.to(run.dev) @ b_mid.T.to(run.dev, run.dtype) + new.mlp_delta(c.to(run.dev))).to(run.offload)
          for c in cs]
    p_out, b_out = _out_basis(zs, ls, run, last)
    _write_block(new, a.mlp_out, dense[a.mlp_out], b_out, new.mlp_shortcut, b_mid, dims[ls.out], run)
    cs = _rotate(zs, b_out, run)
    return new, cs, [p_mid, p_out], [b_mid, b_out]


def _out_basis(zs: list[Tensor], ls: LayerSites, run: _Run, last: bool) -> tuple[SitePCA | None, Tensor]:
    """PCA and basis of a layer's output site (a full-width last site before a tied head: the identity)."""
    if last and run.keep_io and run.dims[ls.out] == run.D:
        return None, torch.eye(run.D, dtype=torch.float64)  # original basis: no map back needed
    p_out = _pca_of(zs)
    return p_out, run.basis(p_out, ls.out)


def _write_block(new: nn.Module, path: str, dense: nn.Module, b_out: Tensor, shortcut: nn.Module | None,
                 b_in: Tensor, d_out: int, run: _Run) -> None:
    """A block's writer emits its site's coordinates; the skip path maps the input basis to the output's."""
    with torch.device("meta"):
        _set_module(new, path, _resized(dense, d_out=d_out, transposed=run.tr))
    assign(new.get_submodule(path), *rotate_writer(dense, b_out, run.centred, run.tr), dense)
    if shortcut is not None:
        assign(shortcut, b_out.T @ b_in, None, dense)


def _slice_head(
    model: nn.Module, run: _Run, head_w: Tensor, head_b: Tensor | None, last_basis: Tensor,
    last_pca: SitePCA | None
) -> None:
    """Final norm and LM head. Tied (or `keep_io`): a norm that maps the last site back to D before the
    shared (or untouched) head; untied: the head reads the last site's coordinates, the norm's scale (and
    bias) folded in."""
    a = run.adapter
    g_final, b_final = norm_fold(model.get_submodule(a.final_norm), a)
    if run.keep_io:
        norm = MapBackNorm(run.D, run.eps, run.dims[-1], bias=b_final is not None).to(run.home, run.dtype)
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
            assign(head, head_w.double(), None if head_b is None else head_b.double(), norm)
            _set_module(model, a.lm_head, head.to(run.home))
        return
    like = model.get_submodule(a.final_norm)
    _set_module(model, a.final_norm, DimRMSNorm(run.D, run.eps))
    head = nn.Linear(run.dims[-1], head_w.shape[0], bias=False, device="meta")
    w, bias = fold_reader(SimpleNamespace(weight=head_w, bias=head_b), (g_final, b_final), last_basis)
    if bias is not None:
        head.bias = nn.Parameter(torch.empty(head_w.shape[0], device="meta"))
    assign(head, w, bias, like if hasattr(like, "weight") else model.get_submodule(a.embed))
    _set_module(model, a.lm_head, head.to(run.home))


def _assemble(model: nn.Module, run: _Run, settings: dict) -> SlicedForCausalLM:
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
    for name, buf in model.named_buffers():  # non-persistent buffers (rotary frequencies) are not in sd
        if sliced.get_buffer(name).is_meta:
            mod, _, bname = name.rpartition(".")
            sliced.get_submodule(mod).register_buffer(bname, buf, persistent=False)
    if run.tied:
        sliced.get_submodule(a.lm_head).weight = sliced.get_input_embeddings().weight
    return sliced.to(run.home).eval()


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
    d_L x D map precedes the final norm) unless `untie_head`. `inplace=True` consumes `model` layer by layer
    (less host memory); otherwise a copy is sliced. LayerNorm models: every writer is made mean-free and each
    LayerNorm's scale and bias are folded into its readers (see the module docstring).
    """
    adapter, cfg = adapter_for(model), model.config
    sites = sites_for(adapter, cfg.num_hidden_layers)
    _check_inputs(model, sites, cal_ids, dims, final_orientation)
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    home = next(model.parameters()).device
    dev = torch.device(device) if device is not None else home
    run = _Run(adapter=adapter, dims=list(dims), D=cfg.hidden_size, eps=adapter.eps(cfg),
               tied=bool(getattr(cfg, "tie_word_embeddings", False)) and not untie_head, dev=dev, home=home,
               offload=home if home.type == "cpu" else dev, dtype=next(model.parameters()).dtype,
               orientation=final_orientation, seed=seed)
    settings = {"final_orientation": final_orientation, "seed": seed, "cal_windows": int(cal_ids.shape[0]),
                "cal_seqlen": int(cal_ids.shape[1])}

    _place(model, run)
    xs, kws = _embed_inputs(model, run, cal_ids, batch_size)
    pcas: list[SitePCA | None] = [_pca_of(xs)]
    bases = [run.basis(pcas[0], 0)]
    cs = _rotate(xs, bases[0], run)
    head = model.get_submodule(adapter.lm_head)
    head_w = head.weight.detach().clone()  # may share storage with embed
    head_b = None if getattr(head, "bias", None) is None else head.bias.detach().clone()
    if not run.keep_io:
        _slice_embedding(model, run, bases[0])

    layers = model.get_submodule(adapter.layers)
    L = cfg.num_hidden_layers
    for ls in tqdm(layers_of(sites), desc="calibrate+slice", disable=not progress):
        new, cs, ps, bs = _slice_layer(layers[ls.layer], ls, run, cs, kws, bases[ls.inp], ls.layer == L - 1)
        pcas += ps
        bases += bs
        if run.keep_io and ls.layer == 0:  # the lookup (+ positions) in D, made mean-free, then basis 0
            new.input_map = nn.Linear(run.D, dims[0], bias=False, device="meta")
            assign(new.input_map, centre(bases[0], run.centred).T, None, new.attn_shortcut)
        layers[ls.layer] = new.to(home)

    _slice_head(model, run, head_w, head_b, bases[-1], pcas[-1])
    sliced = _assemble(model, run, settings)
    return SliceResult(model=sliced, dims=list(dims), bases=[b.cpu() for b in bases], pcas=pcas,
                       cal_loss=_cal_loss(sliced, adapter, cs, cal_ids), settings=settings)


def _to(kw: dict, dev: torch.device) -> dict:
    def move(v):
        if isinstance(v, Tensor):
            return v.to(dev)
        if isinstance(v, tuple):
            return tuple(move(x) for x in v)
        return v

    return {k: move(v) for k, v in kw.items()}


def _shape_layer(layer: nn.Module, adapter: Adapter, shape: tuple, D: int, eps: float) -> None:
    """Replace the layer's norms by weightless D-norms and its readers by empty (meta) resized maps (biased
    where a LayerNorm's bias folds in)."""
    d_in, d_mid, _ = shape
    tr, centred = adapter.transposed, adapter.centred
    for p in adapter.attn_in:
        _set_module(layer, p, _resized(layer.get_submodule(p), d_in=d_in, transposed=tr, bias=centred))
    for p in adapter.mlp_in:
        _set_module(layer, p,
                    _resized(layer.get_submodule(p), d_in=d_mid or d_in, transposed=tr, bias=centred))
    _set_module(layer, adapter.attn_norm, DimRMSNorm(D, eps))
    _set_module(layer, adapter.mlp_norm, DimRMSNorm(D, eps))


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
