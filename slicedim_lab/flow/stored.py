"""What the flow layer keeps in the notebooks' on-disk cache (`slicedim_lab.cache.Store`), and how: each value
as plain data (tensors, lists, dicts, numbers, strings) and back. The dense PCA is stored under one name,
`dense-pca`, so every notebook of a model, corpus and window settings shares it."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch.nn as nn
from jaxtyping import Int
from torch import Tensor

from ..cache import Store, token_fingerprint
from ..core.pca import SitePCA
from ..core.replay import dense_pcas
from .lens import LensCache
from .passes import DenseEval

LENS_FIELDS = ("neg_entropy", "expected_u", "target_logp", "expected_b")


def frame_payload(df: pd.DataFrame | None) -> dict | None:
    """A table as plain data: its columns and one list of values per column."""
    if df is None:
        return None
    return {"columns": [str(c) for c in df.columns], "data": [df[c].tolist() for c in df.columns]}


def frame_from(payload: dict | None) -> pd.DataFrame | None:
    if payload is None:
        return None
    return pd.DataFrame(dict(zip(payload["columns"], payload["data"])), columns=payload["columns"])


def pcas_payload(pcas: Sequence[SitePCA | None]) -> list[dict | None]:
    return [None if p is None else {"eigvals": p.eigvals, "vectors": p.vectors} for p in pcas]


def pcas_from(payload: list[dict | None]) -> list[SitePCA | None]:
    return [None if p is None else SitePCA(p["eigvals"], p["vectors"]) for p in payload]


def cached_dense_pcas(store: Store, model: nn.Module, cal_ids: Int[Tensor, "n pos"], batch_size: int = 8,
                      progress: bool = False) -> list[SitePCA]:
    """`core.replay.dense_pcas` of the store's model on its calibration windows, made once per store."""
    return store.memo("dense-pca", {"cal": token_fingerprint(cal_ids)},
                      lambda: dense_pcas(model, cal_ids, batch_size, progress), pcas_payload, pcas_from)


def dense_eval_payload(d: DenseEval) -> dict:
    lens = {s: {f: getattr(c, f) for f in LENS_FIELDS} for s, c in d.lens.items()}
    return {"ids": d.ids, "sites": d.sites, "writes": d.writes, "lens": lens, "nll": d.nll,
            "accuracy": d.accuracy}


def dense_eval_from(p: dict) -> DenseEval:
    lens = {int(s): LensCache(**c) for s, c in p["lens"].items()}
    return DenseEval(ids=p["ids"], sites=p["sites"], writes=p["writes"], lens=lens, nll=p["nll"],
                     accuracy=p["accuracy"])
