"""core/nll.py: the one next-token loss/accuracy primitive equals a plain cross-entropy loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slicedim_lab.core.nll import next_token_ce, next_token_hits, next_token_stats


def test_matches_a_plain_loop() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 11, (2, 5), generator=g)
    ce, hit = next_token_stats(logits, ids)
    assert ce.shape == hit.shape == (2, 4) and ce.dtype == torch.float64
    for b in range(2):
        for t in range(4):
            want = -F.log_softmax(logits[b, t], -1)[ids[b, t + 1]]
            assert torch.allclose(ce[b, t], want)
            assert bool(hit[b, t]) == (int(logits[b, t].argmax()) == int(ids[b, t + 1]))
    assert torch.equal(next_token_hits(logits, ids), hit)


def test_targets_and_half_precision() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 4, 7, generator=g)
    ids = torch.randint(0, 7, (1, 4), generator=g)
    tgt = torch.tensor([[3, 3, 3]])
    ce = next_token_ce(logits, ids, targets=tgt)
    assert torch.allclose(ce, -F.log_softmax(logits[0, :3], -1)[:, 3][None])
    half = next_token_ce(logits.bfloat16(), ids)
    assert half.dtype == torch.float32  # half-precision logits are upcast before the loss
