"""Multiple-choice accuracy: an offline task built from the eval corpus, and lm-evaluation-harness tasks.

Offline task ("corpus-mc"): the eval split is tokenised once; item i takes a context of `context_len` tokens
at an evenly spaced position and asks which of `n_choices` continuations of `cont_len` tokens really follows
it. The distractors are `cont_len`-token spans from other, seeded-random places of the same split (never
overlapping the item's own context or continuation, never equal to the answer). The answer's position is
balanced across choices (counts differ by at most one) and shuffled with the seed. Everything is a function
of (tokenizer, corpus, split, sizes, seed): the same arguments give the same items.

Scoring is lm-eval's: `acc` picks the choice with the highest summed log-likelihood of its tokens given the
context, `acc_norm` the highest log-likelihood divided by the continuation's length in characters.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from einops import rearrange
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import UsageError
from ..load.corpus import datasets_offline, load_text
from ..load.models import hub_reachable

LM_EVAL_TASKS = ("piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande")


@dataclass
class MCItems:
    """`contexts[i]` (context_len tokens), `choices[i, k]` (cont_len tokens each), `answers[i]`, and each
    choice's length in characters (for acc_norm)."""

    contexts: Int[Tensor, "items ctx"]
    choices: Int[Tensor, "items k cont"]
    answers: Int[Tensor, " items"]
    chars: Int[Tensor, "items k"]

    @property
    def n_choices(self) -> int:
        return self.choices.shape[1]


@dataclass
class MCResult:
    """acc (summed log-likelihood), acc_norm (per character), the chance level 1/K and the item count."""

    acc: float
    acc_norm: float
    chance: float
    items: int
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def build_items(
    ids: Int[Tensor, " n"] | list[int],
    tokenizer=None,
    n_items: int = 64,
    n_choices: int = 4,
    context_len: int = 48,
    cont_len: int = 16,
    seed: int = 0,
) -> MCItems:
    """Deterministic multiple-choice items from one token stream (see the module docstring)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    span = context_len + cont_len
    if n_choices < 2 or n_items < 1 or context_len < 1 or cont_len < 1:
        raise UsageError("the multiple-choice task needs >= 1 item, >= 2 choices and positive lengths")
    if len(ids) < span * max(n_items, n_choices + 1):
        raise UsageError(f"text of {len(ids)} tokens is too short for {n_items} items of {span} tokens")
    rng = random.Random(seed)
    stride = len(ids) // n_items
    starts = [i * stride for i in range(n_items)]
    answers = [i % n_choices for i in range(n_items)]
    rng.shuffle(answers)
    contexts, choices, chars = [], [], []
    for start, answer in zip(starts, answers):
        true = ids[start + context_len: start + span]
        options: list[Tensor] = []
        while len(options) < n_choices - 1:
            j = rng.randrange(0, len(ids) - cont_len + 1)
            if j + cont_len > start and j < start + span:  # overlaps this item's own text
                continue
            cand = ids[j: j + cont_len]
            if torch.equal(cand, true) or any(torch.equal(cand, o) for o in options):
                continue
            options.append(cand)
        options.insert(answer, true)
        contexts.append(ids[start: start + context_len])
        choices.append(torch.stack(options))
        chars.append([len(tokenizer.decode(o)) if tokenizer is not None else cont_len for o in options])
    return MCItems(contexts=torch.stack(contexts), choices=torch.stack(choices),
                   answers=torch.tensor(answers), chars=torch.tensor(chars).clamp_min(1))


def build_corpus_mc(tokenizer, corpus: str = "python-docs", split: str = "eval", **kwargs) -> MCItems:
    """`build_items` over a corpus split tokenised the way `corpus.windows` does."""
    ids = tokenizer(load_text(corpus, split), verbose=False)["input_ids"]
    return build_items(ids, tokenizer, **kwargs)


@torch.no_grad()
def choice_loglik(model: nn.Module, items: MCItems, batch_size: int = 8, progress: bool = False) -> Tensor:
    """Summed log-likelihood of every choice given its context: float64 [items, K]."""
    dev = next(model.parameters()).device
    n, k, m = items.choices.shape
    ctx = items.contexts.shape[1]
    seqs = torch.cat([items.contexts[:, None].expand(n, k, ctx), items.choices], dim=2)
    seqs = rearrange(seqs, "n k s -> (n k) s")
    out = []
    for batch in tqdm(torch.split(seqs, batch_size * k), desc="multiple choice", disable=not progress):
        batch = batch.to(dev)
        logits = model(input_ids=batch, use_cache=False).logits[:, ctx - 1: -1]
        logits = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        lp = logits.log_softmax(-1).gather(-1, batch[:, ctx:, None])[..., 0]
        out.append(lp.double().sum(-1).cpu())
    return rearrange(torch.cat(out), "(n k) -> n k", k=k)


def score(model: nn.Module, items: MCItems, batch_size: int = 8, progress: bool = False) -> MCResult:
    """lm-eval style acc (summed log-likelihood) and acc_norm (log-likelihood per character)."""

    t0 = time.perf_counter()
    ll = choice_loglik(model, items, batch_size, progress)
    acc = (ll.argmax(1) == items.answers).double().mean().item()
    acc_norm = ((ll / items.chars).argmax(1) == items.answers).double().mean().item()
    return MCResult(acc=acc, acc_norm=acc_norm, chance=1 / items.n_choices, items=len(items.answers),
                    seconds=time.perf_counter() - t0)


def lm_eval_tasks(model: nn.Module, tokenizer, tasks: list[str], batch_size: int = 8) -> dict[str, dict]:
    """0-shot lm-evaluation-harness tasks (acc, and acc_norm where the task reports it).

    Needs the optional `lm_eval` package and its datasets (the Hugging Face hub, or its local cache);
    otherwise one UsageError line — never a made-up number."""
    check_tasks(tasks)
    if not tasks or "corpus-mc" in tasks:
        raise UsageError("lm_eval_tasks takes only lm-evaluation-harness task names")
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        res = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), num_fewshot=0)
    except Exception as e:  # dataset download/format errors of many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"lm-eval tasks failed: {first}") from e
    out = {}
    for t in tasks:
        r = res["results"][t]
        out[t] = {m: r[f"{m},none"] for m in ("acc", "acc_norm") if f"{m},none" in r}
    return out


def check_tasks(tasks: list[str]) -> None:
    """Fail early (before any model work) on unknown task names or an unreachable lm-eval."""
    bad = [t for t in tasks if t != "corpus-mc" and t not in LM_EVAL_TASKS]
    if bad:
        raise UsageError(f"unknown task {bad[0]!r}; choose from: corpus-mc, {', '.join(LM_EVAL_TASKS)}")
    harness = [t for t in tasks if t in LM_EVAL_TASKS]
    if harness:
        try:
            import lm_eval  # noqa: F401
        except ImportError:
            msg = (f"tasks {', '.join(harness)} need lm-evaluation-harness (pip install lm-eval) and its "
                   "datasets from the Hugging Face hub; use --tasks corpus-mc offline")
            raise UsageError(msg) from None

        if not datasets_offline() and not hub_reachable():
            raise UsageError(f"tasks {', '.join(harness)} need their datasets from the Hugging Face hub, "
                             "which cannot be reached (set HF_DATASETS_OFFLINE=1 to use locally cached "
                             "copies); use --tasks corpus-mc offline")
