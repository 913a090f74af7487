"""`slicedim verify --dtype float64` and `slicedim slice --out` on folders saved with plain transformers, one
per architecture family: the adapter holds on a model the package did not build, and the export of a slice at
d' < D loads with plain `AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from slicedim_lab.cli import main
from slicedim_lab.core.sites import model_sites
from slicedim_lab.testing import TINY_ARCHS, tiny_model

SMALL = ["--cal-samples", "2", "--cal-seqlen", "32", "--no-progress", "--json", "-"]


def _folder(root: Path, tok, arch: str, tied: bool) -> Path:
    """A tiny random model of `arch` with the real tokenizer's vocabulary, saved by plain transformers."""
    folder = root / f"{arch}-{'tied' if tied else 'untied'}"
    model = tiny_model(arch, num_hidden_layers=2, vocab_size=len(tok), tie_word_embeddings=tied)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_verify_float64_on_a_plain_folder(capsys, tmp_path, smol_tok, arch: str, tied: bool):
    folder = _folder(tmp_path, smol_tok, arch, tied)
    code = main(["verify", "--model", str(folder), "--dtype", "float64", "--windows", "1", "--seqlen", "16",
                 *SMALL])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["ok"], res
    scale = max(res["max_abs_logit"], 1.0)
    assert res["invariance_max_abs_diff"] <= 1e-6 * scale and res["emulation_max_abs_diff"] <= 1e-6 * scale


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_sliced_export_loads_with_plain_transformers(capsys, tmp_path, smol_tok, arch: str):
    folder = _folder(tmp_path, smol_tok, arch, tied=False)
    out = tmp_path / "sliced"
    code = main(["slice", "--model", str(folder), "--dim", "40", "--dtype", "float64", "--eval-seqlen", "16",
                 "--max-eval-windows", "1", "--out", str(out), *SMALL])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["params_sliced"] < res["params_dense"]
    dense = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64)
    plain = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True, dtype=torch.float64)
    dims = plain.config.slicing["site_dims"]
    assert len(dims) == len(model_sites(dense)) and dims[:-1] == [40] * (len(dims) - 1)
    ids = AutoTokenizer.from_pretrained(out)("def f(x): return x", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = plain(ids).logits
    assert logits.shape == (1, ids.shape[1], len(smol_tok)) and torch.isfinite(logits).all()
