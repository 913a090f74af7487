"""Sweeps on Ray: one local cluster (2 CPUs) for the module and a tiny model saved as a folder, which every
worker loads by name. The rows equal the in-process sweep's; a worker killed mid-point is retried and leaves
no duplicate or partial row; a point that fails for good is reported while the others finish; Ctrl-C cancels
the outstanding tasks; a killed driver resumes; the live bench measures on the cluster."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from tiny_fixtures import tiny_folder

from slicedim_lab.errors import UsageError
from slicedim_lab.load.models import load_model
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.executors import PointsFailed, RayExecutor
from slicedim_lab.sweep.runner import run_sweep
from slicedim_lab.widgets.sweep import SweepBench, sweep_explorer

ray = pytest.importorskip("ray")  # `make test` installs the `ray` extra
# the faults below run on workers, which cannot import this test module: they travel by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

DIMS = [64, 48, 40, 32]
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- faults, run on the workers


def _attempt(log: Path, dim: int) -> int:
    """Count this attempt at `dim` in a file (workers share the file system with the test)."""
    with open(log / f"{dim}", "a") as f:
        f.write(f"{os.getpid()}\n")
    return len((log / f"{dim}").read_text().splitlines())


def die_once(log: Path, fn, work, model, dim: int):
    """The first attempt at d'=48 measures its point, then its worker is killed before it returns."""
    first = _attempt(log, dim) == 1
    result = fn(work, model, dim)
    if dim == 48 and first:
        os.kill(os.getpid(), signal.SIGKILL)
    return result


def fail_at_40(fn, work, model, dim: int):
    if dim == 40:
        raise ValueError("boom at d'=40")
    return fn(work, model, dim)


def slow_but_48(fn, work, model, dim: int):
    """Every point but d'=48 takes a minute: it is still running when the test interrupts the driver."""
    if dim != 48:
        time.sleep(60)
    return fn(work, model, dim)


class Faulty(RayExecutor):
    """A RayExecutor whose point function goes through a fault (a module-level function, run on workers)."""

    def __init__(self, fault, **kw):
        super().__init__(**kw)
        self.fault = fault

    def map(self, fn, dims):
        return super().map(partial(self.fault, fn), dims)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs; yields its address."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, smol_tok) -> Path:
    return tiny_folder(tmp_path_factory.mktemp("tiny") / "model", smol_tok)


def cfg(folder: Path) -> SweepConfig:
    return SweepConfig(model=str(folder), cal_samples=2, cal_seqlen=32, eval_seqlen=32, max_eval_windows=2,
                       mc_items=4, mc_context=8, mc_cont=4)


def sweep(folder: Path, out: Path, dims=DIMS, **kw) -> list[dict]:
    return run_sweep(cfg(folder), out, dims=dims, device="cpu", progress=False, report=False,
                     log=kw.pop("log", lambda m: None), **kw)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory) -> dict[int, dict]:
    """The in-process sweep's rows, by width."""
    return {r["dim"]: r for r in sweep(folder, tmp_path_factory.mktemp("ref") / "sw")}


def same_row(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        if k == "seconds":
            continue
        if isinstance(v, float):
            assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-12), k
        else:
            assert got[k] == v, k


def csv_rows(out: Path) -> list[dict]:
    """results.csv's rows, checked whole: one per width, every field present, no temp file beside it."""
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    dims = [int(r["dim"]) for r in rows]
    assert len(dims) == len(set(dims))
    assert all(None not in r and r["ppl_measured"] for r in rows)
    assert not list(out.glob(".*.tmp"))
    return rows


def runs(out: Path) -> list[dict]:
    return json.loads((out / "settings.json").read_text())["runs"]


# ----------------------------------------------------------------------------- tests


def test_ray_rows_equal_in_process(cluster, folder, reference, tmp_path) -> None:
    out = tmp_path / "ray"
    rows = sweep(folder, out, executor=RayExecutor())
    assert [r["dim"] for r in rows] == DIMS
    for r in rows:
        same_row(r, reference[r["dim"]])
    assert [int(r["dim"]) for r in csv_rows(out)] == DIMS
    (run,) = runs(out)
    assert run["executor"] == "ray" and run["cluster_address"] == cluster
    assert run["per_point"] == {"num_cpus": 1, "num_gpus": 0} and run["cluster"]["CPU"] == 2
    assert run["model"] == "by name on each worker" and sorted(run["measured"]) == [32, 40, 48, 64]
    assert run["finished"] and run["failed"] == {}
    # a point asking for more than the cluster has is refused at once, in one line
    with pytest.raises(UsageError, match="0 GPU"):
        RayExecutor(gpus_per_point=1).connect()


def test_bench_measures_on_the_cluster(cluster, folder, reference, tmp_path, capsys) -> None:
    """The notebook's bench sends "Measure" clicks to the cluster; an in-memory model travels by value."""
    lm = load_model(str(folder), device="cpu")
    bench = SweepBench.open(cfg(folder), tmp_path / "bench", lm=lm, device="cpu", progress=False,
                       log=lambda m: None, executor=RayExecutor())
    ex = sweep_explorer(bench, dim=40)
    ex.controls["measure"].click()
    same_row(ex.state["last_measured"], reference[40])
    assert f"interleaved bases, on Ray at {cluster})" in capsys.readouterr().out
    (run,) = runs(tmp_path / "bench")
    assert run["model"] == "shipped through the object store" and run["measured"] == [40]
    assert list(bench.table()["dim"]) == [40]
    # the target box's widths are measured on the cluster too
    ex.controls["target"].value = "ppl<=1.2x"
    ex.controls["find"].click()
    (run,) = runs(tmp_path / "bench")
    assert 40 in run["measured"] and 2 <= len(run["measured"]) <= 4
    assert "target ppl&lt;=1.2x" in ex.outputs["answer"].value or "misses" in ex.outputs["answer"].value


def test_killed_worker_is_retried(cluster, folder, reference, tmp_path) -> None:
    log = tmp_path / "attempts"
    log.mkdir()
    out = tmp_path / "sw"
    rows = sweep(folder, out, executor=Faulty(partial(die_once, log)))
    attempts = {d: (log / str(d)).read_text().split() for d in DIMS[1:]}
    assert {d: len(a) for d, a in attempts.items()} == {48: 2, 40: 1, 32: 1}, attempts
    assert [int(r["dim"]) for r in csv_rows(out)] == DIMS
    for r in rows:
        same_row(r, reference[r["dim"]])


def test_failing_point_is_reported_and_the_others_finish(cluster, folder, reference, tmp_path) -> None:
    out = tmp_path / "sw"
    with pytest.raises(PointsFailed, match=r"1 point\(s\) failed \(d'=40: ValueError: boom at d'=40\)"):
        sweep(folder, out, executor=Faulty(fail_at_40))
    assert [int(r["dim"]) for r in csv_rows(out)] == [64, 48, 32]
    assert runs(out)[0]["failed"] == {"40": "ValueError: boom at d'=40"}
    rows = sweep(folder, out, executor=RayExecutor())  # a rerun measures only the failed point
    assert runs(out)[1]["measured"] == [40]
    for r in rows:
        same_row(r, reference[r["dim"]])


def test_ctrl_c_cancels_outstanding_points(cluster, folder, reference, tmp_path) -> None:
    out = tmp_path / "sw"

    def interrupt_after_48(msg: str) -> None:
        if msg.startswith("d'=  48"):
            raise KeyboardInterrupt

    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        sweep(folder, out, dims=[64, 48, 40], executor=Faulty(slow_but_48), log=interrupt_after_48)
    assert time.perf_counter() - t0 < 40  # d'=40 (a minute long) was cancelled, not waited for
    assert [int(r["dim"]) for r in csv_rows(out)] == [64, 48]
    assert runs(out)[0]["stopped_by"] == "KeyboardInterrupt"
    deadline = time.time() + 20
    while ray.available_resources().get("CPU", 0) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2  # the cancelled task let go of its CPU


DRIVER = """
import sys
from functools import partial
from pathlib import Path
import ray
sys.path[:0] = [{here!r}, {tests!r}]
from test_ray import Faulty, stuck, sweep
ray.init(address={address!r})
sweep(Path({folder!r}), Path({out!r}), dims=[64, 48], executor=Faulty(partial(stuck, Path({log!r}))))
"""


def stuck(log: Path, fn, work, model, dim: int):
    """A point that says it started, then takes a minute (the test kills its driver meanwhile)."""
    _attempt(log, dim)
    time.sleep(60)
    return fn(work, model, dim)


def test_resume_after_killed_driver(cluster, folder, reference, tmp_path) -> None:
    """A driver killed (SIGKILL) while its point runs on a worker leaves whole rows only; the next run
    resumes there."""
    out, log = tmp_path / "sw", tmp_path / "attempts"
    log.mkdir()
    code = DRIVER.format(here=str(HERE), tests=str(HERE.parents[1]), address=cluster, folder=str(folder),
                         out=str(out), log=str(log))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (log / "48").exists():
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [int(r["dim"]) for r in csv_rows(out)] == [64]
    assert runs(out)[0]["finished"] is None and runs(out)[0]["points"] == [48]  # killed mid-point
    logs: list[str] = []
    rows = sweep(folder, out, executor=RayExecutor(), log=logs.append)
    assert any("1 point(s) already measured, 3 to go" in m for m in logs)
    assert sorted(runs(out)[1]["measured"]) == [32, 40, 48]
    assert [int(r["dim"]) for r in csv_rows(out)] == DIMS
    for r in rows:
        same_row(r, reference[r["dim"]])
