"""Which tokens suffer (`flow.tokens`, `FlowSession.tokens`): the token table of a tiny float64 model holds
one row per predicted eval token, its loss increase averages to the report's exactly, nothing moves at full
width, the entry site follows the per-position charges, kinds and the roll-up by kind; with a cache a second
session reads everything back without booting the bridge."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny_fixtures import tiny64, token_ids

from slicedim_lab.cache import Store
from slicedim_lab.flow.session import FlowSession
from slicedim_lab.flow.tokens import TOKEN_COLUMNS, entry_sites, token_kind, token_summary

D = 64
CAL, EVAL = token_ids(8, 32, seed=3), token_ids(3, 20, seed=4)


@pytest.fixture(scope="module")
def model():
    return tiny64("llama", tied=True)


@pytest.fixture(scope="module")
def session(model) -> FlowSession:
    return FlowSession(model, CAL, EVAL, batch_size=2)


def test_token_table_matches_the_report(session: FlowSession) -> None:
    t = session.tokens(32, nodes=1)
    assert list(t.columns) == TOKEN_COLUMNS and len(t) == EVAL.shape[0] * (EVAL.shape[1] - 1)
    assert sorted(set(t["pos"])) == list(range(1, EVAL.shape[1]))
    r = session.report(32, attribution=None, maps=False)
    assert t["dloss"].mean() == pytest.approx(r.summary["nll_sliced"] - r.summary["nll_dense"], abs=1e-12)
    assert t["loss_dense"].mean() == pytest.approx(r.summary["nll_dense"], abs=1e-12)
    assert ((t["p_dense"] - (-t["loss_dense"]).map(math.exp)).abs() < 1e-12).all()
    assert t["site"].between(0, 2 * 3).all() and t["site_share"].between(0, 1).all()
    assert (t["site_label"] == [session.sites[s].label for s in t["site"]]).all()
    assert t["token"].str.startswith("<").all()  # no tokenizer: ids as <id>


def test_full_width_changes_nothing(session: FlowSession) -> None:
    t = session.tokens(D, nodes=0)
    assert (t["dloss"] == 0).all() and (t["top_dense"] == t["top_sliced"]).all()
    assert (t["site_share"] == 0).all()


def test_entry_site_follows_the_charges() -> None:
    charges = torch.zeros(3, 1, 4, dtype=torch.float64)  # site x window x position
    charges[1, 0, 0], charges[2, 0, 0] = 0.3, 0.1  # position 0 predicts token 1: site 1 pushed it up most
    charges[0, 0, 1], charges[2, 0, 1] = -0.5, 0.2  # position 1: the loss went down, site 0 pulled hardest
    dloss = torch.tensor([[0.4, -0.3, 0.0]], dtype=torch.float64)
    site, share = entry_sites(charges, dloss)
    assert site[0].tolist()[:2] == [1, 0]
    assert share[0, 0] == pytest.approx(0.75) and share[0, 1] == pytest.approx(1.0) and share[0, 2] == 0


@pytest.mark.parametrize(("text", "prev", "kind"), [
    (" the", "x", "word"), ("ing", " runn", "word piece"), ("_name", "self", "identifier"),
    (" getValue", "x", "identifier"), ("append", ".", "identifier"), (" 42", " ", "number"),
    ("):", "x", "punctuation"), ("\n\n", "x", "whitespace"), ("Hello", "", "word"), ("2", "x", "number"),
])
def test_token_kinds(text: str, prev: str, kind: str) -> None:
    assert token_kind(text, prev) == kind


def test_summary_by_kind() -> None:
    t = pd.DataFrame({"kind": ["word", "word", "punctuation"], "loss_dense": [1.0, 2.0, 3.0],
                      "loss_sliced": [2.0, 2.0, 3.5], "dloss": [1.0, 0.0, 0.5],
                      "top_dense": ["a", "b", "c"], "top_sliced": ["a", "x", "c"]})
    s = token_summary(t).set_index("kind")
    assert list(s.index) == ["word", "punctuation"]  # the kinds' order
    assert s.loc["word", "tokens"] == 2 and s.loc["word", "dloss_mean"] == 0.5
    assert s.loc["word", "dloss_share"] == pytest.approx(1 / 1.5) and s.loc["word", "top1_changed"] == 0.5


def test_a_second_session_reads_the_cache(model, tmp_path: Path) -> None:
    first = FlowSession(model, CAL, EVAL, batch_size=2, cache=Store.open(tmp_path, model="tiny"))
    table, report = first.tokens(40, nodes=1), first.report(40, attribution=1)
    store = Store.open(tmp_path, model="tiny")
    second = FlowSession(model, CAL, EVAL, batch_size=2, cache=store)
    pd.testing.assert_frame_equal(second.tokens(40, nodes=1), table)
    pd.testing.assert_frame_equal(second.report(40, attribution=1).table, report.table)
    assert second._bridge is None  # nothing had to run
    assert set(store.hits) == {"flow-dense-pass", "flow-tokens", "flow-report"} and not store.misses
    other = FlowSession(model, CAL, EVAL[:2], batch_size=2, cache=Store.open(tmp_path, model="tiny"))
    assert other.cache.misses == ["flow-dense-pass"]  # other eval windows: their own entries
