"""Atomic writes: a file or a folder is either complete or absent, never half-written.

Everything this package writes to disk (JSON, CSV, caches, converted models, sliced exports, reports) goes
through `atomic_file` or `atomic_folder`: the content is produced under a temporary name beside the target
and renamed into place, so an interrupted or failing write leaves neither a partial target nor a temp file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temp file beside `path` for writing; on a clean exit it replaces `path` (mode 0644)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, payload: Any, indent: int = 1) -> Path:
    """Write `payload` as JSON (and a final newline) to `path` atomically."""
    return write_text(path, json.dumps(payload, indent=indent) + "\n")


def atomic_folder(target: str | Path, write: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Fill a temp folder beside `target` with `write(tmp)`, then rename it into place.

    A failing `write` leaves no `target` and no temp folder. With `replace`, an existing `target` is replaced
    (it is removed only once the new folder is complete); without it, a `target` that another process
    finished first is kept and ours discarded."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        if replace and target.exists():
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block: processes that would do the same
    long write (e.g. two notebooks converting one model) take turns instead of doing it twice."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
