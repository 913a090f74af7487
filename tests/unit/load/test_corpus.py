"""Corpora: python-docs exactly as FACTS.md defines it, text files, wikitext2 offline, window cutting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slicedim_lab.errors import UsageError
from slicedim_lab.load import models
from slicedim_lab.load.corpus import CORPORA, load_text, load_windows, python_docs_topics, spread, windows


def test_python_docs_definition() -> None:
    from pydoc_data.topics import topics

    keys = sorted(topics)
    assert load_text("python-docs", "calibration") == "\n\n".join(topics[k] for k in keys[0::2])
    assert load_text("python-docs", "eval") == "\n\n".join(topics[k] for k in keys[1::2])
    assert python_docs_topics() == dict(topics)


def test_python_docs_deterministic_and_disjoint() -> None:
    topics = python_docs_topics()
    keys = sorted(topics)
    cal, ev = set(keys[0::2]), set(keys[1::2])
    assert cal.isdisjoint(ev) and cal | ev == set(keys)
    for split in ("calibration", "eval"):
        assert load_text("python-docs", split) == load_text("python-docs", split)
    # each split is exactly its own topics (some topics quote others, so substring checks would mislead)
    parts = load_text("python-docs", "eval").split("\n\n")
    assert "\n\n".join(parts) == "\n\n".join(topics[k] for k in sorted(ev))
    assert load_text("python-docs", "calibration") != load_text("python-docs", "eval")


def test_python_docs_windows(smol_tok) -> None:
    tok = smol_tok
    cal = load_windows(tok, "python-docs", "calibration", 512)
    ev = load_windows(tok, "python-docs", "eval", 512)
    assert cal.shape == (120, 512) and ev.shape == (100, 512) and ev.dtype == torch.long
    assert torch.equal(ev, load_windows(tok, "python-docs", "eval", 512))
    full = tok(load_text("python-docs", "eval"))["input_ids"]
    assert 50_000 < len(full) < 53_000  # FACTS.md: ~51.3k
    assert torch.equal(ev.flatten(), torch.tensor(full[: 100 * 512]))
    assert full[0] != tok.bos_token_id  # default special-token handling adds no BOS for SmolLM2
    # the two splits' token streams do not share whole windows
    assert not (set(map(tuple, cal[:, :64].tolist())) & set(map(tuple, ev[:, :64].tolist())))


def test_windows_cutting(smol_tok) -> None:
    tok = smol_tok
    text = load_text("python-docs", "eval")[:5000]
    n_tok = len(tok(text)["input_ids"])
    w = windows(tok, text, 100)
    assert w.shape == (n_tok // 100, 100)  # last partial window dropped
    assert windows(tok, text, 100, max_windows=2).shape == (2, 100)
    n = w.shape[0]
    # a subsample is spread evenly over the whole text, in order
    assert torch.equal(windows(tok, text, 100, max_windows=2), w[[n // 4, 3 * n // 4]])
    assert spread(10, 2) == [2, 7] and spread(10, 3) == [1, 5, 8] and spread(3, 5) == [0, 1, 2]
    assert all(len(set(spread(m, k))) == k and max(spread(m, k)) < m
               for m in range(1, 40) for k in range(1, m))
    assert windows(tok, text, 100, max_windows=10_000).shape == w.shape
    assert windows(tok, text, 2).shape[1] == 2


class _WithBos:
    """The embedded tokenizer made to add a BOS token, as Gemma 3's does."""

    def __init__(self, tok, bos: int):
        self.tok, self.bos_token_id = tok, bos

    def __call__(self, text: str, **kw) -> dict:
        return {"input_ids": [self.bos_token_id] + self.tok(text, **kw)["input_ids"]}


def test_a_tokenizer_that_adds_bos_gets_it_at_every_window(smol_tok) -> None:
    text = load_text("python-docs", "eval")[:5000]
    plain = smol_tok(text)["input_ids"]
    w = windows(_WithBos(smol_tok, 7), text, 100)
    assert w.shape == (len(plain) // 99, 100)  # BOS + 99 text tokens each: every window predicts 99 tokens
    assert (w[:, 0] == 7).all() and (w[:, 1:] != 7).all()
    assert torch.equal(w[:, 1:].flatten(), torch.tensor(plain[: w.shape[0] * 99]))  # the text, in order
    assert torch.equal(windows(_WithBos(smol_tok, 7), text, 100, max_windows=2), w[[w.shape[0] // 4,
                                                                                   3 * w.shape[0] // 4]])
    assert torch.equal(windows(smol_tok, text, 100)[0], torch.tensor(plain[:100]))  # no BOS: as before


def test_window_errors(smol_tok) -> None:
    tok = smol_tok
    with pytest.raises(UsageError, match="seqlen must be at least 2"):
        windows(tok, "some text here", 1)
    with pytest.raises(UsageError, match="shorter than one window"):
        windows(tok, "a short text", 512)
    with pytest.raises(UsageError, match="max-windows"):
        windows(tok, "a short text", 2, max_windows=0)
    with pytest.raises(UsageError, match="seqlen must be at least 2"):
        load_windows(tok, "python-docs", "eval", 0)


def test_text_file_corpus(tmp_path: Path) -> None:
    f = tmp_path / "c.txt"
    f.write_text("p0 line one\np0 line two\n\n  \np1\n\n\n\np2 \n \t\np3\n\np4\n", encoding="utf-8")
    assert load_text(str(f), "calibration") == "p0 line one\np0 line two\n\np2\n\np4"
    assert load_text(str(f), "eval") == "p1\n\np3"


def test_corpus_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown split"):
        load_text("python-docs", "train")
    with pytest.raises(UsageError, match="does not exist"):
        load_text(str(tmp_path / "missing.txt"), "eval")
    with pytest.raises(UsageError, match="not a regular file"):
        load_text(str(tmp_path), "eval")
    with pytest.raises(UsageError, match="unknown corpus") as e:
        load_text("pythondocs", "eval")
    assert all(c in str(e.value) for c in CORPORA)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not valid UTF-8"):
        load_text(str(bad), "eval")


def test_wikitext2_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(UsageError, match="wikitext2") as e:
        load_text("wikitext2", "eval")
    assert "\n" not in str(e.value)
