"""Atomic writes (files.py): a file or a folder is either complete or absent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slicedim_lab.files import atomic_file, atomic_folder, file_lock, write_json, write_text


def test_atomic_folder(tmp_path: Path) -> None:
    target = tmp_path / "m"

    def failing(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt  # an interrupted conversion

    with pytest.raises(KeyboardInterrupt):
        atomic_folder(target, failing)
    assert list(tmp_path.iterdir()) == []

    atomic_folder(target, lambda f: (f / "a.txt").write_text("first"))
    assert (target / "a.txt").read_text() == "first"
    # another process finished first: its folder is kept, ours discarded
    atomic_folder(target, lambda f: (f / "a.txt").write_text("second"))
    assert (target / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_atomic_folder_replace(tmp_path: Path) -> None:
    target = tmp_path / "m"
    atomic_folder(target, lambda f: (f / "a.txt").write_text("first"))
    atomic_folder(target, lambda f: (f / "b.txt").write_text("second"), replace=True)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    with pytest.raises(RuntimeError):
        atomic_folder(target, lambda f: (_ for _ in ()).throw(RuntimeError("boom")), replace=True)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # a failed replacement keeps the old one
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_atomic_file_complete_or_absent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and path.read_text().endswith("\n")
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path) as f:
            f.write("half")
            raise KeyboardInterrupt
    assert json.loads(path.read_text()) == {"a": 1}  # the old content survives an interrupted write
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # and no temp file is left
    write_text(path, "plain")
    assert path.read_text() == "plain"


def test_file_lock_makes_processes_take_turns(tmp_path: Path) -> None:
    """While one process holds the lock, another waits: their critical sections never overlap."""
    lock, log = tmp_path / "x.lock", tmp_path / "log.txt"
    child = ("import sys, time; from slicedim_lab.files import file_lock\n"
             "with file_lock(sys.argv[1]):\n"
             "    open(sys.argv[2], 'a').write('child-in\\n')\n")
    with file_lock(lock):
        proc = subprocess.Popen([sys.executable, "-c", child, str(lock), str(log)])
        time.sleep(1.0)  # the child is blocked on the lock meanwhile
        assert not log.exists()
        log.write_text("parent-out\n")
    assert proc.wait(timeout=60) == 0
    assert log.read_text().splitlines() == ["parent-out", "child-in"]
