"""The flow session: one dense calibration + one dense eval pass, then a flow report at any kept width d'.

`FlowSession` is built for a slider: one dense PCA of the calibration windows (on first use) and one dense
pass over the eval windows (site residuals, block writes and the dense logit-lens statistics are cached),
after which any d' with `dense` bases costs one emulated forward (plus the optional gradient passes of the
prediction decomposition); `interleaved` bases cost one SliceGPT calibration per d' (the last one is kept).

Site metrics of a report (see `passes` for the sums; x = dense residual, x~ = sliced residual, y~ = sliced
residual before the projection, B the site's D x d_s basis):
- d_site; retained_cal: sum_{i<=d_s} lambda_i / sum lambda_i of the PCA the bases came from;
  retained_eval_dense: sum ||B^T x||^2 / sum ||x||^2 on eval text; retained_eval: sum ||x~||^2 / sum ||y~||^2,
  what the projection keeps of the activations that actually reach it in the sliced model;
- rel_error: mean_t ||x~ - x|| / ||x||; cosine: mean_t cos(x~, x); norm_dense, norm_sliced: mean_t ||x||;
  norm_growth_dense / norm_growth_sliced: mean norm relative to the previous site's;
- lens_kl, lens_loss_dense, lens_loss_sliced (`lens`); attr_* (`attribution`); map rows (`maps`).

This module also re-exports the names other code imports from `slicedim_lab.flow.session`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from jaxtyping import Int
from torch import Tensor

from ..adapters import adapter_for
from ..cache import Store, token_fingerprint
from ..core.bridge import boot_bridge
from ..core.emulate import BASIS_KINDS
from ..core.pca import SitePCA
from ..core.replay import Basis, dense_bases
from ..core.sites import is_parallel, lens_sites, model_sites
from ..core.slicing import slice_model
from ..core.widths import site_dims
from ..errors import UsageError
from .attribution import (
    attribute_batch,
    attribution_rows,
    decomposition_summary,
    gauss_legendre,
    prediction_decomposition,
)
from .lens import Head, LensCache
from .maps import MapDecomposition, gram_singular_values, linear_maps, map_weight, rms_normalise
from .passes import DenseEval, dense_pass, sliced_pass
from .stored import cached_dense_pcas, dense_eval_from, dense_eval_payload, frame_from, frame_payload
from .tables import COLUMNS, per_layer, retained_at, site_row, spectrum_table
from .text import LAYER_COLUMNS, format_layers
from .tokens import decode_each, dense_token_stats, sliced_token_pass, token_rows, token_summary

__all__ = [
    "COLUMNS", "DenseEval", "FlowReport", "FlowSession", "Head", "LAYER_COLUMNS", "LensCache",
    "attribute_batch", "decomposition_summary", "format_layers", "gauss_legendre", "gram_singular_values",
    "lens_sites", "linear_maps", "map_weight", "per_layer", "prediction_decomposition", "retained_at",
    "rms_normalise", "site_row", "spectrum_table", "token_summary",
]


@dataclass
class FlowReport:
    """The flow at one (basis, d'): tidy `table`, `singular` values of every map (if asked), and a `summary`
    (dense/sliced loss, ppl, accuracy, KL, and the prediction decomposition's totals and remainders)."""

    basis: str
    dim: int
    dims: list[int]
    table: pd.DataFrame
    summary: dict[str, float]
    singular: pd.DataFrame | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def per_layer(self) -> pd.DataFrame:
        return per_layer(self.table)

    def payload(self) -> dict:
        """The report as plain data (for the on-disk cache)."""
        return {"basis": self.basis, "dim": self.dim, "dims": self.dims, "table": frame_payload(self.table),
                "summary": self.summary, "singular": frame_payload(self.singular), "seconds": self.seconds}

    @classmethod
    def from_payload(cls, p: dict) -> FlowReport:
        return cls(basis=p["basis"], dim=p["dim"], dims=p["dims"], table=frame_from(p["table"]),
                   summary=p["summary"], singular=frame_from(p["singular"]), seconds=p["seconds"])


class FlowSession:
    """One dense calibration + one dense eval pass; then `report(d', basis)` for any d' (a slider).

    `model` is the dense transformers model (left untouched: the bridge runs on a copy); `cal_ids` feed the
    dense PCA (and interleaved calibrations), `eval_ids` are the text every metric is measured on. With a
    `cache` (`slicedim_lab.cache.Store` of this model and these windows) the dense pass, the dense PCA and
    every report are kept on disk and reused by later sessions; the bridge then boots only when something
    must run (`bridge`)."""

    def __init__(
        self,
        model: nn.Module,
        cal_ids: Int[Tensor, "n_cal seq_cal"],
        eval_ids: Int[Tensor, "n_eval seq"],
        *,
        tokenizer=None,
        pcas: Sequence[SitePCA] | None = None,
        batch_size: int = 4,
        lens: str | int | Sequence[int] = "post",
        progress: bool = False,
        cache: Store | None = None,
    ):
        if eval_ids.ndim != 2 or eval_ids.shape[1] < 2 or eval_ids.shape[0] < 1:
            raise UsageError(f"eval windows must be [n >= 1, seq >= 2], got {tuple(eval_ids.shape)}")
        self.model = model.eval()
        self.adapter = adapter_for(model)
        self.cal_ids, self.batch_size, self.progress = cal_ids, batch_size, progress
        self.L, self.D = model.config.num_hidden_layers, model.config.hidden_size
        self.sites = model_sites(model)
        self.S = len(self.sites)
        self.last = self.sites[-1].index  # the site the head reads
        self.eps = self.adapter.eps(model.config)
        dt = next(model.parameters()).dtype
        self.work_dtype = dt if dt == torch.float64 else torch.float32  # of the activation statistics
        self.seconds: dict[str, float] = {}
        self.cache = cache if cache is not None else Store(None)
        self._tokenizer, self._bridge = tokenizer, None
        self.windows = {"cal": token_fingerprint(cal_ids), "eval": token_fingerprint(eval_ids)}
        self._pcas = list(pcas) if pcas is not None else None
        self._dense_tokens: dict[str, Tensor] | None = None
        self.head = Head(model)
        self.parallel = is_parallel(self.sites)
        # the final site gives the KL
        self.lens_sites = sorted({*lens_sites(self.L, lens, self.parallel), self.last})
        self.maps = linear_maps(model)
        self._map_decomposition = MapDecomposition(self.maps, self.D, self.eps, self.work_dtype,
                                                   self.adapter.centred, self.sites)
        self._interleaved: dict[tuple, tuple[list[Basis], list[SitePCA | None]]] = {}
        t = time.perf_counter()
        self.dense = self.cache.memo(
            "flow-dense-pass", {"lens": self.lens_sites, "dtype": str(self.work_dtype), **self.windows},
            lambda: dense_pass(self.bridge, self.head, eval_ids, self.sites, self.lens_sites, self.batch_size,
                               self.progress), dense_eval_payload, dense_eval_from)
        self.seconds["dense_eval"] = time.perf_counter() - t

    @property
    def bridge(self):
        """The TransformerLens bridge over a copy of the model, booted on first use."""
        if self._bridge is None:
            t = time.perf_counter()
            self._bridge = boot_bridge(self.model, self._tokenizer)
            self.seconds["boot"] = time.perf_counter() - t
        return self._bridge

    # -- widths and bases

    @property
    def pcas(self) -> list[SitePCA]:
        """The dense model's per-site PCA on the calibration windows (computed on first use, then kept)."""
        if self._pcas is None:
            t = time.perf_counter()
            self._pcas = cached_dense_pcas(self.cache, self.model, self.cal_ids, self.batch_size,
                                           self.progress)
            self.seconds["dense_pca"] = time.perf_counter() - t
        return self._pcas

    def dims(self, dim: int, slice_head: bool = False) -> list[int]:
        return site_dims(self.L, self.D, dim=dim, slice_head=slice_head, parallel=self.parallel)

    def bases(self, dim: int, basis: str = "dense", slice_head: bool = False) -> tuple[list[Basis], list]:
        """(bases, the PCAs they came from) at kept width d' (the head's site stays full unless
        slice_head)."""
        if basis not in BASIS_KINDS:
            raise UsageError(f"basis must be one of {', '.join(BASIS_KINDS)}, got {basis!r}")
        dims = self.dims(dim, slice_head)
        if basis == "dense":
            return dense_bases(self.pcas, dims), self.pcas
        key = (dim, slice_head)
        if key not in self._interleaved:
            res = slice_model(self.model, self.cal_ids, dims, batch_size=self.batch_size,
                              progress=self.progress)
            self._interleaved = {key: (res.bases, res.pcas)}  # keep one: a slider revisits rarely
            del res
        return self._interleaved[key]

    # -- one d'

    def report(
        self,
        dim: int,
        basis: str = "dense",
        *,
        slice_head: bool = False,
        attribution: int | None = 4,
        maps: bool = True,
        svd: bool = False,
    ) -> FlowReport:
        """The flow at kept width `dim` with `basis` bases. `attribution`: Gauss-Legendre nodes of the
        integrated prediction decomposition (0: first order only; None: skip the gradient passes);
        `maps`: the linear-map decomposition; `svd`: singular values of every sliced vs full map. With a
        cache, a report made once (by any session of this model and these windows) is read back."""
        if not 1 <= dim <= self.D:
            raise UsageError(f"dim must be in [1, {self.D}], got {dim}")
        key = {"basis": basis, "dim": dim, "slice_head": slice_head, "attribution": attribution, "maps": maps,
               "svd": svd, "lens": self.lens_sites, **self.windows}
        return self.cache.memo("flow-report", key,
                               lambda: self._report(dim, basis, slice_head, attribution, maps, svd),
                               FlowReport.payload, FlowReport.from_payload)

    def _report(self, dim: int, basis: str, slice_head: bool, attribution: int | None, maps: bool,
                svd: bool) -> FlowReport:
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        bases, pcas = self.bases(dim, basis, slice_head)
        seconds["bases"] = time.perf_counter() - t
        dims = [b.shape[1] for b in bases]
        t = time.perf_counter()
        acc = sliced_pass(self.bridge, self.head, self.dense, bases, self.sites, self.lens_sites,
                          work_dtype=self.work_dtype, attribution=attribution, batch_size=self.batch_size,
                          progress=self.progress)
        seconds["emulate"] = time.perf_counter() - t
        npred = acc["pred"]
        rows = self._site_rows(acc, dims, pcas, basis, dim)
        summary = {
            "nll_dense": self.dense.nll, "nll_sliced": acc["nll"] / npred,
            "ppl_dense": math.exp(self.dense.nll), "ppl_sliced": math.exp(acc["nll"] / npred),
            "accuracy_dense": self.dense.accuracy, "accuracy_sliced": acc["hits"] / npred,
            "kl": acc["kl"][self.last] / npred, "tokens": npred,
        }
        if attribution is not None:
            rows += attribution_rows(acc["attr"], npred, self.S, basis, dim, self.sites)
            dec = decomposition_summary(acc["attr"], acc["z_sliced"], npred)
            summary.update({f"attr_{k}": v for k, v in dec.items() if k != "tokens"})
            seconds["attribution"] = acc["attr_seconds"]
        singular = None
        if maps:
            t = time.perf_counter()
            map_rows, singular = self._map_decomposition.rows(bases, self.dense.sites, self.dense.writes,
                                                              basis, dim, svd)
            rows += map_rows
            seconds["maps"] = time.perf_counter() - t
        return FlowReport(basis=basis, dim=dim, dims=dims, table=pd.DataFrame(rows, columns=COLUMNS),
                          summary=summary, singular=singular, seconds=seconds)

    def _site_rows(
        self, acc: dict, dims: list[int], pcas: Sequence[SitePCA | None], basis: str, dim: int
    ) -> list[dict]:
        """The per-site rows of a report from the sliced pass's sums."""
        ntok, npred = acc["tokens"], acc["pred"]
        rows: list[dict] = []

        def put(site: int, metric: str, value: float) -> None:
            rows.append({"basis": basis, "dim": dim, **site_row(self.sites[site]), "map": "", "role": "",
                         "metric": metric, "value": float(value)})

        for s in range(self.S):
            put(s, "d_site", dims[s])
            put(s, "retained_cal", retained_at(pcas[s], dims[s]))
            full = dims[s] == self.D
            put(s, "retained_eval_dense", 1.0 if full else acc["kept_dense"][s] / acc["energy_dense"][s])
            put(s, "retained_eval", 1.0 if full else acc["energy_sliced"][s] / acc["energy_pre"][s])
            put(s, "rel_error", acc["rel"][s] / ntok)
            put(s, "cosine", acc["cos"][s] / ntok)
            put(s, "norm_dense", acc["norm_d"][s] / ntok)
            put(s, "norm_sliced", acc["norm_s"][s] / ntok)
            if s:  # relative to the previous site along depth
                put(s, "norm_growth_dense", acc["norm_d"][s] / acc["norm_d"][s - 1])
                put(s, "norm_growth_sliced", acc["norm_s"][s] / acc["norm_s"][s - 1])
            if s in self.lens_sites:
                put(s, "lens_kl", acc["kl"][s] / npred)
                put(s, "lens_loss_dense", -float(self.dense.lens[s].target_logp.double().sum()) / npred)
                put(s, "lens_loss_sliced", acc["lens_loss"][s] / npred)
        return rows

    # -- which tokens suffer

    @property
    def dense_tokens(self) -> dict[str, Tensor]:
        """The dense model's per-token loss, target probability and top-1 prediction (`token_stats`)."""
        if self._dense_tokens is None:
            self._dense_tokens = self.cache.memo(
                "flow-dense-tokens", self.windows,
                lambda: dense_token_stats(self.bridge, self.dense.ids, self.batch_size), dict, dict)
        return self._dense_tokens

    def tokens(self, dim: int, basis: str = "dense", nodes: int = 1, slice_head: bool = False
               ) -> pd.DataFrame:
        """The token table at kept width `dim` (`flow.tokens`: one row per predicted eval token, its dense
        and sliced loss and top predictions, and the site where its loss increase entered, from the
        prediction decomposition with `nodes` Gauss-Legendre nodes; 0: first order). Cached like reports."""
        if not 1 <= dim <= self.D:
            raise UsageError(f"dim must be in [1, {self.D}], got {dim}")
        key = {"basis": basis, "dim": dim, "nodes": nodes, "slice_head": slice_head, **self.windows}

        def make() -> pd.DataFrame:
            bases, _ = self.bases(dim, basis, slice_head)
            sliced, charges = sliced_token_pass(self.bridge, self.dense.ids, bases, self.sites, nodes,
                                                self.batch_size)
            return token_rows(self.dense.ids, self.dense_tokens, sliced, charges, self.sites,
                              lambda ids: decode_each(self._tokenizer, ids), basis, dim)

        return self.cache.memo("flow-tokens", key, make, frame_payload, frame_from)

    # -- dense vs interleaved

    def compare(self, dim: int, slice_head: bool = False) -> pd.DataFrame:
        """Dense-basis vs interleaved emulation at d' on the eval windows: loss, PPL, accuracy, KL from the
        dense model, and (on the dense-basis row) the gap to interleaved: d_nll and the PPL ratio."""
        rows = [{"basis": "none (dense model)", "dim": self.D, "nll": self.dense.nll,
                 "ppl": math.exp(self.dense.nll), "accuracy": self.dense.accuracy, "kl": 0.0}]
        for kind in BASIS_KINDS:
            r = self.report(dim, kind, slice_head=slice_head, attribution=None, maps=False)
            rows.append({"basis": kind, "dim": dim, "nll": r.summary["nll_sliced"],
                         "ppl": r.summary["ppl_sliced"], "accuracy": r.summary["accuracy_sliced"],
                         "kl": r.summary["kl"]})
        df = pd.DataFrame(rows)
        inter = df.loc[df["basis"] == "interleaved", "nll"].item()
        df["d_nll_vs_interleaved"] = df["nll"] - inter
        df["ppl_ratio_vs_interleaved"] = np.exp(df["d_nll_vs_interleaved"])
        return df

    def spectrum(self, basis: str = "dense", dim: int | None = None) -> pd.DataFrame:
        """Eigen-spectra of the dense PCA, or of the interleaved calibration at `dim`."""
        if basis == "dense":
            return spectrum_table(self.pcas, "dense", self.sites)
        if dim is None:
            raise UsageError("the interleaved spectrum depends on d': give dim")
        return spectrum_table(self.bases(dim, "interleaved")[1], "interleaved", self.sites)
