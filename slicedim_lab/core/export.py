"""A sliced model's config and its export: safetensors, config and the self-contained modeling file in one
folder that loads with plain transformers (`trust_remote_code=True`) or `load_sliced`, without slicing flags.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open

from ..adapters import Adapter
from ..errors import UsageError
from ..files import atomic_folder
from .modeling_sliced import SlicedConfig, SlicedForCausalLM
from .sites import layers_of, sites_for


def sliced_config(
    model: nn.Module, adapter: Adapter, dims: list[int], tied: bool, settings: dict,
    keep_io: bool | None = None,
) -> SlicedConfig:
    """The config of a sliced model: the base config, the site widths, the adapter's layout and, per decoder
    layer, the sites it reads and writes (so the exported modeling file never numbers sites itself)."""
    cfg = model.config.to_dict()
    base_type = cfg.pop("model_type")
    for k in ("architectures", "auto_map", "tie_word_embeddings"):
        cfg.pop(k, None)
    layers = [ls.as_list() for ls in layers_of(sites_for(adapter, model.config.num_hidden_layers))]
    head = model.get_submodule(adapter.lm_head)
    keep_io = tied if keep_io is None else keep_io
    head_bias = adapter.centred and not keep_io or getattr(head, "bias", None) is not None
    extra = {**({"head_bias": True} if head_bias else {}), **({"keep_io": True} if keep_io != tied else {})}
    return SlicedConfig(
        base_model_type=base_type,
        slicing={"site_dims": dims, "tied": tied, "layout": adapter.layout(), "layer_sites": layers,
                 **extra, **settings},
        tie_word_embeddings=tied,
        architectures=["SlicedForCausalLM"],
        auto_map={
            "AutoConfig": "modeling_sliced.SlicedConfig",
            "AutoModelForCausalLM": "modeling_sliced.SlicedForCausalLM",
        },
        **cfg,
    )


MODELING_FILE = Path(__file__).with_name("modeling_sliced.py")


def save_sliced(
    model: SlicedForCausalLM, folder: str | Path, tokenizer=None, overwrite: bool = False
) -> Path:
    """safetensors + config (dims, settings, layout) + the self-contained modeling file, written to a temp
    folder and renamed into place, so a failure leaves nothing half-written."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise UsageError(f"output folder {folder} exists (use --overwrite)")

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        shutil.copy(MODELING_FILE, tmp / "modeling_sliced.py")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / "slicing.json").write_text(json.dumps(model.config.slicing, indent=1))

    return atomic_folder(folder, write, replace=True)


def load_sliced(
    folder: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
) -> SlicedForCausalLM:
    """Load a saved sliced model (no slicing flags needed); wrong weight shapes give a clear UsageError."""
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
