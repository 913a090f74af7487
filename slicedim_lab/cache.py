"""The notebooks' shared on-disk cache: dense state made once, reused across notebooks and runs.

A `Store` is one folder per (model, corpus, settings) — `Store.open(root, model=..., ...)` hashes what it is
given, plus a cheap fingerprint of the weights (`weights_fingerprint`: its weight files, or its parameters'
sums for a model built in memory), so another model of the same name or changed weights never read a stale
entry. Inside it, an entry is named by what it is and its own parameters
(`Store.memo("dense-pca", {...}, make, encode, decode)`): a file holding plain data (tensors, lists, dicts,
numbers, strings: read back with `torch.load(weights_only=True)`), or a folder (`Store.folder_entry`, e.g.
a saved sliced model). Entries are written atomically (`files.atomic_file`, `files.atomic_folder`), so an
interrupted run leaves an entry complete or absent. `Store(None)` caches nothing: `memo` just calls `make`.

Default root: `$SLICEDIM_CACHE/notebooks` (`~/.cache/slicedim_lab/notebooks`); delete it to start afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn as nn

from .files import atomic_file, atomic_folder
from .load.models import cache_root

T = TypeVar("T")


def default_root() -> Path:
    """`$SLICEDIM_CACHE/notebooks`, else `~/.cache/slicedim_lab/notebooks` (`load.models.cache_root`)."""
    return cache_root() / "notebooks"


def digest(params: Any) -> str:
    """A short stable hash of JSON-able parameters (keys sorted; tuples as lists)."""
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt")


def weight_files(model: nn.Module) -> list[Path]:
    """The weight files of the folder the model was loaded from (none for a model built in memory)."""
    folder = Path(getattr(model, "name_or_path", "") or "")
    if not str(folder) or not folder.is_dir():
        return []
    return sorted(f for pattern in WEIGHT_FILES for f in folder.glob(pattern))


@torch.no_grad()
def weights_fingerprint(model: nn.Module) -> str:
    """A cheap fingerprint of a model's weights, with its class and config (so a model cut to its first layers
    is another model): for a model loaded from a folder, its weight files' names, sizes and modification
    times (reading 0.5 GB of weights would cost seconds); for one built in memory, every parameter's name,
    shape and float64 sum."""
    config = getattr(model, "config", None)
    parts = [type(model).__name__, config.to_json_string(use_diff=True) if config is not None else ""]
    files = weight_files(model)
    if files:
        parts += [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    else:
        parts += [f"{name}{tuple(p.shape)}{float(p.sum(dtype=torch.float64)):.15e}"
                  for name, p in model.named_parameters()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def token_fingerprint(*windows: torch.Tensor) -> str:
    """A hash of token windows (their ids and shapes)."""
    h = hashlib.sha256()
    for w in windows:
        h.update(str(tuple(w.shape)).encode())
        h.update(w.to(torch.int64).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def plain(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers and numpy arrays as tensors, through lists, tuples and
    dicts: what `torch.load(weights_only=True)` reads back."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class Store:
    """A folder of cached entries (None: caching off). `hits` and `misses` count what `memo` found."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None
        self.hits: list[str] = []
        self.misses: list[str] = []

    @classmethod
    def open(cls, root: str | Path | None, **key: Any) -> Store:
        """The store of `key` (model, corpus, settings, fingerprints…) under `root` (None: caching off);
        `key` is written beside the entries (key.json) so a folder says what it holds."""
        if root is None:
            return cls(None)
        name = str(key.get("model", "model")).replace("/", "_").replace("#", "_")[-60:]
        store = cls(Path(root).expanduser() / f"{name}-{digest(key)}")
        path = store.folder / "key.json"
        if not path.exists():
            with atomic_file(path) as f:
                json.dump(key, f, indent=1, sort_keys=True, default=str)
        return store

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def path(self, name: str, params: Any = None, suffix: str = ".pt") -> Path | None:
        """Where entry `name` with `params` lives (None when caching is off)."""
        if self.folder is None:
            return None
        return self.folder / f"{name}-{digest(params)}{suffix}"

    def memo(self, name: str, params: Any, make: Callable[[], T], encode: Callable[[T], Any],
             decode: Callable[[Any], T]) -> T:
        """The entry `name`/`params` decoded, else `make()` — encoded to plain data and saved."""
        path = self.path(name, params)
        if path is not None and path.exists():
            self.hits.append(name)
            return decode(self.load_payload(path))
        self.misses.append(name)
        value = make()
        if path is not None:
            self.save_payload(path, encode(value))
        return value

    @staticmethod
    def save_payload(path: Path, payload: Any) -> None:
        """Write plain data (`plain`) to `path` atomically."""
        with atomic_file(path, "wb") as f:
            torch.save(plain(payload), f)

    @staticmethod
    def load_payload(path: Path) -> Any:
        return torch.load(path, weights_only=True)

    def folder_entry(self, name: str, params: Any, write: Callable[[Path], None]) -> Path | None:
        """The folder entry `name`/`params`, filled by `write(tmp)` first if absent (None when off)."""
        path = self.path(name, params, suffix="")
        if path is None:
            return None
        if path.is_dir():
            self.hits.append(name)
            return path
        self.misses.append(name)
        return atomic_folder(path, write)

    def summary(self) -> str:
        """One line: where the store is and what came from it."""
        if self.folder is None:
            return "cache: off"
        return (f"cache {self.folder}: {len(self.hits)} reused ({', '.join(sorted(set(self.hits))) or '-'}), "
                f"{len(self.misses)} made")
