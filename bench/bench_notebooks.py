"""How long a notebook's Run All takes, first with an empty notebook cache and then again (issue 24).

    .venv/bin/python bench/bench_notebooks.py [--only 00_quickstart,03_dimension_sweep] [--json F]

Each notebook runs twice through papermill (`python -m papermill`, a fresh kernel each time) at its default
parameters with INTERACTIVE=True, as a user's Run All does: first with a new, empty cache folder of its own
(the notebooks' `CACHE_DIR`; notebook 03's sweep folder lives there too), then again on that cache. The
model is expected to be converted already (its first load is a setup step, not a notebook's). Prints
seconds per run and the ratio second/first, measured side by side in this one run; the targets (first <= 90
s, second <= 20 s) are for an idle 2-core CPU, so a loaded machine's numbers say little about them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"


def run_all(name: str, work: Path, cache: Path, timeout: int) -> float:
    """Seconds of one papermill Run All of notebook `name` (INTERACTIVE=True, defaults, the shared cache)."""
    out = work / f"{name}-{time.monotonic_ns()}.ipynb"
    params = {"INTERACTIVE": True, "CACHE_DIR": str(cache), "OUT_DIR": str(work / "out")}
    cmd = [sys.executable, "-m", "papermill", "-k", "python3", "--no-progress-bar",
           str(NB_DIR / f"{name}.ipynb"), str(out), "-y", json.dumps(params)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=NB_DIR)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated notebook names (default: every notebook)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    names = ([n for n in args.only.split(",") if n]
             or sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb")))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_notebooks_") as tmp:
        work = Path(tmp)
        for name in names:
            cache = work / "cache" / name  # empty: no other notebook's entries either
            first = run_all(name, work, cache, args.timeout)
            second = run_all(name, work, cache, args.timeout)
            rows.append({"notebook": name, "first_s": first, "second_s": second, "ratio": second / first})
            print(f"{name:<22} first {first:6.1f} s   second {second:6.1f} s   "
                  f"second/first {second / first:4.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
