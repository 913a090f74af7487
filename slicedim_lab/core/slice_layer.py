"""One decoder layer of SliceGPT's interleaved calibration: the norms folded into the readers, each site's
basis from the parked activations (which already went through the sliced layers before), the writers and
skip paths rotated into it. `slice_layer` returns the sliced layer and its output site's coordinates;
`core.slicing.slice_model` runs it layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from jaxtyping import Float
from torch import Tensor

from ..adapters import Adapter
from .folding import assign, fold_reader, mean_free_basis, norm_fold, rotate_writer
from .modeling_sliced import DimRMSNorm, NormThenMap, SlicedDecoderLayer, _resized, _set_module
from .pca import SitePCA, pca, random_rotation, second_moment
from .sites import LayerSites

Basis = Float[Tensor, "d_model d_site"]


def pca_of(zs: list[Float[Tensor, "batch pos d_model"]]) -> SitePCA:
    """PCA of a site from its parked residuals (second moments summed batch by batch, in float64)."""
    h = None
    for z in zs:
        m = second_moment(z)
        h = m if h is None else h + m
    return pca(h)


@dataclass
class Run:
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

    def basis(self, p: SitePCA, site: int) -> Basis:
        d = self.dims[site]
        b = p.basis(d, random_rotation(d, self.seed + site) if self.orientation == "random" else None)
        return mean_free_basis(b) if self.centred else b


def rotate(zs: list[Tensor], basis: Basis, run: Run) -> list[Tensor]:
    """Coordinates of parked residuals in a site's basis (parked again)."""
    return [(z.to(run.dev) @ basis.to(run.dev, run.dtype)).to(run.offload) for z in zs]


def _block_writer(dense: nn.Module, run: Run) -> nn.Module:
    """A writer as calibration runs it, in the original basis: as it is, or (LayerNorm, Conv1D) an
    nn.Linear with its output made mean-free."""
    if not (run.centred or run.tr):
        return dense
    with torch.device("meta"):
        lin = _resized(dense, transposed=run.tr)
    D = lin.out_features
    assign(lin, *rotate_writer(dense, torch.eye(D, dtype=torch.float64), run.centred, run.tr), dense)
    return lin


def _delta_inputs(cs: list[Tensor], kws: list[dict], b_in: Basis, run: Run):
    """Each parked batch's coordinates on the device, its residual in the original basis and its kwargs."""
    for c, kw in zip(cs, kws):
        c = c.to(run.dev)
        yield c, c @ b_in.T.to(run.dev, run.dtype), _to(kw, run.dev)


def slice_layer(
    layer: nn.Module, ls: LayerSites, run: Run, cs: list[Float[Tensor, "batch pos d_in"]], kws: list[dict],
    b_in: Basis, last: bool
) -> tuple[SlicedDecoderLayer, list[Float[Tensor, "batch pos d_out"]], list[SitePCA | None], list[Basis]]:
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
        return new, rotate(zs, b_out, run), [p_out], [b_out]
    # attention block: its site from activations that went through the sliced layers before
    zs = [(x + new.attn_delta(c, **kw)).to(run.offload) for c, x, kw in _delta_inputs(cs, kws, b_in, run)]
    p_mid = pca_of(zs)
    b_mid = run.basis(p_mid, ls.mid)
    _write_block(new, a.attn_out, dense[a.attn_out], b_mid, new.attn_shortcut, b_in, dims[ls.mid], run,
                 a.attn_post_norm)
    cs = rotate(zs, b_mid, run)
    # MLP block: its site
    for p in a.mlp_in:
        assign(new.get_submodule(p), *fold_reader(dense[p], f_mlp, b_mid, run.tr), dense[p])
    _set_module(new, a.mlp_out, _block_writer(dense[a.mlp_out], run))
    zs = [(c.to(run.dev) @ b_mid.T.to(run.dev, run.dtype) + new.mlp_delta(c.to(run.dev))).to(run.offload)
          for c in cs]
    p_out, b_out = _out_basis(zs, ls, run, last)
    _write_block(new, a.mlp_out, dense[a.mlp_out], b_out, new.mlp_shortcut, b_mid, dims[ls.out], run,
                 a.mlp_post_norm)
    cs = rotate(zs, b_out, run)
    return new, cs, [p_mid, p_out], [b_mid, b_out]


def _out_basis(zs: list[Tensor], ls: LayerSites, run: Run, last: bool) -> tuple[SitePCA | None, Basis]:
    """PCA and basis of a layer's output site (a full-width last site before a tied head: the identity)."""
    if last and run.keep_io and run.dims[ls.out] == run.D:
        return None, torch.eye(run.D, dtype=torch.float64)  # original basis: no map back needed
    p_out = pca_of(zs)
    return p_out, run.basis(p_out, ls.out)


def _write_block(new: nn.Module, path: str, dense: nn.Module, b_out: Basis, shortcut: nn.Module | None,
                 b_in: Basis, d_out: int, run: Run, post: str | None = None) -> None:
    """A block's writer emits its site's coordinates; the skip path maps the input basis to the output's.
    With an output norm (`post`), the writer stays as it is and the norm becomes a weightless norm followed
    by Bᵀ·diag(scale), D x d_out (`NormThenMap`)."""
    if post is None:
        with torch.device("meta"):
            _set_module(new, path, _resized(dense, d_out=d_out, transposed=run.tr))
        assign(new.get_submodule(path), *rotate_writer(dense, b_out, run.centred, run.tr), dense)
    else:
        scale, _ = norm_fold(new.get_submodule(post), run.adapter)
        with torch.device("meta"):
            _set_module(new, post, NormThenMap(run.D, run.eps, d_out))
        m = new.get_submodule(post).output_map
        assign(m, b_out.T * scale.double().to(b_out.device)[None, :], None, dense)
    if shortcut is not None:
        assign(shortcut, b_out.T @ b_in, None, dense)


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
