"""Which tokens suffer: the per-token table of the eval text at one kept width d'.

One row per predicted token (window `window`, position `pos` ≥ 1 of the token being predicted): its text and
`kind` (`token_kind`), the next-token loss of the dense and of the emulated sliced model (`core.nll`, exact:
the sliced model is the dense one with every site projected, `core.emulate`), `dloss` = sliced − dense, each
model's probability of the token and its top-1 prediction, and the site where the damage entered: the
prediction decomposition (`attribution.attribute_batch`, per position) charges the loss increase to each
site's write at the predicting position (pos − 1); `site` is the site that pushed the loss furthest in the
direction it moved, `site_share` its share of the charges of that sign. (The write at a position also moves
later predictions; the decomposition counts that at the write.) `token_summary` rolls the table up by kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.emulate import emulation_hooks
from ..core.nll import next_token_ce
from ..core.replay import Basis
from ..core.sites import Site
from .attribution import attribute_batch
from .lens import wide

TOKEN_COLUMNS = ["basis", "dim", "window", "pos", "token", "kind", "context", "loss_dense", "loss_sliced",
                 "dloss", "p_dense", "p_sliced", "top_dense", "p_top_dense", "top_sliced", "p_top_sliced",
                 "site", "site_label", "site_share"]
KINDS = ("word", "word piece", "identifier", "number", "punctuation", "whitespace")
CONTEXT_TOKENS = 8  # tokens of context kept before each token (the worst-tokens table shows them)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def token_kind(text: str, prev: str = "") -> str:
    """The kind of a token from its text and the previous token's: `whitespace`; `number` (digits);
    `punctuation` (no letter or digit); `identifier` (code: holds `_` or an inner capital, or follows `.`,
    `_` or an identifier character without a space); `word` (letters after a space or at a start) or
    `word piece` (letters continuing the previous token)."""
    body = text.strip()
    if not body:
        return "whitespace"
    if body.isdigit():
        return "number"
    if not any(c.isalnum() for c in body):
        return "punctuation"
    spaced = text[:1].isspace() or not prev or prev[-1:].isspace()
    codey = "_" in body or any(c.isupper() for c in body[1:]) or (not spaced and prev[-1:] in "._")
    if IDENTIFIER.fullmatch(body) and (codey or (not spaced and prev[-1:].isdigit())):
        return "identifier"
    if spaced or not prev[-1:].isalnum():
        return "word"
    return "word piece"


def decode_each(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each id's text on its own (`<id>` without a tokenizer)."""
    if tokenizer is None:
        return [f"<{i}>" for i in ids]
    return tokenizer.batch_decode([[int(i)] for i in ids])


@torch.no_grad()
def token_stats(logits: Float[Tensor, "b seq vocab"], ids: Int[Tensor, "b seq"]) -> dict[str, Tensor]:
    """Per predicted token (positions 0..seq−2 predict 1..seq−1): loss, probability of the target, top-1 id
    and its probability (float64, on the CPU)."""
    ce = next_token_ce(logits, ids).double()
    p = wide(logits[:, :-1]).softmax(-1)
    top_p, top = p.max(-1)
    return {"loss": ce.cpu(), "p_target": (-ce).exp().cpu(), "top": top.cpu(), "p_top": top_p.double().cpu()}


def stack_stats(parts: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.no_grad()
def dense_token_stats(bridge, ids: Int[Tensor, "n seq"], batch_size: int = 4) -> dict[str, Tensor]:
    """`token_stats` of the dense model on every window."""
    return stack_stats([token_stats(bridge(b), b) for b in torch.split(ids, batch_size)])


def sliced_token_pass(
    bridge,
    ids: Int[Tensor, "n seq"],
    bases: Sequence[Basis],
    sites: Sequence[Site],
    nodes: int = 1,
    batch_size: int = 4,
) -> tuple[dict[str, Tensor], Float[Tensor, "site n seq"]]:
    """`token_stats` of the emulated sliced model, and each site's charge of the loss increase at every
    position (the integrated decomposition with `nodes` Gauss-Legendre nodes; 0: first order)."""
    stats, charges = [], []
    kind = "integrated" if nodes else "first"
    for b in torch.split(ids, batch_size):
        writes: dict[int, Tensor] = {}
        with torch.no_grad(), bridge.hooks(fwd_hooks=emulation_hooks(bases, writes, sites)):
            stats.append(token_stats(bridge(b), b))
        attr = attribute_batch(bridge, b, [writes[s.index] for s in sites], nodes, positions=True)
        charges.append(torch.as_tensor(attr[f"{kind}_loss_pos"]))
        del writes
    return stack_stats(stats), torch.cat(charges, dim=1)


def entry_sites(charges: Float[Tensor, "site n seq"], dloss: Float[Tensor, "n seq_1"]
                ) -> tuple[Int[Tensor, "n seq_1"], Float[Tensor, "n seq_1"]]:
    """Per predicted token: the site whose charge at the predicting position moved the loss furthest in the
    direction it went (largest charge for a loss increase, most negative for a decrease), and that charge's
    share of all charges of its sign there."""
    c = charges[:, :, :-1] * torch.where(dloss >= 0, 1.0, -1.0).to(charges)  # the direction the loss moved
    best, site = c.max(0)
    pushed = c.clamp_min(0).sum(0)
    return site, torch.where(pushed > 0, best.clamp_min(0) / pushed.clamp_min(1e-300), 0.0)


def token_rows(
    ids: Int[Tensor, "n seq"],
    dense: dict[str, Tensor],
    sliced: dict[str, Tensor],
    charges: Float[Tensor, "site n seq"],
    sites: Sequence[Site],
    decode: Callable[[Sequence[int]], list[str]],
    basis: str,
    dim: int,
) -> pd.DataFrame:
    """The token table (`TOKEN_COLUMNS`) from the windows, the dense and sliced `token_stats`, the
    per-position charges and a decoder of token ids."""
    n, seq = ids.shape
    dloss = sliced["loss"] - dense["loss"]
    site, share = entry_sites(charges, dloss)
    vocab = sorted({*ids.flatten().tolist(), *dense["top"].flatten().tolist(),
                    *sliced["top"].flatten().tolist()})
    text = dict(zip(vocab, decode(vocab)))
    rows = []
    for i in range(n):
        toks = [text[int(t)] for t in ids[i]]
        for t in range(1, seq):
            k = t - 1  # the position that predicts token t
            s = sites[int(site[i, k])]
            rows.append({
                "basis": basis, "dim": dim, "window": i, "pos": t, "token": toks[t],
                "kind": token_kind(toks[t], toks[t - 1]),
                "context": "".join(toks[max(0, t - CONTEXT_TOKENS):t]),
                "loss_dense": float(dense["loss"][i, k]), "loss_sliced": float(sliced["loss"][i, k]),
                "dloss": float(dloss[i, k]), "p_dense": float(dense["p_target"][i, k]),
                "p_sliced": float(sliced["p_target"][i, k]), "top_dense": text[int(dense["top"][i, k])],
                "p_top_dense": float(dense["p_top"][i, k]), "top_sliced": text[int(sliced["top"][i, k])],
                "p_top_sliced": float(sliced["p_top"][i, k]), "site": s.index, "site_label": s.label,
                "site_share": float(share[i, k]),
            })
    return pd.DataFrame(rows, columns=TOKEN_COLUMNS)


def token_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per token kind (in `KINDS` order): how many tokens, their mean dense and sliced loss, mean and
    summed loss increase, the share of the whole increase they carry, and how often the top-1 prediction
    changed."""
    t = table.assign(flipped=table["top_dense"] != table["top_sliced"])
    g = t.groupby("kind")
    out = pd.DataFrame({"tokens": g.size(), "loss_dense": g["loss_dense"].mean(),
                        "loss_sliced": g["loss_sliced"].mean(), "dloss_mean": g["dloss"].mean(),
                        "dloss_sum": g["dloss"].sum(), "top1_changed": g["flipped"].mean()})
    total = float(t["dloss"].sum())
    out["dloss_share"] = out["dloss_sum"] / total if total else np.nan
    order = [k for k in KINDS if k in out.index] + [k for k in out.index if k not in KINDS]
    return out.loc[order].rename_axis("kind").reset_index()
