"""The offline multiple-choice task: deterministic, balanced, scored like lm-eval, above chance for the real
model; lm-eval tasks fail with one line offline."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
import torch

from slicedim_lab.errors import UsageError
from slicedim_lab.eval.mcq import (
    build_items,
    check_tasks,
    choice_loglik,
    lm_eval_tasks,
    score,
)
from slicedim_lab.testing import tiny_model


def stream(n: int = 4000, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 256, (n,), generator=torch.Generator().manual_seed(seed))


def test_items_are_deterministic_balanced_and_true() -> None:
    ids = stream()
    a = build_items(ids, n_items=20, n_choices=4, context_len=10, cont_len=5, seed=7)
    b = build_items(ids, n_items=20, n_choices=4, context_len=10, cont_len=5, seed=7)
    c = build_items(ids, n_items=20, n_choices=4, context_len=10, cont_len=5, seed=8)
    for x, y in [(a.contexts, b.contexts), (a.choices, b.choices), (a.answers, b.answers)]:
        assert torch.equal(x, y)
    assert not torch.equal(a.answers, c.answers) or not torch.equal(a.choices, c.choices)
    assert Counter(a.answers.tolist()) == {0: 5, 1: 5, 2: 5, 3: 5}
    odd = build_items(ids, n_items=10, n_choices=4, context_len=10, cont_len=5, seed=1)
    counts = Counter(odd.answers.tolist())
    assert max(counts.values()) - min(counts.get(k, 0) for k in range(4)) <= 1
    stride = len(ids) // 20
    for i in range(20):
        start = i * stride
        assert torch.equal(a.contexts[i], ids[start:start + 10])
        assert torch.equal(a.choices[i, a.answers[i]], ids[start + 10:start + 15])
        others = [a.choices[i, k] for k in range(4) if k != a.answers[i]]
        assert all(not torch.equal(o, a.choices[i, a.answers[i]]) for o in others)


def test_too_short_text_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        build_items(stream(50), n_items=10, context_len=10, cont_len=5)


def test_loglik_matches_a_plain_computation() -> None:
    model = tiny_model("llama", seed=0, dtype=torch.float64)
    items = build_items(stream(), n_items=3, n_choices=3, context_len=6, cont_len=4, seed=0)
    ll = choice_loglik(model, items, batch_size=2)
    for i in range(3):
        for k in range(3):
            seq = torch.cat([items.contexts[i], items.choices[i, k]])[None]
            with torch.no_grad():
                lp = model(input_ids=seq).logits[0].log_softmax(-1)
            want = sum(lp[5 + j, items.choices[i, k, j]].item() for j in range(4))
            assert ll[i, k].item() == pytest.approx(want, rel=1e-9)
    res = score(model, items)
    assert res.chance == pytest.approx(1 / 3) and res.items == 3 and 0 <= res.acc <= 1




def test_lm_eval_tasks_offline_give_one_line() -> None:
    check_tasks(["corpus-mc"])
    with pytest.raises(UsageError, match="unknown task"):
        check_tasks(["mmlu"])
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="lm-evaluation-harness") as e:
            lm_eval_tasks(tiny_model(), None, ["piqa"])
        assert "\n" not in str(e.value)


def test_lm_eval_tasks_skip_the_hub_probe_when_datasets_are_cached(monkeypatch) -> None:
    import types

    from slicedim_lab.eval import mcq

    monkeypatch.setitem(sys.modules, "lm_eval", types.ModuleType("lm_eval"))  # installed or not
    monkeypatch.setattr(mcq, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(UsageError, match="cannot be reached .*HF_DATASETS_OFFLINE=1") as e:
        check_tasks(["piqa", "corpus-mc"])
    assert "\n" not in str(e.value)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    check_tasks(["piqa", "corpus-mc"])  # the user says the datasets are cached: no probe, no error
