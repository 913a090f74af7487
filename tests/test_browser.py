"""Headless-browser check: JupyterLab in Debian chromium runs `00_quickstart` and renders plotly figures.

Starts JupyterLab on a free localhost port with a token over a prepared copy of the notebook (small sizes
injected with papermill's prepare-only mode), opens it with playwright-core driving /usr/bin/chromium
(`tests/browser/run_notebook.js`), runs all cells, clicks the notebook's Generate button (the callback runs in
the kernel, the answer comes back through the widget comm), and checks that `.js-plotly-plot` elements
rendered. Screenshots go to a tmp dir (printed; kept with `--basetemp`).

`tests/browser/setup.sh` installs chromium and playwright-core idempotently; set SLICEDIM_SKIP_BROWSER=1 to
skip this test on a machine that cannot have a browser.
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
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSER_DIR = ROOT / "tests" / "browser"
NOTEBOOK = ROOT / "notebooks" / "00_quickstart.ipynb"
SMALL = dict(CAL_WINDOWS=2, CAL_SEQLEN=64, EVAL_WINDOWS=2, EVAL_SEQLEN=64, MAX_NEW_TOKENS=8, DEVICE="cpu")

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
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "jcfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "jrt"),
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


def drive(url: str, token: str, notebook: str, shots: Path, timeout_s: int = 840, **opts: object) -> dict:
    """Run `tests/browser/run_notebook.js` on an open notebook; returns its JSON result."""
    args = {"url": url, "token": token, "notebook": notebook, "shots": str(shots), "timeout_s": timeout_s,
            **opts}
    proc = subprocess.run(["node", str(BROWSER_DIR / "run_notebook.js"), json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout_s + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(notebook: Path, folder: Path, **params: object) -> None:
    """Copy `notebook` into `folder` with `params` injected (papermill's prepare-only mode, no execution)."""
    import papermill

    papermill.execute_notebook(str(notebook), str(folder / notebook.name), prepare_only=True,
                               parameters=params)


def test_quickstart_renders_plotly_in_jupyterlab(browser_ready: None, tmp_path: Path) -> None:
    work, shots, out = tmp_path / "lab", tmp_path / "screenshots", tmp_path / "out"
    for d in (work, shots, out):
        d.mkdir()
    prepare(NOTEBOOK, work, **SMALL, INTERACTIVE=True, OUT_DIR=str(out))
    with jupyterlab(work, tmp_path) as (url, token):
        result = drive(url, token, NOTEBOOK.name, shots)
    print(f"screenshots: {shots}\n" + "\n".join(result["log"]))
    assert not result["errors"], result["errors"]
    assert result["plots"] >= 1, "no rendered plotly figure (.js-plotly-plot) in the page"
    assert result["clicked"] and "dense" in result["answers"], result
    assert result["screenshots"] and all(Path(p).stat().st_size > 10_000 for p in result["screenshots"])
    record = json.loads((out / "00_quickstart.json").read_text())  # the notebook's own record of its run
    assert record["figures"]
