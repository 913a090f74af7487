"""`slicedim eval`: the JSON and table on the real model, and every bad input → one stderr line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slicedim_lab import cli
from slicedim_lab.eval.metrics import evaluate
from slicedim_lab.load.corpus import load_windows
from slicedim_lab.load.models import LoadedModel

BASE = ["eval", "--device", "cpu", "--seqlen", "64", "--max-windows", "2", "--no-progress"]
KEYS = {"ppl", "accuracy", "tokens", "windows", "seqlen", "model", "corpus", "split", "seconds"}


def test_eval_json_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smol: LoadedModel
) -> None:
    out = tmp_path / "sub" / "eval.json"
    assert cli.main([*BASE, "--batch-size", "2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert KEYS <= set(res)
    assert (res["windows"], res["seqlen"], res["tokens"]) == (2, 64, 2 * 63)
    assert (res["model"], res["corpus"], res["split"]) == ("smollm2-135m-instruct", "python-docs", "eval")
    # the same windows through the API give the same numbers
    ref = evaluate(smol.model, load_windows(smol.tokenizer, "python-docs", "eval", 64, 2), progress=False)
    assert res["ppl"] == pytest.approx(ref.ppl, rel=1e-5) and res["accuracy"] == pytest.approx(ref.accuracy)
    table = capsys.readouterr().out
    assert "ppl" in table and "accuracy" in table and f"{res['ppl']:.4f}" in table
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temp file left behind


def test_eval_json_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch, smol) -> None:
    # loading is tested above
    monkeypatch.setattr("slicedim_lab.load.models.load_model", lambda *a, **k: smol)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: " + "words and more words. " * 30 for i in range(6)))
    assert cli.main([*BASE, "--corpus", str(corpus), "--json", "-"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)  # stdout holds only the JSON; the table went to stderr
    assert res["corpus"] == str(corpus) and res["windows"] == 2 and "ppl" in captured.err


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "no-such-model"], "unknown model"),
        (["--corpus", "missing/file.txt"], "does not exist"),
        (["--corpus", "nope"], "unknown corpus"),
        (["--split", "train"], "unknown split"),
        (["--seqlen", "1"], "seqlen must be at least 2"),
        (["--max-windows", "0"], "max-windows"),
        (["--batch-size", "0"], "batch-size"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--dtype", "float16"], "only supported on CUDA"),
        (["--dtype", "int4"], "unknown dtype"),
        (["--seqlen", "abc"], "invalid int value"),
        (["--bogus"], "unrecognized arguments"),
        (["--corpus", "SHORT", "--seqlen", "512"], "shorter than one window"),
    ],
)
def test_bad_input(
    args: list[str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, smol
) -> None:
    if "--device" in args:
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    if "SHORT" in args:  # needs a loaded model: reuse the session's instead of reloading it
        monkeypatch.setattr("slicedim_lab.load.models.load_model", lambda *a, **k: smol)
    short = tmp_path / "short.txt"
    short.write_text("Only a few words here.\n\nAnd a few more.\n\nEnd.")
    args = [str(short) if a == "SHORT" else a for a in args]
    out = tmp_path / "out" / "r.json"
    assert cli.main([*BASE, *args, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err and "Traceback" not in err
    assert not out.parent.exists()  # nothing written


def test_no_command_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


def test_subprocess_has_no_traceback(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "slicedim_lab.cli", *BASE, "--model", "no-such-model", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: unknown model")
    assert proc.stdout == "" and not out.exists()
