"""The same small sweep in-process and on a local Ray cluster (2 workers x 1 CPU by default), side by side:
wall time of the points, each point's own measuring time, the speed-up, and the overhead of a Ray task (an
empty task's round trip on a warm worker; a fresh worker's start: imports, model load, shared state).

    .venv/bin/python bench/bench_ray.py [--model smollm2-135m-instruct] [--max-layers 4] [--workers 2]
        [--sparsities 0.1,0.2,0.3,0.4] [--cal-samples 8] [--seqlen 128] [--eval-windows 8]
        [--out runs/bench_ray]

The dense state (dense metrics and every dense statistic) is made once, in-process, and copied to the Ray
sweep's folder, so both time only their points; the Ray time includes the workers' cold start (a fresh
cluster), and the cluster's own start is printed beside it. Both sweeps' rows are compared (measured columns).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch

from slicedim_lab import schema
from slicedim_lab.predict.statistics import statistics as dense_statistics
from slicedim_lab.sweep.config import SweepConfig
from slicedim_lab.sweep.executors import RayExecutor, require_ray
from slicedim_lab.sweep.folder import DENSE_FILE
from slicedim_lab.sweep.runner import SweepRunner

MEASURED = (schema.measured("ppl"), schema.measured("acc"), schema.measured("mc_acc"), "cal_loss", "params")


def empty_point(work, model, dim: int) -> int:
    """A point function that does nothing: what a Ray task costs beyond its work."""
    return dim


def runner(cfg: SweepConfig, out: Path, args, executor=None) -> SweepRunner:
    return SweepRunner.open(cfg, out, device="cpu", batch_size=4, progress=False, max_layers=args.max_layers,
                            log=lambda m: None, executor=executor)


def timed_points(r: SweepRunner, points: list[tuple[int, float]]) -> float:
    t0 = time.perf_counter()
    failed = r.measure_points(points)
    assert not failed, failed
    return time.perf_counter() - t0


def task_round_trip(ex: RayExecutor, n: int) -> float:
    """Mean wall time of one empty task, submitted and awaited one at a time (warm workers)."""
    t0 = time.perf_counter()
    for d in range(n):
        list(ex.map(empty_point, [d]))
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--max-layers", type=int, default=4, help="keep the first N decoder layers (default 4)")
    p.add_argument("--workers", type=int, default=2, help="CPUs of the local cluster, one per point")
    p.add_argument("--sparsities", default="0.1,0.2,0.3,0.4")
    p.add_argument("--cal-samples", type=int, default=8)
    p.add_argument("--seqlen", type=int, default=128)
    p.add_argument("--eval-windows", type=int, default=8)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the in-process sweep (default: torch's, one per core)")
    p.add_argument("--out", default="runs/bench_ray")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ray = require_ray()
    cfg = SweepConfig(model=args.model, cal_samples=args.cal_samples, cal_seqlen=args.seqlen,
                      eval_seqlen=args.seqlen, max_eval_windows=args.eval_windows, mc_items=16)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    local = runner(cfg, out / "in-process", args)
    points = local.points(sparsities=[float(s) for s in args.sparsities.split(",")])
    local.cover([d for d, _ in points])  # the dense state, once; copied for the Ray sweep
    (out / "ray").mkdir(parents=True)
    for name in ("settings.json", DENSE_FILE, *(st.file for st in dense_statistics(cfg.basis))):
        if (out / "in-process" / name).exists():
            shutil.copy(out / "in-process" / name, out / "ray" / name)
    t_local = timed_points(local, points)

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False)
    t_init = time.perf_counter() - t0
    ex = RayExecutor()
    remote = runner(cfg, out / "ray", args, executor=ex)
    remote.cover([d for d, _ in points])
    t_ray = timed_points(remote, points)
    rt = task_round_trip(ex, 20)
    ray.shutdown()

    a, b = local.measured(), remote.measured()
    diff = {k: max(abs(b[d][k] / a[d][k] - 1) for d in a if a[d].get(k)) for k in MEASURED}
    sec_a = statistics.mean(a[d]["seconds"] for d, _ in points)
    sec_b = [b[d]["seconds"] for d, _ in points]
    n, w = len(points), args.workers
    widths = ", ".join(str(d) for d, _ in points)
    print(f"model {remote.cfg.model}: D={local.hidden}, {n} points (d' {widths}), interleaved; calibration "
          f"{args.cal_samples} x {args.seqlen}, eval {args.eval_windows} x {args.seqlen}")
    table([("", f"in-process ({torch.get_num_threads()} thr)", f"ray, {w} x 1 CPU"),
           ("wall time of the points", f"{t_local:.1f} s", f"{t_ray:.1f} s"),
           ("per point, measuring (mean)", f"{sec_a:.1f} s", f"{statistics.mean(sec_b):.1f} s"),
           ("cluster start (ray.init)", "-", f"{t_init:.1f} s"),
           ("speed-up (points only)", "1.00x", f"{t_local / t_ray:.2f}x"),
           ("speed-up (with the cluster start)", "1.00x", f"{t_local / (t_ray + t_init):.2f}x")])
    print(f"\noverhead per task: an empty task's round trip on a warm worker {1000 * rt:.1f} ms; in the "
          f"sweep {(t_ray * w - sum(sec_b)) / n:.1f} worker-s per point beyond measuring (fresh workers: "
          "imports, model load, shared state; waiting for the last point)")
    same = "; ".join(f"{k} {v:.1e}" for k, v in diff.items())
    print(f"rows, Ray vs in-process, max relative difference: {same} (0 when a point gets as many torch "
          "threads in both: float32 sums depend on the thread count)")


def table(rows: list[tuple[str, str, str]]) -> None:
    print()
    for name, x, y in rows:
        print(f"{name:<34} {x:>20} {y:>16}")

if __name__ == "__main__":
    main()
