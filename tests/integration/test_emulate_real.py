"""slicedim verify on the real embedded model: full-width invariance and emulation = slicing."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_fixtures import token_ids

from slicedim_lab.core.emulate import (
    VERIFY_RTOL,
    verify,
)

CAL, IDS = token_ids(6, 32, seed=1), token_ids(2, 24, seed=2)


@pytest.mark.smol
@pytest.mark.slow
def test_real_model_verify(smol):
    """SmolLM2 in float32 at d' = 432: full-width invariance and emulated-vs-sliced logits within
    VERIFY_RTOL[float32] = 1e-3 of max |logit| (measured: ~1e-5; see emulate.VERIFY_RTOL)."""
    from slicedim_lab.load.corpus import load_windows

    cal = load_windows(smol.tokenizer, "python-docs", "calibration", seqlen=64, max_windows=4)
    ids = load_windows(smol.tokenizer, "python-docs", "eval", seqlen=64, max_windows=2)
    res = verify(copy.deepcopy(smol.model), cal, ids, 432, tokenizer=smol.tokenizer)
    assert res["dim"] == 432 and res["dtype"] == "float32"
    assert res["tolerance"] == pytest.approx(VERIFY_RTOL[torch.float32] * res["max_abs_logit"])
    assert res["ok"], res
    # far tighter than the tolerance in practice: rounding only
    assert res["emulation_max_abs_diff"] < 1e-4 * res["max_abs_logit"]
    assert res["invariance_max_abs_diff"] < 1e-4 * res["max_abs_logit"]
