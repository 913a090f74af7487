"""Host and device memory of a slicing run: peaks, and giving back the pages of consumed dense weights.

A model loaded from safetensors on the CPU holds its weights memory-mapped from the checkpoint (transformers
maps the files; nothing is read until a weight is touched). Once slicing has consumed a dense layer, its
pages are dropped from the process (`release_pages`): they stay valid and are read again from the file (or
the page cache) if the dense model is used later, as a sweep does for its next width. Only clean pages of
a file mapping are dropped — a mapping with any written (copied-on-write) page is left alone — so no
tensor's value can change. Linux only; elsewhere the functions report nothing and drop nothing.
"""

from __future__ import annotations

import copy
import ctypes
import mmap
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

_MADV_DONTNEED = 4
_STATUS = Path("/proc/self/status")
_SMAPS = Path("/proc/self/smaps")


def _status_kb(field: str) -> int | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def peak_rss_bytes() -> int:
    """The process's peak resident set (VmHWM: anonymous and file-backed pages), in bytes."""
    kb = _status_kb("VmHWM")
    if kb is None:  # macOS reports bytes, Linux kilobytes
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024
    return kb * 1024


def rss_bytes() -> int | None:
    """The process's resident set now, in bytes (None where /proc is missing)."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


def reset_device_peak(device: torch.device) -> None:
    """Start a fresh device-memory peak (CUDA; a no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def device_peak_bytes(device: torch.device) -> int | None:
    """Peak bytes allocated on a CUDA device since the last reset (None for other devices)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


@dataclass(frozen=True)
class _Mapping:
    start: int
    end: int
    clean_file: bool  # a file mapping none of whose pages was written


def _mappings() -> list[_Mapping]:
    """The process's memory mappings from /proc/self/smaps, each marked clean-file or not."""
    out: list[_Mapping] = []
    start = end = 0
    is_file = False
    for line in _SMAPS.read_text().splitlines():
        head = line.split(maxsplit=6)
        if "-" in head[0] and not head[0].endswith(":"):
            lo, hi = head[0].split("-")
            start, end = int(lo, 16), int(hi, 16)
            is_file = len(head) >= 6 and head[5].startswith("/") and int(head[4]) != 0
        elif head[0] == "Anonymous:":
            out.append(_Mapping(start, end, is_file and int(head[1]) == 0))
    return out


def _libc_madvise():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise


def release_pages(tensors: Iterable[Tensor | None]) -> int:
    """Drop the resident pages of CPU tensors that are clean views of a memory-mapped file (a checkpoint
    that transformers mapped): their values stay, read again from the file when touched. Only whole pages
    inside each tensor's bytes are dropped; other tensors are left alone (free them by dropping
    references). Returns the bytes advised away."""
    ranges = []
    for t in tensors:
        if t is None or t.device.type != "cpu" or t.is_meta or not t.numel():
            continue
        if t.is_contiguous():  # its own bytes (a block of rows of a larger table, say)
            ranges.append((t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()))
        else:
            s = t.untyped_storage()
            ranges.append((s.data_ptr(), s.data_ptr() + s.nbytes()))
    if not ranges or not _SMAPS.exists():
        return 0
    maps = [m for m in _mappings() if m.clean_file]
    madvise, page, done = _libc_madvise(), mmap.PAGESIZE, 0
    for lo, hi in sorted(set(ranges)):
        if not any(m.start <= lo and hi <= m.end for m in maps):
            continue
        a, b = -(-lo // page) * page, hi // page * page  # whole pages inside the storage only
        if b > a and madvise(a, b - a, _MADV_DONTNEED) == 0:
            done += b - a
    return done


def tensors_of(module: nn.Module) -> list[Tensor]:
    """A module's parameters and buffers (each once)."""
    return [*module.parameters(), *module.buffers()]


def storage_ptrs(module: nn.Module) -> set[int]:
    """Where a module's tensors keep their data (storage addresses), to tell later which tensors share it."""
    return {t.untyped_storage().data_ptr() for t in tensors_of(module) if not t.is_meta} - {0}


def alias_copy(module: nn.Module) -> nn.Module:
    """A copy of the module tree whose parameters and buffers are new tensor objects on the original's
    storage: replacing or moving one of them never touches the original, and no weight is duplicated (the
    caller must not write into them in place). Tied parameters stay tied."""
    memo: dict[int, Tensor] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(p.detach(), requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = b.detach()
    return copy.deepcopy(module, memo)


def own_tensors(module: nn.Module, foreign: set[int]) -> int:
    """Give `module` its own copy of every parameter and buffer whose storage is in `foreign` (tied ones stay
    tied). Returns the bytes copied."""
    memo: dict[int, Tensor] = {}
    copied = 0
    for mod in module.modules():
        for table in (mod._parameters, mod._buffers):
            for name, t in table.items():
                if t is None or t.is_meta or t.untyped_storage().data_ptr() not in foreign:
                    continue
                if id(t) not in memo:
                    data = t.detach().clone()
                    copied += data.numel() * data.element_size()
                    memo[id(t)] = nn.Parameter(data, t.requires_grad) if isinstance(t, nn.Parameter) else data
                table[name] = memo[id(t)]
    return copied


# The watcher runs the command and reports its peak. It exists because the kernel's max resident set of a
# child (wait4) includes the image it was forked from: a child forked by a large process (pytest after a
# model fixture) starts with that process's resident set as its peak. The watcher is a fresh, small
# interpreter, so the command it forks starts small and wait4 there measures the command alone.
_WATCH = """
import os, subprocess, sys, time
out, kill_above, poll_s, cmd = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
def rss(pid):
    try:
        text = open(f"/proc/{pid}/status").read()
    except OSError:
        return 0
    return next((int(x.split()[1]) * 1024 for x in text.splitlines() if x.startswith("VmRSS:")), 0)
proc = subprocess.Popen(cmd)
killed = False
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if kill_above and not killed and rss(proc.pid) > kill_above:
        proc.kill()
        killed = True
    time.sleep(poll_s)
peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
with open(out, "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {peak} {int(killed)}")
"""


@dataclass
class Measured:
    """A finished subprocess: exit status, peak resident set (its own, from wait4) and its output."""

    returncode: int
    peak_rss: int
    stdout: str
    stderr: str
    killed: bool  # stopped for passing `kill_above`


def run_measured(cmd: list[str], kill_above: int | None = None, env: dict | None = None,
                 poll_s: float = 0.1) -> Measured:
    """Run `cmd` in a fresh process and return its peak RSS (the kernel's max resident set of that process,
    via wait4, taken by a small watcher process so the caller's own size is not counted); stopped (SIGKILL)
    as soon as its resident set passes `kill_above` bytes, so a check that fails cannot exhaust a shared
    machine."""
    with (tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err,
          tempfile.TemporaryDirectory() as tmp):
        report = Path(tmp) / "measured"
        watcher = [sys.executable, "-S", "-c", _WATCH, str(report), str(kill_above or 0), str(poll_s), *cmd]
        subprocess.run(watcher, stdout=out, stderr=err, env=env, check=False)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        if not report.exists():
            raise RuntimeError(f"the memory watcher did not report:\n{stderr[-2000:]}")
        code, peak, killed = (int(x) for x in report.read_text().split())
        return Measured(code, peak, stdout, stderr, bool(killed))
