"""`slicedim flow` and `slicedim verify`: end to end on a tiny saved model (real tokenizer), bad input ->
exit 2 with one line, a failed check -> exit 1, and one short real-model run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny_fixtures import tiny_folder

from slicedim_lab.cli import main
from slicedim_lab.core import emulate
from slicedim_lab.flow.tables import COLUMNS

SMALL = ["--cal-samples", "2", "--cal-seqlen", "32", "--eval-windows", "2", "--eval-seqlen", "24",
         "--batch-size", "2", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, smol_tok) -> Path:
    return tiny_folder(tmp_path_factory.mktemp("tiny") / "model", smol_tok)


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [
    ["flow"],
    ["flow", "--dim", "0"],
    ["flow", "--dim", "8", "--basis", "pca"],
    ["flow", "--dim", "8", "--lens", "every"],
    ["flow", "--dim", "8", "--attribution-steps", "-1"],
    ["flow", "--dim", "8", "--cal-samples", "0"],
    ["flow", "--dim", "8", "--eval-seqlen", "1"],
    ["flow", "--dim", "8", "--corpus", "/nonexistent/corpus.txt"],
    ["flow", "--dim", "8", "--model", "no-such-model"],
    ["verify", "--dim", "0"],
    ["verify", "--windows", "0"],
    ["verify", "--model", "no-such-model"],
])
def test_bad_input_exits_2_with_one_line(capsys, argv):
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1


def test_dim_beyond_the_model_width(capsys, tiny_dir):
    for cmd in ("flow", "verify"):
        extra = SMALL if cmd == "flow" else []
        code, out, err = run(capsys, [cmd, "--model", str(tiny_dir), "--dim", "65", *extra])
        # transformers' weight-loading bar may precede it; the error itself is one line, the last
        errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert code == 2 and len(errors) == 1 and err.splitlines()[-1] == errors[0]
        assert "dim must be in [1, 64]" in errors[0]


def test_flow_end_to_end(capsys, tiny_dir, tmp_path):
    csv = tmp_path / "flow.csv"
    code, out, err = run(capsys, ["flow", "--model", str(tiny_dir), "--dim", "40", "--basis", "dense", *SMALL,
                                  "--lens", "post", "--attribution-steps", "1", "--svd", "--compare",
                                  "--json", "-", "--csv", str(csv)])
    assert code == 0
    res = json.loads(out)
    assert res["dim"] == 40 and res["hidden_size"] == 64 and res["dims"] == [40] * 4 + [64]
    assert [r["layer"] for r in res["per_layer"]] == [-1, 0, 1]
    sm = res["summary"]
    total = sm["attr_loss_dense"] + sm["attr_loss_integrated_sum"] + sm["attr_loss_integrated_remainder"]
    assert total == pytest.approx(sm["attr_loss_sliced"], abs=1e-9)
    assert [r["basis"] for r in res["compare"]] == ["none (dense model)", "dense", "interleaved"]
    assert res["singular"] and res["table"]
    table = pd.read_csv(csv, keep_default_na=False)
    assert list(table.columns) == COLUMNS and len(table) == len(res["table"])
    assert "embed" in err and "ppl sliced" in err  # the per-layer table goes to stderr when JSON owns stdout


def test_flow_interleaved_prints_table(capsys, tiny_dir):
    code, out, err = run(capsys, ["flow", "--model", str(tiny_dir), "--dim", "32", *SMALL, "--no-attribution",
                                  "--lens", "none"])
    assert code == 0 and "error" not in err
    lines = out.splitlines()
    assert "interleaved bases" in lines[0] and lines[1].split()[0] == "layer"
    assert [ln.split()[0] for ln in lines[2:5]] == ["embed", "0", "1"]


def test_verify_passes_and_fails(capsys, tiny_dir, monkeypatch):
    argv = ["verify", "--model", str(tiny_dir), "--cal-samples", "2", "--cal-seqlen", "32", "--windows", "1",
            "--seqlen", "16", "--no-progress", "--json", "-"]
    code, out, _ = run(capsys, argv)
    res = json.loads(out)
    assert code == 0 and res["ok"] and res["dim"] == 48
    for key in ("invariance_max_abs_diff", "emulation_max_abs_diff", "max_abs_logit"):
        assert isinstance(res[key], float)
    assert res["emulation_max_abs_diff"] <= 1e-3 * res["max_abs_logit"]
    monkeypatch.setitem(emulate.VERIFY_RTOL, torch.float32, 0.0)
    code, out, _ = run(capsys, argv)
    assert code == 1 and json.loads(out)["ok"] is False


