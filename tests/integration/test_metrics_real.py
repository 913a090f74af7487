"""Measured metrics of the real embedded model equal a plain transformers loop."""

from __future__ import annotations

import pytest
import torch
from reference import plain_loop

from slicedim_lab.eval.metrics import evaluate, token_losses
from slicedim_lab.load.models import LoadedModel


def test_real_model_matches_plain_loop(smol: LoadedModel, smol_windows: torch.Tensor) -> None:
    hf_ppl, ppl, acc, per_token = plain_loop(smol.model, smol_windows)
    res = evaluate(smol.model, smol_windows, batch_size=2, progress=False)
    assert res.tokens == 3 * 127
    assert res.ppl == pytest.approx(hf_ppl, rel=1e-4) and res.ppl == pytest.approx(ppl, rel=1e-4)
    assert abs(res.accuracy - acc) <= 1 / res.tokens  # at most one near-tie may flip across batch shapes
    assert 5 < res.ppl < 60 and 0.3 < res.accuracy < 0.7
    losses = token_losses(smol.model, smol_windows, batch_size=2, progress=False)
    torch.testing.assert_close(losses, per_token, rtol=1e-4, atol=1e-4)
