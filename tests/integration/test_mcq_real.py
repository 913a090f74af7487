"""The corpus-mc task on the real embedded model."""

from __future__ import annotations

from slicedim_lab.eval.mcq import (
    build_corpus_mc,
    score,
)


def test_real_model_beats_chance(smol) -> None:
    items = build_corpus_mc(smol.tokenizer, "python-docs", "eval", n_items=12, n_choices=4, context_len=24,
                            cont_len=8, seed=0)
    assert (items.chars > 0).all()
    res = score(smol.model, items, batch_size=4)
    assert res.acc > 0.5 and res.acc_norm > 0.5, res  # chance is 0.25
