"""What the notebooks tier shares (imported by conftest.py and the tests): the small sizes every notebook
runs with here — the first 2 decoder layers of the embedded model, 2 windows × 64 tokens — and the headless
papermill runs, one at a time in a background thread so they can overlap the browser test's runs. Each
headless run carries the static-page builder's last cell (`slicedim_lab.viz.static.DUMP_CODE`), so the
static site of `make pages` is made from these runs with no run of its own (`HeadlessRuns.site`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat

from slicedim_lab.viz.pages import with_dump_cell

ROOT = Path(__file__).resolve().parents[2]
NB_DIR = ROOT / "notebooks"
HEADLESS_TEST = "test_notebook_runs_headless"
HEADLESS_TIMEOUT_S = 600
WIDGETS_DIST = NB_DIR / "pages" / "node_modules" / "@jupyter-widgets" / "html-manager" / "dist"

SMALL = dict(DEVICE="cpu", MAX_LAYERS=2, BATCH_SIZE=2, CAL_WINDOWS=2, CAL_SEQLEN=64, EVAL_WINDOWS=2,
             EVAL_SEQLEN=64)
EXTRA = {
    "00_quickstart": dict(MAX_NEW_TOKENS=6),
    "01_activation_flow": dict(LAYER=1, NODES=1, COMPARE_INTERLEAVED=False),
    "02_linear_maps": dict(LAYER=1),
    "03_dimension_sweep": dict(GRAD_WINDOWS=2, MC_ITEMS=4, MEASURE_SPARSITIES=[0.25], MEASURE_DIMS=[288],
                               SEMI_DIMS=[432]),
    # SmolLM2 against itself (2 layers): section 7's predicted curves run on SmolLM2 only
    "04_theory": dict(GRAD_WINDOWS=2, COMPARE_MODEL="smollm2-135m-instruct", PREDICT_SECOND=True),
    "05_tokens": dict(NODES=1),
    "06_width_plan": dict(GRAD_WINDOWS=2),
}


def small_params(name: str, work: Path, interactive: bool, cache: Path | None = None) -> dict:
    """Papermill parameters of a quick run of notebook `name`, writing under `work`; the notebooks' cache in
    `cache` (None: `work/cache`), which runs of the same sizes share."""
    params = {**SMALL, **EXTRA[name], "INTERACTIVE": interactive, "OUT_DIR": str(work / "out"),
              "CACHE_DIR": str(cache or work / "cache")}
    if name == "03_dimension_sweep":
        params["SWEEP_DIR"] = str(work / "sweep")
    return params


class HeadlessRuns:
    """Papermill runs (INTERACTIVE=False) of notebooks, one at a time in a background thread, each in a
    `python -m papermill` process; `result(name)` waits for one and returns its folder (`out/`, the executed
    notebook, `sweep/`). `cache`: the notebooks' cache folder the runs share (None: one per run)."""

    def __init__(self, tmp: Path, cache: Path | None = None) -> None:
        self.tmp, self.cache = tmp, cache
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="papermill")
        self._runs: dict[str, Future[Path]] = {}
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def start(self, names: list[str]) -> None:
        for name in names:
            if name not in self._runs:
                self._runs[name] = self._pool.submit(self._run, name)

    def result(self, name: str) -> Path:
        self.start([name])
        return self._runs[name].result()

    def site(self, names: list[str]) -> Path:
        """The static site (`slicedim_lab.viz.pages --executed`) of the headless runs of `names` (waiting for
        them): index.html, a page per notebook, report.html from notebook 03's sweep folder, site.json."""
        executed = [self.result(n) / f"{n}.ipynb" for n in names]
        out = self.tmp / "site"
        cmd = [sys.executable, "-m", "slicedim_lab.viz.pages", "--out", str(out),
               "--executed", ",".join(map(str, executed)), "--widgets-dist", str(WIDGETS_DIST)]
        self._call(cmd, self.tmp / "site.log", HEADLESS_TIMEOUT_S, "the static site")
        return out

    def _run(self, name: str) -> Path:
        work = self.tmp / name
        work.mkdir()
        source = work / "input.ipynb"  # the notebook with the static-page builder's last cell
        nbformat.write(with_dump_cell(nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)), source)
        cmd = [sys.executable, "-m", "papermill", str(source), str(work / f"{name}.ipynb"),
               "-y", json.dumps(small_params(name, work, False, self.cache)), "--cwd", str(work),
               "-k", "python3", "--no-progress-bar"]
        self._call(cmd, work / "papermill.log", HEADLESS_TIMEOUT_S, f"papermill on {name}")
        return work

    def _call(self, cmd: list[str], log_path: Path, timeout: int, what: str) -> None:
        """Run `cmd` (killed after `timeout` s), its output to `log_path`; an exit status ≠ 0 raises."""
        env = {**os.environ, "PLOTLY_RENDERER": "plotly_mimetype"}  # figures as JSON, as the site reads them
        with self._lock:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            self._procs.append(proc)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
        log_path.write_text(log)
        if proc.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{log[-4000:]}")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for proc in self._procs:
                if proc.poll() is None:
                    proc.terminate()
