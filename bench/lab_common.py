"""Shared helpers of the `ours` lab (bench/ours_lab.py, bench/exp_*.py): corpora, inputs, caches.

Corpora beyond bench_predict's: built deterministically from text on this machine.
- `perldiag`: /usr/share/perl/5.36/pod/perldiag.pod with POD markup stripped (TUNING corpus).
- `git-relnotes`: /usr/share/doc/git/RelNotes/*.txt in sorted order (HELD-OUT plain-English corpus).
- `licenses`: /usr/share/common-licenses/* in sorted order (spare held-out corpus).
- Fresh held-out corpora of `ours` v2 (defined 2026-12-02 before anything was computed on them; plain-English
  technical text, none of it Python documentation): `cmake-help` (/usr/share/cmake-3.25/Help/**/*.rst in
  sorted order), `vim-help` (/usr/share/vim/vim90/doc/*.txt in sorted order), `coreutils-info`
  (/usr/share/info/coreutils.info.gz, decompressed).
Settings are those of issue 12 / make demo: 32 x 512 calibration windows, 16 held-out gradient windows,
16 eval windows x 512, widths 512, 456, 400, 344, 288.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# The package is being restructured while this lab runs: every experiment imports a pinned snapshot of
# slicedim_lab at PKG_COMMIT (git archive into runs/lab/pkg), so numbers do not change under our feet.
# Without the snapshot, the working tree's package is used and `need` finds names wherever they moved.
PKG_COMMIT = "1e8c26c"
_PKG = ROOT / "runs" / "lab" / "pkg"
if not (_PKG / "slicedim_lab").exists():
    import subprocess

    _PKG.mkdir(parents=True, exist_ok=True)
    archive = f"git -C {ROOT} archive {PKG_COMMIT} slicedim_lab | tar -x -C {_PKG}"
    subprocess.run(archive, shell=True, check=True)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(_PKG))
_PKG_OK = (_PKG / "slicedim_lab").exists()
sys.path.insert(0, str(ROOT / "bench"))

LAB = ROOT / "runs" / "lab"
DIMS = [512, 456, 400, 344, 288]
SETTINGS = dict(cal_samples=32, cal_seqlen=512, eval_seqlen=512, max_eval_windows=16, grad_windows=16)


def _strip_pod(text: str) -> str:
    out = []
    for para in re.split(r"\n\s*\n", text):
        p = para.strip()
        if not p:
            continue
        if p.startswith("="):
            head, _, rest = p.partition("\n")
            cmd, _, arg = head.partition(" ")
            if cmd in ("=item", "=head1", "=head2", "=head3", "=head4") and arg.strip() not in ("", "*"):
                p = arg.strip() + ("\n" + rest if rest else "")
            elif rest:
                p = rest
            else:
                continue
        for _ in range(3):  # nested formatting codes
            p = re.sub(r"[A-Z]<<+\s(.*?)\s>>+", r"\1", p)
            p = re.sub(r"[LCBIFSXEZ]<([^<>]*)>", lambda m: m.group(1).split("|")[0], p)
        out.append(p)
    return "\n\n".join(out) + "\n"


_MODULES = ("sweep", "slicing", "sites", "calibrate", "metrics", "predict", "corpus", "models", "emulate",
            "adapters", "sweep.runner", "core.slicing", "core.replay", "core.sites", "core.pca",
            "eval.metrics", "predict.fisher", "load.corpus", "load.models", "core.emulate")


def need(name: str):
    """`name` from wherever the package keeps it right now (modules are being moved into subfolders)."""
    import importlib

    for m in _MODULES:
        try:
            mod = importlib.import_module(f"slicedim_lab.{m}")
        except ImportError:
            continue
        if _PKG_OK and not str(getattr(mod, "__file__", "")).startswith(str(_PKG)):
            continue  # the editable install can resolve a new subfolder from the working tree: skip it
        if hasattr(mod, name):
            return getattr(mod, name)
    raise ImportError(f"slicedim_lab has no {name} in {_MODULES}")


def corpus_path(name: str) -> str:
    """Path (or built-in name) of a corpus; builds the file corpora once under runs/lab/corpora."""
    if name == "python-docs":
        return name
    folder = LAB / "corpora"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    if path.exists():
        return str(path)
    if name.startswith("stdlib-"):
        from bench_predict import stdlib_docstrings

        text = stdlib_docstrings(name.removeprefix("stdlib-"))
    elif name == "perldiag":
        text = _strip_pod(Path("/usr/share/perl/5.36/pod/perldiag.pod").read_text(encoding="utf-8"))
    elif name == "git-relnotes":
        files = sorted(Path("/usr/share/doc/git/RelNotes").glob("*.txt"))
        text = "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    elif name == "licenses":
        files = sorted(p for p in Path("/usr/share/common-licenses").iterdir() if p.is_file())
        text = "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    elif name == "cmake-help":
        files = sorted(Path("/usr/share/cmake-3.25/Help").rglob("*.rst"))
        text = "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    elif name == "vim-help":
        files = sorted(Path("/usr/share/vim/vim90/doc").glob("*.txt"))
        text = "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    elif name == "coreutils-info":
        import gzip

        raw = gzip.decompress(Path("/usr/share/info/coreutils.info.gz").read_bytes())
        text = raw.decode("utf-8", errors="replace")
    else:
        raise SystemExit(f"unknown corpus {name}")
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(name: str, threads: int = 2):
    """(inputs, cfg) with the issue's settings for corpus `name` (no MC items)."""
    torch.set_num_threads(threads)
    SweepConfig, load_inputs = need("SweepConfig"), need("load_inputs")
    cfg = SweepConfig(corpus=corpus_path(name), tasks=[], **SETTINGS)
    return load_inputs(cfg, device="cpu"), cfg


def folder(name: str) -> Path:
    f = LAB / name
    f.mkdir(parents=True, exist_ok=True)
    return f
