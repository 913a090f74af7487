"""The tokens and two-models explorers and the notebooks' cached setup, on tiny float64 models and a
synthetic corpus: every control moves its figures, and a second setup reads the dense state (metrics, PCA,
Fisher tables, the sliced model) back from the cache instead of making it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slicedim_lab import widgets as sw
from slicedim_lab.core.widths import model_site_dims
from slicedim_lab.flow import session as flow_session
from slicedim_lab.flow.session import FlowSession
from slicedim_lab.load.models import LoadedModel
from slicedim_lab.testing import tiny_model
from slicedim_lab.widgets.setup import NotebookSetup, notebook_setup

SEQLEN = 24


class ModTokenizer:
    """Each whitespace-separated number is a token id in the tiny vocabulary; no BOS."""

    bos_token_id = None

    def __call__(self, text: str, verbose: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [3 + int(w) % 250 for w in text.split()]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("corpus") / "numbers.txt"
    path.write_text("\n\n".join(" ".join(str((7 * i) % 997) for i in range(60 * p, 60 * p + 60))
                                for p in range(12)))
    return str(path)


PIECES = (" word", "_name", ",", "\n")  # what a token id decodes to in the tokens explorer's test


def make_setup(arch: str, layers: int, corpus: str, cache: Path | None) -> NotebookSetup:
    model = tiny_model(arch, dtype=torch.float64, num_hidden_layers=layers)
    lm = LoadedModel(model, ModTokenizer(), f"tiny-{arch}", torch.device("cpu"))
    return notebook_setup(lm.name, corpus=corpus, cal_windows=4, cal_seqlen=SEQLEN, eval_windows=2,
                          eval_seqlen=SEQLEN, grad_windows=2, lm=lm, cache_dir=cache)


def data_of(fig) -> list:
    return [(t.name, list(t.x or []), list(t.y or []), t.marker.opacity if hasattr(t, "marker") else None)
            for t in fig.data]


def test_a_second_setup_reads_the_cache(corpus: str, tmp_path: Path) -> None:
    first = make_setup("llama", 2, corpus, tmp_path)
    dims = model_site_dims(first.lm.model, dim=40)
    dense, pcas = first.dense_metrics(2), first.dense_pcas(2)
    sliced, small = first.slice(dims, 2)
    projected = first.projected_metrics(40, pcas, 2)
    tables = first.fisher_tables(pcas)
    assert first.projected_metrics(64, pcas, 2).ppl == pytest.approx(dense.ppl, rel=1e-9)  # full width: dense
    again = make_setup("llama", 2, corpus, tmp_path)
    assert again.store.folder == first.store.folder
    assert again.dense_metrics(2) == dense and again.projected_metrics(40, pcas, 2) == projected
    assert all(torch.equal(a.vectors, b.vectors) for a, b in zip(again.dense_pcas(2), pcas))
    assert torch.equal(again.fisher_tables(pcas).diag, tables.diag)
    cached, measured = again.slice(dims, 2)
    assert measured == small and [b.shape for b in cached.bases] == [b.shape for b in sliced.bases]
    ids = first.evw[:1]
    with torch.no_grad():
        assert torch.allclose(cached.model(ids).logits, sliced.model(ids).logits, rtol=0, atol=1e-10)
    assert set(again.store.hits) == {"dense-eval", "projected-eval", "dense-pca", "fisher-tables", "sliced",
                                     "sliced-eval"} and not again.store.misses
    assert make_setup("llama", 1, corpus, tmp_path).store.folder != first.store.folder  # other weights
    off = make_setup("llama", 2, corpus, None)
    assert not off.store.enabled and off.slice(dims, 2)[1].ppl == pytest.approx(small.ppl, rel=1e-9)


def test_tokens_explorer_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    # four kinds of token text, as a tokenizer would decode them (the tiny model has no tokenizer)
    monkeypatch.setattr(flow_session, "decode_each", lambda tok, ids: [PIECES[i % 4] for i in ids])
    model = tiny_model("llama", dtype=torch.float64, num_hidden_layers=2)
    ids = torch.randint(3, 256, (8, SEQLEN), generator=torch.Generator().manual_seed(1))
    session = FlowSession(model, ids[:6], ids[6:], batch_size=2)
    ex = sw.tokens_explorer(session, dim=48, top=10)
    assert set(ex.state["table"]["kind"]) == {"word", "identifier", "punctuation", "whitespace"}
    assert set(ex.figures) == {"kinds", "scatter"} and len(ex.state["worst"]) == 10
    before = {k: data_of(f) for k, f in ex.figures.items()}
    ex.controls["dim"].value = 32
    assert ex.state["dim"] == 32 and all(data_of(f) != before[k] for k, f in ex.figures.items())
    kind = ex.state["table"]["kind"].iloc[0]
    scatter = data_of(ex.figures["scatter"])
    ex.controls["kind"].value = kind
    assert data_of(ex.figures["scatter"]) != scatter and "sdl-off" in ex.outputs["text"].value
    assert (ex.state["worst"]["kind"] == kind).all()
    ex.controls["sort"].value = "largest decrease"
    assert ex.state["worst"]["dloss"].is_monotonic_increasing
    ex.controls["rows"].value = 5
    assert len(ex.state["worst"]) <= 5 and ex.calls == 4


def test_two_models_explorer(corpus: str, tmp_path: Path) -> None:
    a, b = make_setup("llama", 2, corpus, tmp_path), make_setup("qwen2", 3, corpus, tmp_path)
    ta = sw.model_tables(a, [0.25, 0.5], ["paper", "fisher"], 2, name="a")
    tb = sw.model_tables(b, [0.25], (), 2, name="b")
    assert tb.predicted.empty and "fisher-tables" not in b.store.misses  # no predictor ran on the second
    assert ta.measured["dim"].tolist() == [48, 32]
    assert ta.measured["ppl"].tolist() == [a.projected_metrics(d, a.dense_pcas(2), 2).ppl for d in (48, 32)]
    paper = ta.predicted[(ta.predicted["predictor"] == "paper") & (ta.predicted["dim"] == 32)]["ppl"].item()
    assert paper == pytest.approx(ta.measured["ppl_dense"][0] ** 2)  # ln PPL(d') = (D/d') ln PPL₀ at d' = D/2
    ex = sw.two_models_explorer([ta, tb], 0.25)
    before = data_of(ex.figures["models"])
    ex.controls["sparsity"].value = 0.5
    assert ex.state["dims"] == {"a": 32, "b": 32} and data_of(ex.figures["models"]) != before
    assert ex.state["table"]["model"].tolist() == ["a", "b"] and ex.calls == 1
