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
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .adapters import Adapter, adapter_for
from .calibrate import SitePCA, layer0_inputs, n_sites, pca, random_rotation, second_moment
from .errors import UsageError
from .modeling_sliced import MapBackNorm, SlicedConfig, SlicedDecoderLayer, SlicedForCausalLM, _set_module
from .modeling_sliced import shape_sliced as _shape_sliced  # noqa: F401  (re-exported for tests)
from .size import count_params  # noqa: F401  (part of this module's API)

# ----------------------------------------------------------------------------- widths


def dim_for_sparsity(sparsity: float, hidden: int, round_interval: int = 8) -> int:
    """d' = int((1 - s) * D), rounded down to a multiple of `round_interval` (SliceGPT's rule)."""
    if not 0 <= sparsity < 1:
        raise UsageError(f"sparsity must be in [0, 1), got {sparsity}")
    if round_interval < 1:
        raise UsageError(f"round interval must be >= 1, got {round_interval}")
    d = int((1 - sparsity) * hidden)
    d -= d % round_interval
    if d < 1:
        raise UsageError(
            f"sparsity {sparsity} leaves no dimension of {hidden} at round interval {round_interval}"
        )
    return d


def site_dims(
    n_layers: int,
    hidden: int,
    *,
    sparsity: float | None = None,
    dim: int | None = None,
    schedule: list[int] | None = None,
    round_interval: int = 8,
    slice_head: bool = False,
) -> list[int]:
    """Kept width of every site (2L+1 of them). With `sparsity` or `dim` the last site keeps the full width
    (the LM head reads it) unless `slice_head`; a `schedule` gives every site's width explicitly."""
    if sum(x is not None for x in (sparsity, dim, schedule)) != 1:
        raise UsageError("give exactly one of sparsity, dim or schedule")
    if schedule is not None:
        if len(schedule) != n_sites(n_layers):
            raise UsageError(
                f"a schedule needs {n_sites(n_layers)} widths (2 x {n_layers} layers + 1), "
                f"got {len(schedule)}"
            )
        dims = [int(d) for d in schedule]
    else:
        d = dim_for_sparsity(sparsity, hidden, round_interval) if sparsity is not None else int(dim)
        dims = [d] * n_sites(n_layers)
        if not slice_head:
            dims[-1] = hidden
    bad = [d for d in dims if not 1 <= d <= hidden]
    if bad:
        raise UsageError(f"kept widths must be in [1, {hidden}], got {bad[0]}")
    return dims


def load_schedule(spec: str) -> list[int]:
    """A schedule from a JSON file (a list, or {"site_dims": [...]}) or a comma-separated list."""
    if os.path.exists(spec):
        data = json.loads(Path(spec).read_text())
        data = data["site_dims"] if isinstance(data, dict) else data
    else:
        try:
            data = [int(x) for x in spec.split(",") if x.strip()]
        except ValueError:
            raise UsageError(
                f"schedule {spec!r} is neither a JSON file nor a comma-separated list of ints"
            ) from None
    if not isinstance(data, list) or not all(isinstance(x, int) for x in data):
        raise UsageError(f"schedule {spec!r} must be a list of integers")
    return data


# ----------------------------------------------------------------------------- weight transforms


def _assign(lin: nn.Module, weight: Tensor, bias: Tensor | None, like: nn.Module) -> None:
    dt, dev = like.weight.dtype, like.weight.device
    lin.weight = nn.Parameter(weight.to(dev, dt).contiguous(), requires_grad=False)
    if bias is not None:
        lin.bias = nn.Parameter(bias.to(dev, dt).contiguous(), requires_grad=False)


def _fold_reader(lin: nn.Linear, scale: Tensor, basis: Tensor) -> tuple[Tensor, Tensor | None]:
    """Reader of a normalised residual: absorb the norm's scale, then read in the site's basis."""
    w = lin.weight.double() * scale.double().to(lin.weight.device)[None, :]
    return w @ basis.to(w.device), lin.bias


def _rotate_writer(lin: nn.Linear, basis: Tensor) -> tuple[Tensor, Tensor | None]:
    """Writer into the residual: emit coordinates in the site's basis."""
    b = basis.to(lin.weight.device)
    return b.T @ lin.weight.double(), None if lin.bias is None else lin.bias.double() @ b


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


def _basis(p: SitePCA, dim: int, orientation: str, seed: int, site: int) -> Tensor:
    return p.basis(dim, random_rotation(dim, seed + site) if orientation == "random" else None)


def sliced_config(
    model: nn.Module, adapter: Adapter, dims: list[int], tied: bool, settings: dict
) -> SlicedConfig:
    cfg = model.config.to_dict()
    base_type = cfg.pop("model_type")
    for k in ("architectures", "auto_map", "tie_word_embeddings"):
        cfg.pop(k, None)
    return SlicedConfig(
        base_model_type=base_type,
        slicing={"site_dims": dims, "tied": tied, "layout": adapter.layout(), **settings},
        tie_word_embeddings=tied,
        architectures=["SlicedForCausalLM"],
        auto_map={
            "AutoConfig": "modeling_sliced.SlicedConfig",
            "AutoModelForCausalLM": "modeling_sliced.SlicedForCausalLM",
        },
        **cfg,
    )


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
    """Calibrate (interleaved PCA) and slice `model` to the per-site widths `dims`.

    A tied embedding/head stays tied (the embedding keeps its basis, a D x d_0 map follows the lookup and a
    d_L x D map precedes the final norm) unless `untie_head`. `inplace=True` consumes `model` layer by layer
    (less host memory); otherwise a copy is sliced.
    """
    adapter = adapter_for(model)
    cfg = model.config
    D, L = cfg.hidden_size, cfg.num_hidden_layers
    if len(dims) != n_sites(L):
        raise UsageError(f"need {n_sites(L)} site widths, got {len(dims)}")
    if final_orientation not in ("pca", "random"):
        raise UsageError(f"final orientation must be pca or random, got {final_orientation!r}")
    if cal_ids.ndim != 2 or cal_ids.shape[0] < 1:
        raise UsageError("need at least one calibration window")
    if cal_ids.numel() < max(dims) and max(dims) < D:
        warnings.warn(f"{cal_ids.numel()} calibration tokens < kept width {max(dims)}: second moments are "
                      "rank-deficient and directions past their rank are an arbitrary pick", stacklevel=2)
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    home = next(model.parameters()).device
    dev = torch.device(device) if device is not None else home
    dtype = next(model.parameters()).dtype
    tied = bool(getattr(cfg, "tie_word_embeddings", False)) and not untie_head
    settings = {
        "final_orientation": final_orientation,
        "seed": seed,
        "cal_windows": int(cal_ids.shape[0]),
        "cal_seqlen": int(cal_ids.shape[1]),
    }
    layers = model.get_submodule(adapter.layers)
    get = model.get_submodule

    # everything but the decoder layers goes to the compute device; layers visit it one at a time
    parent, _, attr = adapter.layers.rpartition(".")
    setattr(get(parent), attr, nn.ModuleList())
    model.to(dev)
    setattr(get(parent), attr, layers)
    offload = home if home.type == "cpu" else dev
    xs, kws = [], []
    layers[0].to(dev)
    for ids in torch.split(cal_ids, batch_size):
        h, kw = layer0_inputs(model, adapter, ids.to(dev))
        xs.append(h.to(offload))
        kws.append(kw)
    layers[0].to(home)
    pcas: list[SitePCA | None] = [_pca_of(xs)]
    bases = [_basis(pcas[0], dims[0], final_orientation, seed, 0)]
    cs = [x.to(dev) @ bases[0].to(dev, dtype) for x in xs]
    cs = [c.to(offload) for c in cs]

    head_w = get(adapter.lm_head).weight.detach().clone()  # the untied head may share storage with embed
    embed = get(adapter.embed)
    if not tied:
        w = embed.weight.double() @ bases[0].to(embed.weight.device)
        new = nn.Embedding(w.shape[0], w.shape[1], padding_idx=embed.padding_idx, device="meta")
        _assign(new, w, None, embed)
        _set_module(model, adapter.embed, new)

    eps = getattr(cfg, adapter.norm_eps)
    bar = tqdm(range(L), desc="calibrate+slice", disable=not progress)
    for i in bar:
        layer = layers[i].to(dev)
        g_attn = layer.get_submodule(adapter.attn_norm).weight.detach()
        g_mlp = layer.get_submodule(adapter.mlp_norm).weight.detach()
        dense = {
            p: layer.get_submodule(p)
            for p in (*adapter.attn_in, *adapter.mlp_in, adapter.attn_out, adapter.mlp_out)
        }
        with torch.device("meta"):
            _shape_layer(layer, adapter, dims[2 * i : 2 * i + 3], D, eps)
            new = SlicedDecoderLayer(layer, adapter.layout(), tuple(dims[2 * i : 2 * i + 3]), None)
        b_in = bases[-1]
        for p in adapter.attn_in:
            _assign(new.get_submodule(p), *_fold_reader(dense[p], g_attn, b_in), dense[p])
        # attention block: site 2i+1 from activations that went through the sliced layers before
        _set_module(new, adapter.attn_out, dense[adapter.attn_out])
        zs = [
            (c.to(dev) @ b_in.T.to(dev, dtype) + new.attn_delta(c.to(dev), **_to(kw, dev))).to(offload)
            for c, kw in zip(cs, kws)
        ]
        pcas.append(_pca_of(zs))
        b_mid = _basis(pcas[-1], dims[2 * i + 1], final_orientation, seed, 2 * i + 1)
        _set_module(new, adapter.attn_out, _meta_like(new, adapter, dense, "attn_out", dims[2 * i + 1]))
        _assign(
            new.get_submodule(adapter.attn_out),
            *_rotate_writer(dense[adapter.attn_out], b_mid),
            dense[adapter.attn_out],
        )
        _assign(new.attn_shortcut, b_mid.T @ b_in, None, dense[adapter.attn_out])
        cs = [(z.to(dev) @ b_mid.to(dev, dtype)).to(offload) for z in zs]
        bases.append(b_mid)
        # MLP block: site 2i+2
        for p in adapter.mlp_in:
            _assign(new.get_submodule(p), *_fold_reader(dense[p], g_mlp, b_mid), dense[p])
        _set_module(new, adapter.mlp_out, dense[adapter.mlp_out])
        zs = [(c.to(dev) @ b_mid.T.to(dev, dtype) + new.mlp_delta(c.to(dev))).to(offload) for c in cs]
        last = i == L - 1
        if last and tied and dims[-1] == D:
            pcas.append(None)  # full-width last site in the original basis: no map back needed
            b_out = torch.eye(D, dtype=torch.float64)
        else:
            pcas.append(_pca_of(zs))
            b_out = _basis(pcas[-1], dims[2 * i + 2], final_orientation, seed, 2 * i + 2)
        _set_module(new, adapter.mlp_out, _meta_like(new, adapter, dense, "mlp_out", dims[2 * i + 2]))
        _assign(
            new.get_submodule(adapter.mlp_out),
            *_rotate_writer(dense[adapter.mlp_out], b_out),
            dense[adapter.mlp_out],
        )
        _assign(new.mlp_shortcut, b_out.T @ b_mid, None, dense[adapter.mlp_out])
        cs = [(z.to(dev) @ b_out.to(dev, dtype)).to(offload) for z in zs]
        bases.append(b_out)
        if tied and i == 0:
            new.input_map = nn.Linear(D, dims[0], bias=False, device="meta")
            _assign(new.input_map, bases[0].T, None, dense[adapter.attn_out])
        layers[i] = new.to(home)
        del dense, zs

    # final norm and head
    g_final = get(adapter.final_norm).weight.detach()
    like = get(adapter.final_norm)
    if tied:
        norm = MapBackNorm(D, eps, dims[-1]).to(home, dtype)
        norm.weight.copy_(g_final)
        if dims[-1] == D and pcas[-1] is None:
            norm.output_map.weight.copy_(torch.eye(D))
        else:
            norm.output_map.weight.copy_(bases[-1])
        _set_module(model, adapter.final_norm, norm)
    else:
        from .modeling_sliced import DimRMSNorm

        _set_module(model, adapter.final_norm, DimRMSNorm(D, eps))
        head = nn.Linear(dims[-1], head_w.shape[0], bias=False, device="meta")
        w = (head_w.double() * g_final.double().to(head_w.device)[None, :]) @ bases[-1].to(head_w.device)
        _assign(head, w, None, like if hasattr(like, "weight") else embed)
        _set_module(model, adapter.lm_head, head.to(home))

    sliced_cfg = sliced_config(model, adapter, dims, tied, settings)
    sliced_cfg.dtype = dtype
    with torch.device("meta"):
        sliced = SlicedForCausalLM(sliced_cfg)
    sd = model.state_dict()
    if tied:
        sd.pop(adapter.lm_head + ".weight", None)
    missing, unexpected = sliced.load_state_dict(sd, assign=True, strict=False)
    if unexpected or [k for k in missing if not (tied and k == adapter.lm_head + ".weight")]:
        raise RuntimeError(f"sliced state dict mismatch: missing {missing}, unexpected {unexpected}")
    for name, buf in model.named_buffers():  # non-persistent buffers (rotary frequencies) are not in sd
        if sliced.get_buffer(name).is_meta:
            mod, _, bname = name.rpartition(".")
            sliced.get_submodule(mod).register_buffer(bname, buf, persistent=False)
    if tied:
        sliced.lm_head.weight = sliced.get_input_embeddings().weight
    sliced.to(home).eval()
    cal_loss = _cal_loss(sliced, adapter, cs, cal_ids)
    return SliceResult(
        model=sliced,
        dims=list(dims),
        bases=[b.cpu() for b in bases],
        pcas=pcas,
        cal_loss=cal_loss,
        settings=settings,
    )


def _to(kw: dict, dev: torch.device) -> dict:
    def move(v):
        if isinstance(v, Tensor):
            return v.to(dev)
        if isinstance(v, tuple):
            return tuple(move(x) for x in v)
        return v

    return {k: move(v) for k, v in kw.items()}


def _shape_layer(layer: nn.Module, adapter: Adapter, dims3: list[int], D: int, eps: float) -> None:
    """Replace the layer's norms by weightless D-norms and its readers by empty (meta) resized maps."""
    from .modeling_sliced import DimRMSNorm, _resized

    d_in, d_mid, _ = dims3
    for p in adapter.attn_in:
        _set_module(layer, p, _resized(layer.get_submodule(p), d_in=d_in))
    for p in adapter.mlp_in:
        _set_module(layer, p, _resized(layer.get_submodule(p), d_in=d_mid))
    _set_module(layer, adapter.attn_norm, DimRMSNorm(D, eps))
    _set_module(layer, adapter.mlp_norm, DimRMSNorm(D, eps))


def _meta_like(new: nn.Module, adapter: Adapter, dense: dict, role: str, d_out: int) -> nn.Module:
    from .modeling_sliced import _resized

    with torch.device("meta"):
        return _resized(dense[getattr(adapter, role)], d_out=d_out)


@torch.no_grad()
def _cal_loss(sliced: nn.Module, adapter: Adapter, cs: list[Tensor], cal_ids: Tensor) -> float:
    """Mean next-token loss of the sliced model on the calibration windows, from the last site's values."""
    norm, head = sliced.get_submodule(adapter.final_norm), sliced.get_submodule(adapter.lm_head)
    total, count = 0.0, 0
    for c, ids in zip(cs, torch.split(cal_ids, cs[0].shape[0])):
        logits = head(norm(c.to(next(head.parameters()).device)))[:, :-1].float()
        tgt = ids[:, 1:].to(logits.device)
        total += torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), tgt.flatten(), reduction="sum"
        ).item()
        count += tgt.numel()
    return total / count


# ----------------------------------------------------------------------------- size, save, load


MODELING_FILE = Path(__file__).with_name("modeling_sliced.py")


def save_sliced(
    model: SlicedForCausalLM, folder: str | Path, tokenizer=None, overwrite: bool = False
) -> Path:
    """safetensors + config (dims, settings, layout) + the self-contained modeling file, written to a temp
    folder and renamed into place, so a failure leaves nothing half-written."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise UsageError(f"output folder {folder} exists (use --overwrite)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        shutil.copy(MODELING_FILE, tmp / "modeling_sliced.py")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / "slicing.json").write_text(json.dumps(model.config.slicing, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_sliced(
    folder: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
) -> SlicedForCausalLM:
    """Load a saved sliced model (no slicing flags needed); wrong weight shapes give a clear UsageError."""
    from safetensors import safe_open

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise UsageError(f"{folder} is not a saved sliced model (no config.json)")
    cfg = SlicedConfig.from_pretrained(folder)
    with torch.device("meta"):
        skeleton = SlicedForCausalLM(cfg)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(f, "pt") as st:
            for k in st.keys():
                shape = tuple(st.get_slice(k).get_shape())
                if k in expected and expected[k] != shape:
                    raise UsageError(
                        f"{folder}: weight {k} has shape {shape} but the config's site widths "
                        f"imply {expected[k]}"
                    )
    model = SlicedForCausalLM.from_pretrained(folder, dtype=dtype or cfg.dtype)
    return model.to(device).eval()
