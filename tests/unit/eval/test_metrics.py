"""Metrics against a plain transformers loop: tiny random Llama (float64) and the real model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from reference import plain_loop

from slicedim_lab.errors import UsageError
from slicedim_lab.eval.metrics import EvalResult, evaluate, token_losses
from slicedim_lab.testing import tiny_model


@pytest.fixture(scope="module")
def tiny64() -> torch.nn.Module:
    return tiny_model("llama", seed=0, dtype=torch.float64)


@pytest.fixture(scope="module")
def tiny_windows() -> torch.Tensor:
    return torch.randint(0, 256, (5, 17), generator=torch.Generator().manual_seed(1))


def test_tiny_llama_matches_plain_loop(tiny64: torch.nn.Module, tiny_windows: torch.Tensor) -> None:
    hf_ppl, ppl, acc, per_token = plain_loop(tiny64, tiny_windows)
    res = evaluate(tiny64, tiny_windows, batch_size=2, progress=False)  # 2 + 2 + 1: a ragged last batch
    assert isinstance(res, EvalResult)
    assert res.ppl == pytest.approx(ppl, rel=1e-12)
    assert res.ppl == pytest.approx(hf_ppl, rel=1e-6)
    assert res.accuracy == acc
    assert res.nll == pytest.approx(math.log(ppl), rel=1e-12)
    assert (res.tokens, res.windows, res.seqlen) == (5 * 16, 5, 17) and res.seconds > 0
    losses = token_losses(tiny64, tiny_windows, batch_size=3, progress=False)
    assert losses.shape == (5, 16) and losses.dtype == torch.float64 and losses.device.type == "cpu"
    torch.testing.assert_close(losses, per_token, rtol=1e-12, atol=1e-12)
    assert losses.double().mean().item() == pytest.approx(res.nll, rel=1e-12)


def test_batch_size_invariance(tiny64: torch.nn.Module, tiny_windows: torch.Tensor) -> None:
    results = [evaluate(tiny64, tiny_windows, batch_size=b, progress=False) for b in (1, 4, 5, 64)]
    assert all(r.ppl == pytest.approx(results[0].ppl, rel=1e-12) for r in results)
    assert len({r.accuracy for r in results}) == 1


def test_any_module_returning_logits(tiny64: torch.nn.Module, tiny_windows: torch.Tensor) -> None:
    """evaluate needs only `model(input_ids=...).logits`, not a PreTrainedModel."""

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(logits=self.inner(input_ids=input_ids).logits)

    a = evaluate(Wrapper(tiny64), tiny_windows, progress=False)
    b = evaluate(tiny64, tiny_windows, progress=False)
    assert (a.ppl, a.accuracy) == (b.ppl, b.accuracy)


def test_bad_inputs(tiny64: torch.nn.Module, tiny_windows: torch.Tensor) -> None:
    with pytest.raises(UsageError, match="batch size"):
        evaluate(tiny64, tiny_windows, batch_size=0)
    with pytest.raises(UsageError, match="windows"):
        evaluate(tiny64, tiny_windows[:, :1])
    with pytest.raises(UsageError, match="windows"):
        evaluate(tiny64, tiny_windows[0])


