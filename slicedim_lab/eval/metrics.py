"""Measured next-token metrics of any causal LM returning `.logits`: perplexity, top-1 accuracy, token loss.

Every window of n tokens predicts its tokens 1..n-1 from their prefixes; all predicted tokens of all
windows count equally. Logits are reduced to per-token cross-entropy and a top-1 hit inside the batch that
produced them, so full-vocabulary logits never exist for more than one batch at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ..core.nll import next_token_stats
from ..errors import UsageError


@dataclass
class EvalResult:
    """Perplexity exp(nll), top-1 accuracy and mean next-token cross-entropy `nll` (nats) over `tokens`
    predicted tokens (= windows · (seqlen − 1)); `seconds` is the wall time of the measurement.
    `window_nll`: the mean loss of each window, for intervals (`eval.uncertainty`); not in `to_dict`."""

    ppl: float
    accuracy: float
    nll: float
    tokens: int
    windows: int
    seqlen: int
    seconds: float
    window_nll: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, float | int]:
        return {k: v for k, v in asdict(self).items() if k != "window_nll"}


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a parameterless module)."""
    return next(model.parameters(), torch.empty(0)).device


def _check_windows(windows: Tensor, batch_size: int) -> None:
    if windows.ndim != 2 or windows.shape[1] < 2 or windows.shape[0] < 1:
        raise UsageError(f"windows must be a non-empty [n, seqlen>=2] id tensor, got {tuple(windows.shape)}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")


def batch_token_stats(
    model: torch.nn.Module,
    windows: Int[Tensor, "n seq"],
    batch_size: int = 4,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "eval",
) -> Iterator[tuple[Float[Tensor, "b seq_1"], Bool[Tensor, "b seq_1"]]]:
    """Yield, batch by batch, the next-token cross-entropy and top-1 hit of every predicted token.

    The one forward loop shared by `evaluate` and `token_losses`: no grad, no KV cache, logits dropped
    before the next batch runs. Losses are float32 (float64 for a float64 model; half-precision logits are
    upcast first) and stay on the model's device.
    """
    _check_windows(windows, batch_size)
    dev = torch.device(device) if device is not None else model_device(model)
    n = windows.shape[0]
    # HF models would otherwise build a KV cache nobody reads; any other module only needs input_ids.
    extra = {"use_cache": False} if isinstance(model, PreTrainedModel) else {}
    with torch.no_grad(), tqdm(total=n, desc=desc, unit="win", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            ids = windows[start : start + batch_size].to(dev)
            logits = model(input_ids=ids, **extra).logits  # [b, seq, vocab]
            ce, hit = next_token_stats(logits, ids)
            del logits
            yield ce, hit
            bar.update(ids.shape[0])


def evaluate(
    model: torch.nn.Module,
    windows: Int[Tensor, "n seq"],
    batch_size: int = 4,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> EvalResult:
    """Perplexity and top-1 accuracy of `model` on `windows` (sums accumulated in float64)."""
    t0 = time.perf_counter()
    nll_sum = 0.0
    hits = 0
    count = 0
    per_window: list[float] = []
    for ce, hit in batch_token_stats(model, windows, batch_size, device, progress):
        nll_sum += ce.double().sum().item()
        hits += int(hit.sum().item())
        count += ce.numel()
        per_window += ce.double().mean(1).tolist()
    nll = nll_sum / count
    return EvalResult(
        ppl=math.exp(nll),
        accuracy=hits / count,
        nll=nll,
        tokens=count,
        windows=int(windows.shape[0]),
        seqlen=int(windows.shape[1]),
        seconds=time.perf_counter() - t0,
        window_nll=per_window,
    )


def token_losses(
    model: torch.nn.Module,
    windows: Int[Tensor, "n seq"],
    batch_size: int = 4,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> Float[Tensor, "n seq_1"]:
    """Per-token next-token cross-entropy (nats, on CPU): entry [i, t] is the loss of predicting token t+1
    of window i. float32, or float64 for a float64 model."""
    stats = batch_token_stats(model, windows, batch_size, device, progress, desc="losses")
    return torch.cat([ce.cpu() for ce, _ in stats], dim=0)
