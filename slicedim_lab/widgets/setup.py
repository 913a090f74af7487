"""The setup the model notebooks share: load the model (optionally only its first layers), pick its windows
as a sweep picks them (`sweep.inputs.load_inputs`, so the held-out gradient windows never overlap the PCA's
calibration windows), and keep the dense state every notebook needs in the shared on-disk cache
(`slicedim_lab.cache`): dense metrics, dense PCA, Fisher tables and sliced models are made once per model,
corpus and windows, and read back by every later run of any notebook."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import Tensor

from ..cache import Store, default_root, token_fingerprint, weights_fingerprint
from ..core.export import load_sliced, save_sliced
from ..core.pca import SitePCA
from ..core.replay import ProjectedModel, dense_bases
from ..core.sites import model_sites
from ..core.size import count_params
from ..core.slicing import SliceResult
from ..core.widths import dim_for_sparsity, model_site_dims
from ..eval.metrics import EvalResult, evaluate
from ..flow.session import FlowSession
from ..flow.stored import cached_dense_pcas, pcas_from, pcas_payload
from ..load.models import LoadedModel, keep_first_layers, load_model
from ..predict.fisher import FisherTables, fisher_tables
from ..sweep.config import SweepConfig
from ..sweep.inputs import load_inputs
from ..sweep.point import slice_and_measure


def cache_root_of(cache_dir: str | Path | None) -> Path | None:
    """A notebook's `CACHE_DIR`: "" is the default root (`$SLICEDIM_CACHE/notebooks`), None no cache."""
    if cache_dir is None:
        return None
    return default_root() if cache_dir == "" else Path(cache_dir).expanduser()


def open_store(lm: LoadedModel, corpus: str, cache_dir: str | Path | None) -> Store:
    """The cache of this model (name and weights) and corpus under `cache_root_of(cache_dir)` (None: off).
    Entries key their own windows."""
    root = cache_root_of(cache_dir)
    if root is None:
        return Store(None)
    return Store.open(root, model=lm.name, corpus=corpus, weights=weights_fingerprint(lm.model))


@dataclass
class NotebookSetup:
    """A loaded model and its token windows: `cal` (the PCA's calibration windows), `evw` (eval windows) and,
    when asked for, `grad` (calibration windows for Fisher gradients; disjoint from `cal` when
    `grad_heldout`, which is False only if the split has no window to spare); `store`, the on-disk cache."""

    lm: LoadedModel
    corpus: str
    cal: Tensor
    evw: Tensor
    grad: Tensor | None = None
    grad_heldout: bool = False
    store: Store = field(default_factory=lambda: Store(None))

    @property
    def n_layers(self) -> int:
        return int(self.lm.model.config.num_hidden_layers)

    @property
    def hidden(self) -> int:
        return int(self.lm.model.config.hidden_size)

    @property
    def n_sites(self) -> int:
        """Residual sites of the model, as its adapter lays them out (2L + 1 for sequential blocks)."""
        return len(model_sites(self.lm.model))

    def width(self, sparsity: float) -> int:
        """The kept width d' of `sparsity` for this model (SliceGPT's rule: a multiple of 8)."""
        return dim_for_sparsity(sparsity, self.hidden)

    def summary(self) -> str:
        """Two lines: the model (layers, width, sites, parameters) and the window shapes."""
        lm, L = self.lm, self.n_layers
        model = (f"{lm.name} on {lm.device}: {L} layers, width D = {self.hidden}, {self.n_sites} residual "
                 f"sites, {count_params(lm.model) / 1e6:.1f} M parameters")
        shapes = [f"calibration {tuple(self.cal.shape)}"]
        if self.grad is not None:
            kind = "held-out" if self.grad_heldout else "in-sample (no window to spare)"
            shapes.append(f"{kind} gradient {tuple(self.grad.shape)}")
        shapes.append(f"eval {tuple(self.evw.shape)}")
        return f"{model}\n{', '.join(shapes)} token windows of {self.corpus}"

    # -- the dense state, cached

    def dense_metrics(self, batch_size: int = 4) -> EvalResult:
        """The dense model's perplexity and accuracy on the eval windows (`eval.metrics.evaluate`)."""
        return self.store.memo("dense-eval", {"eval": token_fingerprint(self.evw)},
                               lambda: evaluate(self.lm.model, self.evw, batch_size), asdict,
                               lambda p: EvalResult(**p))

    def dense_pcas(self, batch_size: int = 4) -> list[SitePCA]:
        """The dense model's per-site PCA on the calibration windows (`core.replay.dense_pcas`)."""
        return cached_dense_pcas(self.store, self.lm.model, self.cal, batch_size)

    def fisher_tables(self, pcas: list[SitePCA], batch_size: int = 2) -> FisherTables:
        """The Fisher-increment tables on the held-out gradient windows (`predict.fisher.fisher_tables`)."""
        key = {"cal": token_fingerprint(self.cal), "grad": token_fingerprint(self.grad)}

        def make() -> FisherTables:
            return fisher_tables(self.lm.model, self.cal, pcas=pcas, batch_size=batch_size,
                                 grad_ids=self.grad)

        return self.store.memo("fisher-tables", key, make, asdict, lambda p: FisherTables(**p))

    def projected_metrics(self, dim: int, pcas: list[SitePCA], batch_size: int = 4) -> EvalResult:
        """Perplexity and accuracy on the eval windows of the model sliced to `dim` in the dense bases `pcas`
        (this setup's `dense_pcas`): the dense model with every site projected (`core.replay.ProjectedModel`,
        the function of a SliceGPT model with those bases), as a dense-basis sweep measures a point."""
        key = {"dim": dim, "cal": token_fingerprint(self.cal), "eval": token_fingerprint(self.evw)}

        def make() -> EvalResult:
            bases = dense_bases(pcas, model_site_dims(self.lm.model, dim=dim))
            return evaluate(ProjectedModel(self.lm.model, bases), self.evw, batch_size)

        return self.store.memo("projected-eval", key, make, asdict, lambda p: EvalResult(**p))

    def flow_session(self, batch_size: int = 4, progress: bool = True) -> FlowSession:
        """A `flow.FlowSession` on these windows whose dense pass, PCA and reports live in the cache."""
        return FlowSession(self.lm.model, self.cal, self.evw, tokenizer=self.lm.tokenizer,
                           batch_size=batch_size, progress=progress, cache=self.store)

    def slice(self, dims: list[int], batch_size: int = 4, measure: bool = True
              ) -> tuple[SliceResult, EvalResult | None]:
        """SliceGPT at the per-site widths `dims` (interleaved calibration on `cal`) and, with `measure`, the
        sliced model's metrics on the eval windows: `sweep.point.slice_and_measure`, the one slice-then-
        measure of the package. The sliced model (an export, `core.export`) and its metrics are cached."""
        key = {"dims": list(dims), "cal": token_fingerprint(self.cal)}

        def measure_fn(m) -> EvalResult | None:
            return evaluate(m, self.evw, batch_size) if measure else None

        if not self.store.enabled:
            done = slice_and_measure(self.lm.model, self.cal, list(dims), measure_fn, batch_size=batch_size)
            return done.result, done.measured
        made = {}

        def write(tmp: Path) -> None:
            done = made["done"] = slice_and_measure(self.lm.model, self.cal, list(dims), measure_fn,
                                                    batch_size=batch_size)
            r = done.result
            save_sliced(r.model, tmp / "model", overwrite=True)
            self.store.save_payload(tmp / "calibration.pt", {"bases": r.bases, "pcas": pcas_payload(r.pcas),
                                                             "cal_loss": r.cal_loss, "settings": r.settings})

        folder = self.store.folder_entry("sliced", key, write)
        if "done" in made:
            result, measured = made["done"].result, made["done"].measured
        else:
            extra = self.store.load_payload(folder / "calibration.pt")
            model = load_sliced(folder / "model", device=str(self.lm.device),
                                dtype=next(self.lm.model.parameters()).dtype)
            result = SliceResult(model, list(dims), extra["bases"], pcas_from(extra["pcas"]),
                                 extra["cal_loss"], extra["settings"])
            measured = None
        if measure:
            mkey = {**key, "eval": token_fingerprint(self.evw)}
            measured = self.store.memo("sliced-eval", mkey,
                                       lambda: measured or evaluate(result.model, self.evw, batch_size),
                                       asdict, lambda p: EvalResult(**p))
        return result, measured


def sweep_folder(cfg: SweepConfig, max_layers: int | None, cache_dir: str | Path | None) -> Path:
    """The sweep folder of notebook 03 in the cache: one per settings (the sweep's fingerprint and the layers
    kept), so other settings never meet a folder made for different ones: under `cache_root_of(cache_dir)`,
    or with no cache under the working directory, `runs/notebooks/sweeps/`."""
    root = cache_root_of(cache_dir) or Path("runs/notebooks")
    name = cfg.model.replace("/", "_")[-60:]
    layers = "" if max_layers is None else f"-first{max_layers}"
    return root / "sweeps" / f"{name}{layers}-{cfg.fingerprint()}"


def notebook_setup(
    model: str, device: str = "auto", corpus: str = "python-docs", *, cal_windows: int, cal_seqlen: int,
    eval_windows: int | None, eval_seqlen: int, grad_windows: int | None = None,
    max_layers: int | None = None, lm: LoadedModel | None = None, cache_dir: str | Path | None = None,
) -> NotebookSetup:
    """Load `model` on `device` (or take `lm`), keep its first `max_layers` decoder layers (None: all), and
    pick `cal_windows` calibration windows, `eval_windows` eval windows and — with `grad_windows` — that many
    calibration windows besides the PCA's for Fisher gradients, each spread over its split. `cache_dir`:
    where the dense state is kept ("" the default root, `$SLICEDIM_CACHE/notebooks`; None: no cache)."""
    lm = lm or load_model(model, device=device)
    keep_first_layers(lm.model, max_layers)
    cfg = SweepConfig(model=lm.name, corpus=corpus, cal_samples=cal_windows, cal_seqlen=cal_seqlen,
                      eval_seqlen=eval_seqlen, max_eval_windows=eval_windows, grad_windows=grad_windows,
                      tasks=[])
    cfg.check()
    inp = load_inputs(cfg, lm)
    store = open_store(lm, corpus, cache_dir)
    if grad_windows is None:
        return NotebookSetup(lm, corpus, inp.cal_ids, inp.eval_ids, store=store)
    return NotebookSetup(lm, corpus, inp.cal_ids, inp.eval_ids, inp.grad_ids, inp.grad_heldout, store)
