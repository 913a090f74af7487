"""The logit lens: the dense model's final norm + unembedding applied to the residual at any site, and the
statistics that compare the dense and the sliced lens without keeping either's full distribution.

Per lens site s: lens_kl = mean_t KL(dense lens || sliced lens) of next-token distributions;
lens_loss_dense / lens_loss_sliced = their next-token cross-entropy. The dense pass keeps, per predicted
token, sum_v p log p, the expected unembedding m = U^T p and the target's log-probability (`LensCache`), so
KL(dense || sliced) = sum_v p log p − <m, norm(x~)> + logsumexp(sliced logits) needs only the sliced run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor

from ..adapters import adapter_for
from ..errors import UsageError


def wide(x: Tensor) -> Tensor:
    """At least float32 (float64 stays float64): logits and log-probabilities are reduced in this."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class Head:
    """Final norm + unembedding of the dense model, applied to any residual (the logit lens)."""

    def __init__(self, model: nn.Module):
        adapter = adapter_for(model)
        self.norm = model.get_submodule(adapter.final_norm)
        self.lm_head = model.get_submodule(adapter.lm_head)

    @torch.no_grad()
    def normed(self, x: Float[Tensor, "*b d_model"]) -> Float[Tensor, "*b d_model"]:
        return self.norm(x)

    @torch.no_grad()
    def logits(self, x: Float[Tensor, "*b d_model"]) -> Float[Tensor, "*b vocab"]:
        return wide(self.lm_head(self.norm(x)))


@dataclass
class LensCache:
    """Dense logit-lens statistics at one site, per predicted token: sum_v p log p, the expected unembedding
    m = U^T p (so KL(dense || sliced) needs only the sliced logsumexp) and the target's log-probability."""

    neg_entropy: Float[Tensor, "n pos"]
    expected_u: Float[Tensor, "n pos d_model"]
    target_logp: Float[Tensor, "n pos"]
    expected_b: Float[Tensor, "n pos"] | None = None  # sum_v p(v) b_v, for a head with a bias (Phi-2)

    @classmethod
    def cat(cls, parts: Sequence[LensCache]) -> LensCache:
        """The caches of consecutive batches, concatenated along the windows."""
        fields = ("neg_entropy", "expected_u", "target_logp")
        b = None if parts[0].expected_b is None else torch.cat([p.expected_b for p in parts])
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in fields), expected_b=b)

    def rows(self, sl: slice) -> LensCache:
        """The cache of windows `sl`."""
        b = None if self.expected_b is None else self.expected_b[sl]
        return LensCache(self.neg_entropy[sl], self.expected_u[sl], self.target_logp[sl], b)


@torch.no_grad()
def dense_lens(
    logits: Float[Tensor, "b seq vocab"], unembed: Float[Tensor, "vocab d_model"], ids: Int[Tensor, "b seq"],
    bias: Float[Tensor, " vocab"] | None = None,
) -> LensCache:
    """The dense lens statistics of one batch (on the CPU) from its lens logits at a site (`bias`: the
    unembedding's, if it has one)."""
    logp = wide(logits[:, :-1]).log_softmax(-1)
    p = logp.exp()
    tgt = ids[:, 1:].to(logp.device)
    return LensCache(neg_entropy=(p * logp).sum(-1).cpu(), expected_u=(p @ unembed.to(p.dtype)).cpu(),
                     target_logp=logp.gather(-1, tgt[..., None])[..., 0].cpu(),
                     expected_b=None if bias is None else (p @ bias.to(p.dtype)).cpu())


@torch.no_grad()
def sliced_lens(
    head: Head,
    dense: LensCache,
    resid: Float[Tensor, "b seq d_model"],
    logits: Float[Tensor, "b seq vocab"],
    ids: Int[Tensor, "b seq"],
) -> tuple[float, float]:
    """(summed KL(dense lens || sliced lens), summed sliced lens cross-entropy) of one batch: `resid` is the
    sliced residual at the site, `logits` its lens logits, `dense` the dense cache of the same windows."""
    if head.lm_head.bias is not None and dense.expected_b is None:
        raise UsageError("logit lens with an unembedding bias needs the dense lens of that bias")
    lg = wide(logits[:, :-1])
    tgt = ids[:, 1:].to(lg.device)
    lse = lg.logsumexp(-1).double()
    normed = head.normed(resid)[:, :-1].double()
    cross = (dense.expected_u.double() * normed).sum(-1)  # sum_v p_dense(v) sliced_logit(v)
    if dense.expected_b is not None:
        cross = cross + dense.expected_b.double()
    kl = float((dense.neg_entropy.double() - cross + lse).sum())
    loss = float((lse - lg.gather(-1, tgt[..., None])[..., 0].double()).sum())
    return kl, loss
