"""The notebooks' on-disk cache (`slicedim_lab.cache`): an entry is made once and read back, keyed by its
name and parameters inside a store keyed by the model, its weights and the corpus; a failing `make` leaves
nothing behind; what is stored reads back with `torch.load(weights_only=True)`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from slicedim_lab.cache import Store, digest, plain, token_fingerprint, weights_fingerprint
from slicedim_lab.testing import tiny_model


def test_memo_makes_once_then_reads_back(tmp_path: Path) -> None:
    calls = []

    def make() -> dict:
        calls.append(1)
        return {"x": torch.arange(3.0), "n": np.float64(2.5), "rows": [1, 2]}

    store = Store.open(tmp_path, model="m", corpus="c")
    first = store.memo("thing", {"dim": 8}, make, lambda v: v, lambda p: p)
    reopened = Store.open(tmp_path, model="m", corpus="c")
    again = reopened.memo("thing", {"dim": 8}, make, lambda v: v, lambda p: p)
    assert len(calls) == 1 and torch.equal(again["x"], first["x"]) and again["n"] == 2.5
    assert isinstance(again["n"], float)  # numpy scalars stored as Python numbers
    store.memo("thing", {"dim": 16}, make, lambda v: v, lambda p: p)  # other parameters: another entry
    assert len(calls) == 2
    assert json.loads((store.folder / "key.json").read_text()) == {"model": "m", "corpus": "c"}
    assert Store.open(tmp_path, model="m", corpus="other").folder != store.folder


def test_a_failing_make_leaves_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path, model="m")

    def boom() -> dict:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        store.memo("thing", {}, boom, lambda v: v, lambda p: p)
    assert [p.name for p in store.folder.iterdir()] == ["key.json"]

    def half(tmp: Path) -> None:
        (tmp / "part").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        store.folder_entry("folder", {}, half)
    assert [p.name for p in store.folder.iterdir()] == ["key.json"]
    made = store.folder_entry("folder", {}, lambda tmp: (tmp / "part").write_text("y"))
    assert (made / "part").read_text() == "y" and store.folder_entry("folder", {}, half) == made


def test_off_computes_every_time() -> None:
    store, calls = Store(None), []
    for _ in range(2):
        store.memo("thing", {}, lambda: calls.append(1) or 1, lambda v: v, lambda p: p)
    assert len(calls) == 2 and not store.enabled and store.path("thing") is None
    assert store.summary() == "cache: off"


def test_fingerprints_follow_the_weights_and_the_tokens() -> None:
    a, b = tiny_model("llama", seed=0), tiny_model("llama", seed=0)
    assert weights_fingerprint(a) == weights_fingerprint(b)
    with torch.no_grad():
        next(b.parameters())[0, 0] += 1e-3
    assert weights_fingerprint(a) != weights_fingerprint(b)
    ids = torch.arange(12).reshape(3, 4)
    assert token_fingerprint(ids) == token_fingerprint(ids.clone())
    assert token_fingerprint(ids) != token_fingerprint(ids.reshape(4, 3)) != token_fingerprint(ids + 1)
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})


def test_a_model_from_a_folder_is_known_by_its_files(tmp_path: Path) -> None:
    tiny_model("llama", seed=0).save_pretrained(tmp_path / "m")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    first = weights_fingerprint(loaded)
    assert first == weights_fingerprint(AutoModelForCausalLM.from_pretrained(tmp_path / "m"))
    assert first != weights_fingerprint(tiny_model("llama", seed=0))  # the same weights built in memory
    tiny_model("llama", seed=1).save_pretrained(tmp_path / "m")  # the folder's weights replaced
    assert weights_fingerprint(AutoModelForCausalLM.from_pretrained(tmp_path / "m")) != first


def test_plain_converts_numpy() -> None:
    out = plain({"a": np.arange(3), "b": [np.int64(4), (np.float32(0.5),)]})
    assert isinstance(out["a"], torch.Tensor) and out["b"][0] == 4 and isinstance(out["b"][1], tuple)
