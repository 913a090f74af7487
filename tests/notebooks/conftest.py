"""The notebooks tier: the small sizes every notebook runs with here (the first 2 decoder layers of the
embedded model, 2 windows × 64 tokens), as the `notebook_params` fixture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SMALL = dict(DEVICE="cpu", MAX_LAYERS=2, BATCH_SIZE=2, CAL_WINDOWS=2, CAL_SEQLEN=64, EVAL_WINDOWS=2,
             EVAL_SEQLEN=64)
EXTRA = {
    "00_quickstart": dict(MAX_NEW_TOKENS=6),
    "01_activation_flow": dict(LAYER=1, NODES=1, COMPARE_INTERLEAVED=False),
    "02_linear_maps": dict(LAYER=1),
    "03_dimension_sweep": dict(GRAD_WINDOWS=2, MC_ITEMS=4, MEASURE_DIMS=[432, 288], SEMI_DIMS=[432]),
    "04_theory": dict(GRAD_WINDOWS=2),
}


def small_params(name: str, work: Path, interactive: bool) -> dict:
    """Papermill parameters of a quick run of notebook `name`, writing under `work`."""
    params = {**SMALL, **EXTRA[name], "INTERACTIVE": interactive, "OUT_DIR": str(work / "out")}
    if name == "03_dimension_sweep":
        params["SWEEP_DIR"] = str(work / "sweep")
    return params


@pytest.fixture(scope="session")
def notebook_params() -> Callable[[str, Path, bool], dict]:
    """`small_params` as a fixture: `notebook_params(name, work, interactive)`."""
    return small_params
