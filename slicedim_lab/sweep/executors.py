"""Where a sweep's points are measured: in this process (the default) or as Ray tasks on a cluster.

An executor maps a point function `fn(work, model, dim) -> result` over kept widths and yields each outcome
as it finishes, in any order. It never writes anything: the driver (`SweepRunner`) turns every result into a
row and writes the folder alone, atomically. `work` is what every point needs besides the model (settings,
windows, dense bases): the driver makes it once; Ray ships it to the workers through the object store, once.
Workers load the model themselves by name (`ModelSpec`) or, for a model built in memory, get its weights
through the object store. Ray is imported here only, and only when a `RayExecutor` opens.
"""

from __future__ import annotations

import copy
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch.nn as nn
from transformers.utils import logging as hf_logging

from ..errors import UsageError
from ..load.models import keep_first_layers, load_model

PointFn = Callable[[Any, nn.Module, int], Any]
Log = Callable[[str], None]
INSTALL_HINT = "pip install -e '.[ray]' (or: pip install 'ray>=2.40')"
MAX_RETRIES = 3  # attempts after a worker dies mid-point (a Python error in a point is not retried)
# Ray sends its token to an address given explicitly only when told to (RAY_AUTH_MODE=token)
TOKEN_HINT = ("; if it uses token authentication (Ray's default for `ray start`), set RAY_AUTH_MODE=token, "
              "with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN")


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the sweep's model itself: `load_model(name, device, dtype)`, first layers kept."""

    name: str
    dtype: str | None = None
    max_layers: int | None = None

    @classmethod
    def of(cls, name: str, dtype: str | None, max_layers: int | None) -> ModelSpec:
        """A spec that means the same on a worker: a local folder becomes an absolute path."""
        path = Path(name).expanduser()
        return cls(str(path.resolve()) if path.is_dir() else name, dtype, max_layers)

    def load(self, device: str) -> nn.Module:
        hf_logging.disable_progress_bar()  # as `slicedim` does: no weight-loading bars from every worker
        model = load_model(self.name, device=device, dtype=self.dtype).model
        return keep_first_layers(model, self.max_layers)


@dataclass
class Outcome:
    """One finished point: the point function's result, or the error that ended it for good."""

    dim: int
    result: Any = None
    error: BaseException | None = None


class PointsFailed(RuntimeError):
    """Some points failed for good (the others finished and are in the folder); rerun to retry them."""

    def __init__(self, failures: dict[int, str], out: Path | None = None):
        self.failures = failures
        where = f" are in {out}" if out is not None else " were kept"
        each = "; ".join(f"d'={d}: {msg}" for d, msg in sorted(failures.items(), reverse=True))
        super().__init__(f"{len(failures)} point(s) failed ({each}); the finished rows{where}: "
                         "rerun the same command to retry the failed points")


def error_line(e: BaseException) -> str:
    """`Type: first line` of an error, a remote one's own cause rather than Ray's wrapper."""
    cause = getattr(e, "cause", None) or e
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class Executor(Protocol):
    """Measures points for a `SweepRunner`; `remote` executors get `work` without the model in it."""

    remote: bool

    def connect(self) -> None: ...

    def open(self, work: Any, model: nn.Module, spec: ModelSpec | None, log: Log) -> None: ...

    def map(self, fn: PointFn, dims: list[int]) -> Iterator[Outcome]: ...

    def describe(self) -> dict: ...

    def where(self) -> str: ...

    def close(self) -> None: ...


class InProcess:
    """Every point in this process, one after the other, on the driver's model (the default executor)."""

    remote = False

    def __init__(self) -> None:
        self._work: Any = None
        self._model: nn.Module | None = None

    def connect(self) -> None:
        pass

    def open(self, work: Any, model: nn.Module, spec: ModelSpec | None, log: Log) -> None:
        del spec, log
        self._work, self._model = work, model

    def map(self, fn: PointFn, dims: list[int]) -> Iterator[Outcome]:
        """Each point in turn; an error ends that point only (Ctrl-C ends the sweep)."""
        for dim in dims:
            try:
                result = fn(self._work, self._model, dim)
            except Exception as e:  # noqa: BLE001 - reported by the driver, the other points still run
                yield Outcome(dim, error=e)
                continue
            yield Outcome(dim, result=result)

    def describe(self) -> dict:
        device = next(self._model.parameters()).device if self._model is not None else None
        return {"executor": "in-process", "device": str(device)}

    def where(self) -> str:
        return "in-process"

    def close(self) -> None:
        pass


def require_ray():
    """The `ray` module, or a one-line UsageError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass
class RayExecutor:
    """Every point a Ray task: on a local cluster started here (`address=None`; `num_cpus` caps it), or on an
    existing one (`"auto"`, `"HOST:PORT"`, `"ray://HOST:10001"`). Each task holds `cpus_per_point` CPUs and
    `gpus_per_point` GPUs (workers measure on CUDA when that is > 0, else on CPU). A worker that dies
    mid-point is retried up to `max_retries` times; results come back in any order; Ctrl-C cancels the
    outstanding tasks. A cluster started here is shut down by `close`."""

    address: str | None = None
    cpus_per_point: float = 1
    gpus_per_point: float = 0
    max_retries: int = MAX_RETRIES
    num_cpus: int | None = None
    remote: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if self.cpus_per_point <= 0:
            raise UsageError(f"cpus-per-point must be more than 0, got {self.cpus_per_point}")
        if self.gpus_per_point < 0:
            raise UsageError(f"gpus-per-point must be at least 0, got {self.gpus_per_point}")
        if self.max_retries < 0:
            raise UsageError(f"max-retries must be at least 0, got {self.max_retries}")
        self._ray: Any = None
        self._owns = False
        self._args: tuple = ()
        self._task: Any = None
        self._log: Log = print
        self._model_by: str | None = None

    # -- the cluster

    def connect(self) -> None:
        """Join (or start) the cluster and check that it can run a point: a one-line UsageError otherwise,
        before the driver loads anything."""
        ray = self._ray = require_ray()
        if not ray.is_initialized():
            check_reachable(self.address)
            local = {"num_cpus": self.num_cpus} if self.address is None else {}
            try:
                # "local": a fresh cluster here, never one a stale /tmp/ray/ray_current_cluster points to
                ray.init(address=self.address or "local", include_dashboard=False, **local)
            except (ConnectionError, RuntimeError) as e:
                raise UsageError(f"cannot join the Ray cluster at {self.address}: {error_line(e)}"
                                 + (TOKEN_HINT if _about_auth(e) else "")) from None
            self._owns = True
        self._check_resources()

    def open(self, work: Any, model: nn.Module, spec: ModelSpec | None, log: Log) -> None:
        """Connect if not yet, and put the shared state (and a model built in memory) in the object store."""
        self.connect()
        ray, self._log = self._ray, log
        shipped = None if spec is not None else ray.put(_on_cpu(model))
        device = "cuda" if self.gpus_per_point > 0 else "cpu"
        threads = max(1, int(self.cpus_per_point))
        self._args = (uuid.uuid4().hex, [ray.put(work), shipped], spec, device, threads)
        self._task = ray.remote(_point_task).options(
            num_cpus=self.cpus_per_point, num_gpus=self.gpus_per_point, max_retries=self.max_retries,
            retry_exceptions=False)
        self._model_by = "by name on each worker" if spec is not None else "shipped through the object store"

    def _check_resources(self) -> None:
        have = self._ray.cluster_resources()
        for key, want in (("CPU", self.cpus_per_point), ("GPU", self.gpus_per_point)):
            if want > 0 and have.get(key, 0) < want:
                raise UsageError(f"the Ray cluster at {self.cluster_address()} has {have.get(key, 0):g} "
                                 f"{key}(s) in all, less than one point asks for ({want:g}); "
                                 f"lower --{key.lower()}s-per-point")

    def cluster_address(self) -> str:
        if self._ray is None or not self._ray.is_initialized():
            return self.address or "local"
        return self._ray.get_runtime_context().gcs_address

    def describe(self) -> dict:
        ray = self._ray
        have = ray.cluster_resources() if ray is not None and ray.is_initialized() else {}
        return {"executor": "ray", "ray_address": self.address or "local (started by the driver)",
                "cluster_address": self.cluster_address(),
                "per_point": {"num_cpus": _number(self.cpus_per_point),
                              "num_gpus": _number(self.gpus_per_point)},
                "max_retries": self.max_retries, "model": self._model_by,
                "cluster": {"CPU": have.get("CPU", 0), "GPU": have.get("GPU", 0),
                            "nodes": sum(1 for k in have if k.startswith("node:") and "internal" not in k)},
                "ray_version": getattr(ray, "__version__", None)}

    def where(self) -> str:
        return f"on Ray at {self.cluster_address()}"

    def close(self) -> None:
        """Shut down a cluster this executor started (one it joined keeps running)."""
        if self._owns and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

    # -- the points

    def map(self, fn: PointFn, dims: list[int]) -> Iterator[Outcome]:
        """Submit every point at once; yield each as it finishes. Leaving early (Ctrl-C, an error in the
        driver, `close()` on this iterator) cancels the points still outstanding."""
        ray = self._ray
        refs = {self._task.remote(fn, *self._args, d): d for d in dims}
        pending = list(refs)
        try:
            while pending:
                # a short wait keeps Ctrl-C quick
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in done:
                    try:
                        yield Outcome(refs[ref], result=ray.get(ref))
                    except ray.exceptions.RayError as e:  # failed for good: its error, its retries spent
                        yield Outcome(refs[ref], error=e)
        finally:
            if pending:
                for ref in pending:
                    ray.cancel(ref, force=True)
                self._log(f"cancelled {len(pending)} outstanding point(s): "
                          f"d'={', '.join(str(refs[r]) for r in pending)}")


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A one-line UsageError if nothing listens at a `HOST:PORT` (or `ray://HOST:PORT`) address: Ray itself
    would keep retrying for minutes. `None` and `auto` are left to Ray."""
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _about_auth(e: BaseException) -> bool:
    """Whether a failed `ray.init` (or an error it chained) was refused for want of a token."""
    while e is not None:
        if "auth" in f"{type(e).__name__} {e}".lower():
            return True
        e = e.__cause__ or e.__context__
    return False


def _on_cpu(model: nn.Module) -> nn.Module:
    """The model with its weights on the CPU (a copy if they are elsewhere), to travel to any worker."""
    return model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()


# ----------------------------------------------------------------------------- on a worker

_WORKER: dict[str, tuple[Any, nn.Module]] = {}  # one sweep's (work, model) per worker process, kept warm


def _point_task(fn: PointFn, key: str, shared: list, spec: ModelSpec | None, device: str, threads: int,
                dim: int) -> Any:
    """A Ray task: the point function on this worker's copy of the shared state and model (loaded once per
    worker and sweep; `shared` is a list so that Ray passes its object refs unresolved)."""
    if key not in _WORKER:
        import ray
        import torch

        _WORKER.clear()
        torch.set_num_threads(threads)
        work_ref, model_ref = shared
        model = spec.load(device) if spec is not None else ray.get(model_ref).to(device)
        _WORKER[key] = (ray.get(work_ref), model.eval())
    work, model = _WORKER[key]
    return fn(work, model, dim)
