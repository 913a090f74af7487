"""`widgets.setup.notebook_setup`, the notebooks' shared setup: the held-out gradient windows (04_theory's
Fisher estimate) never overlap the PCA's calibration windows. A tiny model and a synthetic corpus: no real
weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slicedim_lab.load.corpus import load_windows
from slicedim_lab.load.models import LoadedModel
from slicedim_lab.testing import tiny_model
from slicedim_lab.widgets.setup import notebook_setup

SEQLEN = 40


class CountingTokenizer:
    """Each whitespace-separated word is a number and that number is its token id, so a window is known by
    its first token. It adds no BOS token (`corpus.windows` asks)."""

    bos_token_id = None

    def __call__(self, text: str, verbose: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [int(w) for w in text.split()]}


@pytest.fixture
def corpus(tmp_path: Path) -> str:
    """20 paragraphs of 100 distinct tokens; the calibration split (even paragraphs) holds 25 windows."""
    path = tmp_path / "numbers.txt"
    path.write_text("\n\n".join(" ".join(map(str, range(100 * p, 100 * p + 100))) for p in range(20)))
    return str(path)


def _starts(windows: torch.Tensor) -> set[int]:
    return {int(w[0]) for w in windows}


@pytest.mark.parametrize(("cal", "grad"), [(8, 4), (16, 8), (20, 5), (2, 2), (24, 1)])
def test_gradient_windows_are_disjoint_from_the_pca_windows(corpus: str, cal: int, grad: int) -> None:
    lm = LoadedModel(tiny_model(), CountingTokenizer(), "tiny", torch.device("cpu"))
    setup = notebook_setup("tiny", corpus=corpus, cal_windows=cal, cal_seqlen=SEQLEN, eval_windows=2,
                           eval_seqlen=SEQLEN, grad_windows=grad, lm=lm)
    assert setup.grad is not None and setup.grad_heldout
    assert len(_starts(setup.cal)) == cal and len(_starts(setup.grad)) == grad
    assert not _starts(setup.cal) & _starts(setup.grad)
    # the PCA's windows are the ones `load_windows` picks, as before the shared setup
    assert torch.equal(setup.cal, load_windows(lm.tokenizer, corpus, "calibration", SEQLEN, cal))
    assert setup.evw.shape == (2, SEQLEN) and not _starts(setup.evw) & _starts(setup.cal)
    assert "held-out gradient" in setup.summary()


def test_without_gradient_windows(corpus: str) -> None:
    lm = LoadedModel(tiny_model(), CountingTokenizer(), "tiny", torch.device("cpu"))
    setup = notebook_setup("tiny", corpus=corpus, cal_windows=4, cal_seqlen=SEQLEN, eval_windows=None,
                           eval_seqlen=SEQLEN, max_layers=2, lm=lm)
    assert setup.grad is None and setup.n_layers == 2 and setup.hidden == 64 and setup.n_sites == 5
    assert "gradient (" not in setup.summary()
