"""What a sweep works on and how it measures one model: the windows (PCA, held-out gradient, eval), the
multiple-choice items, and the measured metrics of a dense, sliced or projected model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from ..adapters import adapter_for
from ..core.export import sliced_config
from ..core.modeling_sliced import SlicedForCausalLM
from ..core.size import count_params
from ..eval.mcq import build_corpus_mc, lm_eval_tasks, score
from ..eval.metrics import evaluate
from ..load.corpus import load_windows, spread
from ..load.models import LoadedModel, load_model
from .config import SweepConfig


@dataclass
class Inputs:
    """Model, tokenizer and the windows/items a sweep or prediction works on."""

    model: nn.Module
    tokenizer: object
    cal_ids: Tensor
    eval_ids: Tensor
    mc_items: object | None
    grad_ids: Tensor  # windows of the Fisher gradient pass
    grad_heldout: bool  # whether they are disjoint from cal_ids


def load_inputs(cfg: SweepConfig, lm: LoadedModel | None = None, device: str = "auto") -> Inputs:
    """The model (unless `lm` is given), the calibration, gradient and eval windows and the MC items."""
    lm = lm or load_model(cfg.model, device=device, dtype=cfg.dtype)
    n_grad = cfg.grad_windows or cfg.cal_samples
    every = load_windows(lm.tokenizer, cfg.corpus, "calibration", cfg.cal_seqlen)
    # the PCA's windows are spread over the split (as `load_windows(..., cal_samples)` picks them); the
    # held-out gradient windows are spread over the rest (in-sample if there is no rest)
    picked = spread(every.shape[0], cfg.cal_samples)
    taken = set(picked)
    rest = [i for i in range(every.shape[0]) if i not in taken]
    cal = every[picked]
    heldout = cfg.grad_heldout and len(rest) > 0
    grad = every[[rest[i] for i in spread(len(rest), n_grad)]] if heldout else cal[:n_grad]
    ev = load_windows(lm.tokenizer, cfg.corpus, "eval", cfg.eval_seqlen, cfg.max_eval_windows)
    items = None
    if "corpus-mc" in cfg.tasks:
        items = build_corpus_mc(lm.tokenizer, cfg.corpus, "eval", n_items=cfg.mc_items,
                                n_choices=cfg.mc_choices, context_len=cfg.mc_context, cont_len=cfg.mc_cont,
                                seed=cfg.seed)
    return Inputs(lm.model, lm.tokenizer, cal, ev, items, grad, heldout)


def measure(model: nn.Module, inp: Inputs, cfg: SweepConfig, batch_size: int, progress: bool) -> dict:
    """Measured metrics of one model (dense, sliced or projected): ppl, top-1 acc, nll, MC acc, lm-eval."""
    res = evaluate(model, inp.eval_ids, batch_size=batch_size, progress=progress)
    out = {"ppl": res.ppl, "acc": res.accuracy, "nll": res.nll, "eval_tokens": res.tokens,
           "window_nll": res.window_nll}
    if inp.mc_items is not None:
        mc = score(model, inp.mc_items, batch_size=batch_size, progress=progress)
        out.update(mc_acc=mc.acc, mc_acc_norm=mc.acc_norm, mc_chance=mc.chance, mc_items=mc.items)
    harness = [t for t in cfg.tasks if t != "corpus-mc"]
    if harness:
        for t, ms in lm_eval_tasks(model, inp.tokenizer, harness, batch_size).items():
            out.update({f"task_{t}_{m}": v for m, v in ms.items()})
    return out


def sliced_params(model: nn.Module, dims: list[int]) -> int:
    """Parameter count of the model sliced to `dims` (built on the meta device, no weights)."""
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    cfg = sliced_config(model, adapter_for(model), dims, tied, {})
    with torch.device("meta"):
        return count_params(SlicedForCausalLM(cfg))
