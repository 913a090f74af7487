"""Shared fixtures.

- `smol`: the real embedded SmolLM2-135M-Instruct, loaded once per test session from the default cache
  (the first run on a machine converts the GGUF, ~15 s; later runs reuse the cache). It is shared: never
  modify it in place — `copy.deepcopy(smol.model)` first (~0.5 GB).
- `gemma`: the second embedded model, Gemma 3 270M, loaded once per session the same way.
- `smol_tok`: only its tokenizer (unit tests pair it with tiny random-weight models).
- `smol_windows`: 3 windows × 128 tokens of the python-docs eval split, tokenised by `smol`.
- `tiny`: the `tiny_model` factory; `tiny_arch` parametrises a test over every tiny architecture.

`make test` runs the suite on two workers (`pytest -n 2 --dist loadgroup`), dealt out by `worker_group`, each
with one thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from slicedim_lab.load.corpus import load_windows
from slicedim_lab.load.models import DEFAULT_MODEL, LoadedModel, ensure_alias_cached, load_model
from slicedim_lab.testing import TINY_ARCHS, tiny_model

if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each, their children too
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def worker_group(nodeid: str) -> str:
    """The worker group of a test under `make test`'s two workers: tests that share one costly thing (the
    notebooks tier's JupyterLab and kernels, one local Ray cluster, the Gemma 3 model) go together; any other
    test goes with its module, so that module fixtures are built once."""
    path = nodeid.split("::")[0]
    shared = (("tests/notebooks/", "notebooks"), ("test_ray.py", "ray"), ("test_gemma3_real.py", "gemma"))
    for key, group in shared:
        if key in path:
            return group
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under the two workers, the longest group (the notebooks tier) is dealt out first."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: worker_group(item.nodeid) != "notebooks")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN201 (xdist's types)
    """`--dist loadgroup` by `worker_group` (xdist's own reads `xdist_group` marks, which pytest 9 drops)."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return GroupScheduling(config, log)


@pytest.fixture(scope="session")
def smol() -> LoadedModel:
    return load_model(device="cpu")


@pytest.fixture(scope="session")
def gemma() -> LoadedModel:
    """The second embedded model, Gemma 3 270M (the first run on a machine converts its GGUF, ~60 s). Shared:
    never modify it in place."""
    return load_model("gemma3-270m", device="cpu")


@pytest.fixture(scope="session")
def smol_tok() -> PreTrainedTokenizerBase:
    """Only the embedded model's tokenizer (unit tests pair it with tiny random-weight models)."""
    return AutoTokenizer.from_pretrained(ensure_alias_cached(DEFAULT_MODEL))


@pytest.fixture(scope="session")
def smol_windows(smol: LoadedModel) -> torch.Tensor:
    return load_windows(smol.tokenizer, "python-docs", "eval", seqlen=128, max_windows=3)


@pytest.fixture
def tiny() -> Callable[..., PreTrainedModel]:
    return tiny_model


@pytest.fixture(params=TINY_ARCHS)
def tiny_arch(request: pytest.FixtureRequest) -> str:
    return request.param
