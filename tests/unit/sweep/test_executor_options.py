"""`slicedim sweep --executor …`: one-line errors before any model loads (Ray absent, Ray-only options without
Ray, bad resources), a failed point's exit status, and the in-process executor's outcomes (no Ray needed)."""

from __future__ import annotations

import socket
import sys

import pytest

import slicedim_lab.cli.sweeps as cli_sweeps
from slicedim_lab.cli import main
from slicedim_lab.errors import UsageError
from slicedim_lab.sweep.executors import InProcess, PointsFailed, check_reachable, error_line

ARGS = ["sweep", "--model", "no-such-model", "--dims", "48", "--cal-samples", "2"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_without_ray_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError: Ray is absent
    out = tmp_path / "sw"
    assert main([*ARGS, "--out", str(out), "--executor", "ray"]) == 2
    line = one_error_line(capsys)
    assert "--executor ray needs Ray" in line and "pip install -e '.[ray]'" in line
    assert not out.exists()  # checked before anything is loaded or written


@pytest.mark.parametrize("extra, message", [
    (["--ray-address", "auto"], "--ray-address needs --executor ray"),
    (["--gpus-per-point", "1"], "--gpus-per-point needs --executor ray"),
    (["--executor", "dask"], "invalid choice: 'dask'"),
])
def test_bad_executor_options(tmp_path, capsys, extra, message) -> None:
    assert main([*ARGS, "--out", str(tmp_path / "sw"), *extra]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("extra, message", [
    (["--cpus-per-point", "0"], "cpus-per-point must be more than 0"),
    (["--gpus-per-point", "-1"], "gpus-per-point must be at least 0"),
    (["--max-retries", "-2"], "max-retries must be at least 0"),
    (["--dtype", "float16"], "(the workers measure on the CPU without --gpus-per-point)"),
])
def test_bad_ray_resources(tmp_path, capsys, extra, message) -> None:
    pytest.importorskip("ray")  # `make test` installs the `ray` extra
    assert main([*ARGS, "--out", str(tmp_path / "sw"), "--executor", "ray", *extra]) == 2
    assert message in one_error_line(capsys)


def test_unreachable_cluster_is_one_line() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UsageError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}")
    check_reachable("auto")  # left to Ray


def test_failed_points_exit_1_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    def failing(*a, **k):
        raise PointsFailed({40: "WorkerCrashedError: The worker died"}, tmp_path)

    monkeypatch.setattr(cli_sweeps, "run_sweep", failing)
    assert main([*ARGS, "--out", str(tmp_path / "sw")]) == 1
    line = one_error_line(capsys)
    assert "1 point(s) failed (d'=40: WorkerCrashedError: The worker died)" in line and "rerun" in line


def test_in_process_outcomes() -> None:
    """An error ends its point only; Ctrl-C ends the map."""
    ex = InProcess()
    ex.open(None, None, None, print)

    def fn(work, model, dim):
        if dim == 2:
            raise ValueError("bad width\nmore detail")
        if dim == 4:
            raise KeyboardInterrupt
        return dim * 10

    got = ex.map(fn, [1, 2, 3, 4, 5])
    assert [(o.dim, o.result) for o in (next(got), next(got), next(got))] == [(1, 10), (2, None), (3, 30)]
    with pytest.raises(KeyboardInterrupt):
        next(got)
    assert error_line(ValueError("bad width\nmore detail")) == "ValueError: bad width"
