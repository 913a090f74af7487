"""Every notebook opens and runs in JupyterLab in headless Debian chromium, and its widget interactions
change a rendered figure; the static pages of `make pages` open from disk with the network blocked and draw
every figure.

One JupyterLab server (free localhost port, fresh token) serves prepared copies of all notebooks (the small
sizes of `notebook_params` injected with papermill's prepare-only mode, INTERACTIVE=True). One chromium,
driven by playwright-core (`browser/run_notebooks.js`), opens them one after the other: runs all cells,
checks that no cell failed and that plotly figures rendered (`.js-plotly-plot`), moves one slider with the
keyboard as a user would (or clicks a button) and waits until the data of a figure in that explorer differ;
in 00 it also clicks Generate (the answers come back through the widget comm). Screenshots before and after
each interaction are kept in the test's tmp dir (printed; `--basetemp` to choose it).

The static site (`slicedim_lab.viz.pages`, made from the headless papermill runs: their explorers' boxes at
the state the scripted moves left) is opened page by page from disk by `browser/check_pages.js`: every
request that is not a file: URL is aborted, and every figure must be drawn (plotly svg), every widget view
rendered with the sliders at their saved values, the token view's hover card present, with no page error.

`browser/setup.sh` installs chromium and playwright-core idempotently; SLICEDIM_SKIP_BROWSER=1 skips this.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from notebook_runs import HeadlessRuns

ROOT = Path(__file__).resolve().parents[2]
NB_DIR = ROOT / "notebooks"
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
NOTEBOOK_TIMEOUT_S = 300

# one interaction per notebook: a slider (its description; nth of that name; key presses) or a button
INTERACTIONS: dict[str, dict] = {
    "00_quickstart": dict(slider="site", keys=1, generate=True),  # the spectrum at the next site
    "01_activation_flow": dict(slider="layer", keys=-1),  # LAYER=1 -> 0: that layer's spectra
    "02_linear_maps": dict(slider="layer", keys=-1),  # that layer's maps
    "03_dimension_sweep": dict(slider="d'", keys=-1),  # the predictors' values at the slider's d'
    "04_theory": dict(steps=[dict(slider="d'", nth=-1, keys=-1),  # the theory explorer's per-site charge
                             dict(slider="s", keys=1)]),  # two models: the energy discarded at another s
    # the token table at d' − 8 (the by-kind bars and the scatter), then a coloured token's hover card
    "05_tokens": dict(slider="d'", keys=-1, hover=".sdl-tok[data-tip]"),
}
NOTEBOOKS = sorted(INTERACTIONS)

pytestmark = [pytest.mark.slow, pytest.mark.smol]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser_ready() -> None:
    if os.environ.get("SLICEDIM_SKIP_BROWSER"):
        pytest.skip("SLICEDIM_SKIP_BROWSER is set")
    if shutil.which("node") is None:
        pytest.skip("node is not installed (needed to drive the browser with playwright-core)")
    subprocess.run(["bash", str(BROWSER_DIR / "setup.sh")], check=True, timeout=900)


def _lab_settings(folder: Path) -> None:
    """Lab settings for a headless run: render every cell (no windowing), no news pop-up."""
    (folder / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (folder / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (folder / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@contextlib.contextmanager
def jupyterlab(root: Path, tmp: Path) -> Iterator[tuple[str, str]]:
    """A JupyterLab server over `root` on a free localhost port with a fresh token; yields (url, token)."""
    settings = tmp / "settings"
    _lab_settings(settings)
    port, token = _free_port(), os.urandom(12).hex()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "jrt"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'ws'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = tmp / "lab.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(120):
                if server.poll() is not None:
                    break
                try:
                    urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    time.sleep(1)
            else:
                pytest.fail(f"JupyterLab did not start; log: {log_path.read_text()[-2000:]}")
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited; log: {log_path.read_text()[-2000:]}")
            yield url, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def drive(url: str, token: str, notebooks: list[dict], timeout_s: int = NOTEBOOK_TIMEOUT_S) -> list[dict]:
    """Run `browser/run_notebooks.js` over `notebooks` (one dict each, see the script); its JSON results."""
    args = {"url": url, "token": token, "timeout_s": timeout_s, "notebooks": notebooks}
    proc = subprocess.run(["node", str(BROWSER_DIR / "run_notebooks.js"), json.dumps(args)],
                          capture_output=True, text=True, timeout=len(notebooks) * (timeout_s + 60))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(notebook: Path, folder: Path, **params: object) -> None:
    """Copy `notebook` into `folder` with `params` injected (papermill's prepare-only mode, no execution),
    unpaired: with jupytext installed, JupyterLab would otherwise write (and reload from) a paired .py."""
    import nbformat
    import papermill

    copy = folder / notebook.name
    papermill.execute_notebook(str(notebook), str(copy), prepare_only=True, parameters=params,
                               progress_bar=False)
    nb = nbformat.read(copy, as_version=4)
    nb.metadata.pop("jupytext", None)
    nbformat.write(nb, copy)


@pytest.fixture(scope="module")
def lab_runs(headless_runs: HeadlessRuns, browser_ready: None, tmp_path_factory: pytest.TempPathFactory,
             notebook_params: Callable[..., dict]) -> tuple[Path, dict[str, dict]]:
    """All notebooks run in one JupyterLab and one chromium; (tmp dir, the driver's result per notebook).
    Requesting `headless_runs` first starts the selected papermill runs, which overlap these."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    lab = tmp / "lab"
    lab.mkdir()
    for name in NOTEBOOKS:
        prepare(NB_DIR / f"{name}.ipynb", lab, **notebook_params(name, tmp / name, True))
    jobs = [{"notebook": f"{name}.ipynb", "shots": str(tmp / name / "screenshots"), **INTERACTIONS[name]}
            for name in NOTEBOOKS]
    with jupyterlab(lab, tmp) as (url, token):
        results = drive(url, token, jobs)
    return tmp, {r["notebook"].removesuffix(".ipynb"): r for r in results}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(name: str, lab_runs: tuple[Path, dict[str, dict]]) -> None:
    tmp, runs = lab_runs
    result = runs[name]
    print(f"screenshots: {tmp / name / 'screenshots'}\n" + "\n".join(result["log"]))
    assert not result["errors"], result["errors"]
    assert result["plots"] >= 1, "no rendered plotly figure (.js-plotly-plot) in the page"
    assert result["changed"], f"moving {INTERACTIONS[name]} changed no figure's data"
    assert len(result["screenshots"]) >= 2 and all(Path(p).stat().st_size > 10_000
                                                   for p in result["screenshots"])
    if INTERACTIONS[name].get("hover"):
        assert "entered at site" in result["hover"], result["hover"]
    if INTERACTIONS[name].get("generate"):
        assert "dense" in result["answers"], result["answers"]
    record = json.loads((tmp / name / "out" / f"{name}.json").read_text())  # the notebook's last cell ran
    assert record["figures"], record


@pytest.mark.skipif(not os.environ.get("SLICEDIM_GEMMA_BROWSER"),
                    reason="notebook 00 on Gemma 3 in JupyterLab: set SLICEDIM_GEMMA_BROWSER=1 (minutes)")
def test_quickstart_runs_on_gemma3_in_jupyterlab(browser_ready: None, tmp_path: Path,
                                                 notebook_params: Callable[..., dict]) -> None:
    """Notebook 00 with MODEL = "gemma3-270m" at its default sizes (all 18 layers) runs all cells in
    JupyterLab, its site slider redraws the spectrum and Generate answers (the second embedded model)."""
    name = "00_quickstart"
    lab = tmp_path / "lab"
    lab.mkdir()
    small = notebook_params(name, tmp_path / name, True)  # only where it writes; default sizes
    prepare(NB_DIR / f"{name}.ipynb", lab, MODEL="gemma3-270m", DEVICE="cpu", INTERACTIVE=True,
            **{k: small[k] for k in ("OUT_DIR", "CACHE_DIR")})
    job = {"notebook": f"{name}.ipynb", "shots": str(tmp_path / "screenshots"), **INTERACTIONS[name]}
    with jupyterlab(lab, tmp_path) as (url, token):
        (result,) = drive(url, token, [job])
    print(f"screenshots: {tmp_path / 'screenshots'}\n" + "\n".join(result["log"]))
    assert not result["errors"], result["errors"]
    assert result["plots"] >= 1 and result["changed"], result
    assert "dense" in result["answers"], result["answers"]
    record = json.loads((tmp_path / name / "out" / f"{name}.json").read_text())
    assert record["figures"], record


def check_pages(pages: list[Path], shots: Path, timeout_s: int = 120) -> list[dict]:
    """Run `browser/check_pages.js` over `pages` (opened from disk, network blocked); its JSON results."""
    args = {"pages": [str(p) for p in pages], "shots": str(shots), "timeout_s": timeout_s}
    proc = subprocess.run(["node", str(BROWSER_DIR / "check_pages.js"), json.dumps(args)],
                          capture_output=True, text=True, timeout=len(pages) * (timeout_s + 30))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_static_pages_render_offline(headless_runs: HeadlessRuns, browser_ready: None, tmp_path: Path
                                     ) -> None:
    site = headless_runs.site(NOTEBOOKS)
    built = json.loads((site / "site.json").read_text())
    assert sorted(e["name"] for e in built["pages"]) == NOTEBOOKS and built["report"]
    pages = [site / "index.html", site / "report.html"] + [site / e["page"] for e in built["pages"]]
    results = {Path(r["page"]).stem: r for r in check_pages(pages, tmp_path / "shots")}
    print(f"screenshots: {tmp_path / 'shots'}")
    for name, r in results.items():
        assert not r["blocked"], (name, r["blocked"])  # nothing was fetched from the network
        assert not r["errors"], (name, r["errors"])
    assert results["report"]["plots"] >= 3  # report.html: plotly.js inline, its panels drawn
    for e in built["pages"]:
        r = results[e["name"]]
        assert r["figures"] == e["figures"] >= 1 and r["drawn"] == r["figures"], (e["name"], r, e)
        assert r["widgets"] >= 1 and r["sliders"], (e["name"], r)  # the widget boxes, from their saved state
        assert all(readout for _, readout in r["sliders"]), r["sliders"]
    assert ["d'", "336"] in results["05_tokens"]["sliders"]  # the d' the headless moves left (432 − 96)
    assert "entered at site" in results["05_tokens"]["token_tip"]  # the hover card of a coloured token
    assert ["layer", "1"] in results["01_activation_flow"]["sliders"]  # LAYER as the run set it
