"""`slicedim reproduce`: the paper preset's settings, the one-line offline failure (before anything loads,
naming everything it could not reach), the paper-style table from a folder of rows, and one end-to-end run
through the real sweep runner on a tiny local model with an offline corpus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from huggingface_hub import constants
from huggingface_hub.errors import GatedRepoError
from tiny_fixtures import tiny_folder

from slicedim_lab import schema
from slicedim_lab.cli import build_parser, main
from slicedim_lab.cli import reproduce as rep
from slicedim_lab.load import models
from slicedim_lab.sweep.presets import PAPER, TABLE_FILE, paper_table, preset_config, write_paper_table


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_sweep(monkeypatch):
    """Any attempt to run the sweep (load a model, read a corpus) fails the test."""
    def refuse(*a, **k):
        raise AssertionError("the sweep ran")

    monkeypatch.setattr(rep, "run_sweep", refuse)
    monkeypatch.setattr(models, "load_model", refuse)


# ----------------------------------------------------------------------------- the preset


def test_paper_preset_settings():
    cfg = preset_config(PAPER, "meta-llama/Meta-Llama-3-8B-Instruct", dtype="bfloat16")
    assert (cfg.corpus, cfg.basis, cfg.cal_samples, cfg.cal_seqlen, cfg.eval_seqlen) == \
        ("wikitext2", "interleaved", 1024, 2048, 2048)
    assert cfg.max_eval_windows is None  # the whole test split, as SliceGPT evaluates
    assert cfg.tasks == ["piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande"]
    assert cfg.round_interval == 8 and cfg.dtype == "bfloat16" and not cfg.slice_head
    assert PAPER.sparsities[0] == 0 and {0.1, 0.2, 0.25, 0.3, 0.4, 0.5} <= set(PAPER.sparsities)
    assert PAPER.task_metrics["winogrande"] == "acc" and PAPER.task_metrics["hellaswag"] == "acc_norm"


def test_overrides_replace_single_settings():
    args = build_parser().parse_args(["reproduce", "--device", "cpu", "--cal-samples", "128", "--tasks",
                                      "none", "--sparsities", "0,0.25", "--max-eval-windows", "8"])
    cfg, sparsities = rep._config(args)
    assert cfg.cal_samples == 128 and cfg.cal_seqlen == 2048 and cfg.tasks == [] and cfg.max_eval_windows == 8
    assert cfg.dtype == "float32"  # bfloat16 is the default on CUDA only
    assert sparsities == [0.0, 0.25] and cfg.corpus == "wikitext2"
    cfg, sparsities = rep._config(build_parser().parse_args(["reproduce", "--device", "cpu"]))
    assert cfg.tasks == PAPER.tasks and sparsities == list(PAPER.sparsities)


@pytest.mark.parametrize("argv", [
    ["reproduce", "--sparsities", "0.1,1.2"],
    ["reproduce", "--sparsities", "a,b"],
    ["reproduce", "--dtype", "bfloat16", "--device", "cpu"],
    ["reproduce", "--batch-size", "0"],
    ["reproduce", "--tasks", "mmlu"],
    ["reproduce", "--corpus", "no-such-corpus"],
    ["reproduce", "--cal-samples", "0"],
])
def test_bad_input_exits_2_with_one_line_and_loads_nothing(capsys, no_sweep, monkeypatch, argv):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)  # only the input is at fault
    monkeypatch.setattr(rep, "check_model_access", lambda m: None)
    code, out, err = run(capsys, argv)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1


# ----------------------------------------------------------------------------- offline


def test_offline_fails_at_once_naming_what_it_could_not_reach(capsys, no_sweep, monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the real probe answers False at once
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    out = tmp_path / "run"
    t0 = time.perf_counter()
    code, stdout, err = run(capsys, ["reproduce", "--model", "meta-llama/Meta-Llama-3-8B-Instruct",
                                     "--out", str(out)])
    assert time.perf_counter() - t0 < 5
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert "cannot reach the Hugging Face hub (HF_HUB_OFFLINE is set)" in err
    for what in ("model meta-llama/Meta-Llama-3-8B-Instruct", "wikitext-2-raw-v1", "piqa", "arc_easy",
                 "arc_challenge", "hellaswag", "winogrande"):
        assert what in err
    assert not out.exists()


def test_unreachable_hub_is_named_with_its_endpoint(capsys, no_sweep, monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    code, _, err = run(capsys, ["reproduce", "--model", "microsoft/Phi-3-mini-4k-instruct", "--tasks", "none",
                                "--out", str(tmp_path / "run")])
    assert code == 2 and err.count("\n") == 1
    assert f"could not connect to {constants.ENDPOINT}" in err
    assert "model microsoft/Phi-3-mini-4k-instruct" in err and "wikitext" in err and "lm-eval" not in err


def test_what_needs_the_hub(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    folder = tmp_path / "m"
    folder.mkdir()
    assert rep.hub_needs(str(folder), "python-docs", ["corpus-mc"]) == []
    assert rep.hub_needs(str(folder), "wikitext2", []) == ["dataset wikitext (wikitext-2-raw-v1)"]
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # a locally cached WikiText-2 is used
    assert rep.hub_needs(str(folder), "wikitext2", []) == []
    assert rep.hub_needs("no-such-owner/no-such-model", "wikitext2", ["piqa"]) == \
        ["model no-such-owner/no-such-model"]  # and so are cached lm-eval datasets
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    needs = rep.hub_needs(str(folder), "python-docs", ["piqa", "corpus-mc"])
    assert needs == ["the lm-eval datasets of piqa"]


def test_gated_model_is_one_line(capsys, no_sweep, monkeypatch, tmp_path):
    def gated(repo_id, **kw):
        err = GatedRepoError.__new__(GatedRepoError)
        err.args = (f"{repo_id} is gated",)
        raise err

    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr("huggingface_hub.auth_check", gated)
    code, _, err = run(capsys, ["reproduce", "--out", str(tmp_path / "run")])
    assert code == 2 and err.count("\n") == 1
    assert "meta-llama/Meta-Llama-3-8B-Instruct is gated" in err and "HF_TOKEN" in err


def test_preflight_passes_when_everything_is_local(tmp_path, monkeypatch):
    """A local model, an offline corpus and task: preflight returns without a single hub probe (every way it
    could reach the hub fails the test)."""
    def blocked(*a, **k):
        raise AssertionError("preflight probed the hub")

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # a probe would be made if anything needed one
    monkeypatch.setattr(models, "hub_reachable", blocked)
    monkeypatch.setattr(rep, "check_model_access", blocked)
    monkeypatch.setattr("socket.create_connection", blocked)
    folder = tmp_path / "m"
    folder.mkdir()
    assert rep.hub_needs(str(folder), "python-docs", ["corpus-mc"]) == []
    assert rep.preflight(str(folder), "python-docs", ["corpus-mc"]) is None
    with pytest.raises(AssertionError, match="probed the hub"):  # the block is live: a hub id is probed
        rep.preflight("no-such-owner/no-such-model", "python-docs", ["corpus-mc"])


# ----------------------------------------------------------------------------- the table


def _row(dim: int, s: float, ppl: float, tasks: dict[str, float], paper: float | None = None) -> dict:
    row = {"dim": dim, "sparsity": s, "params": 8.03e9 * dim / 4096, schema.measured("ppl"): ppl,
           schema.pred("ppl", "paper"): paper}
    row.update({f"task_{t}": v for t, v in tasks.items()})
    return row


def _fake_folder(out: Path, model: str) -> Path:
    out.mkdir()
    settings = {"model": model, "corpus": "wikitext2", "basis": "interleaved", "cal_samples": 1024,
                "cal_seqlen": 2048, "eval_seqlen": 2048, "max_eval_windows": None, "dtype": "bfloat16",
                "tasks": ["piqa", "winogrande"]}
    (out / "settings.json").write_text(json.dumps({"fingerprint": "x", "format": 2, "settings": settings}))
    rows = [_row(3072, 0.25, 9.5, {"piqa_acc_norm": 0.70, "piqa_acc": 0.69, "winogrande_acc": 0.60}, 8.9),
            _row(4096, 0.0, 6.24, {"piqa_acc_norm": 0.80, "piqa_acc": 0.79, "winogrande_acc": 0.72}, 6.24),
            _row(3680, 0.1, 7.1, {"piqa_acc_norm": 0.75, "winogrande_acc": None}, 7.0)]
    (out / "results.json").write_text(json.dumps({"columns": [], "rows": rows}))
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_paper_table_from_a_folder_of_rows(tmp_path):
    out = _fake_folder(tmp_path / "sweep", "meta-llama/Meta-Llama-3-8B-Instruct")
    text = write_paper_table(out).read_text()
    assert (out / TABLE_FILE).is_file()
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert _cells(lines[0]) == ["s", "d'", "params (M)", "PPL", "PPL (paper's law)", "PIQA (acc_norm)",
                                "WinoGrande (acc)", "Avg"]
    rows = [_cells(ln) for ln in lines[2:]]
    assert [r[0] for r in rows] == ["dense", "0.10", "0.25"]  # dense first, then by width
    assert rows[0] == ["dense", "4096", "8030.0", "6.24", "—", "80.00", "72.00", "76.00"]
    assert rows[1][3:] == ["7.10", "7.00", "75.00", "—", "75.00"]  # a missing task: '—', Avg over the rest
    assert rows[2][3:] == ["9.50", "8.90", "70.00", "60.00", "65.00"]
    assert "1024 × 2048 tokens of wikitext2 (train)" in text and "all windows of 2048 tokens (test)" in text


def test_published_column_for_a_known_model(tmp_path):
    out = _fake_folder(tmp_path / "sweep", "meta-llama/Llama-3.1-8B")
    text = write_paper_table(out).read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert "PPL (published)" in _cells(lines[0])
    col = _cells(lines[0]).index("PPL (published)")
    assert [_cells(ln)[col] for ln in lines[2:]] == ["6.24", "8.04", "13.79"]
    assert PAPER.published["meta-llama/Llama-3.1-8B"].source in text


def test_table_without_tasks_has_no_task_columns():
    text = paper_table([_row(64, 0.0, 10.0, {})], [])
    assert _cells(text.splitlines()[0]) == ["s", "d'", "params (M)", "PPL", "PPL (paper's law)"]


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_reproduce_end_to_end_on_a_tiny_local_model(capsys, smol_tok, tmp_path):
    """The real runner, offline: a tiny saved model, python-docs instead of WikiText-2, corpus-mc instead
    of lm-eval; the usual sweep folder and the table."""
    model = tiny_folder(tmp_path / "model", smol_tok)
    out = tmp_path / "run"
    small = ["--mc-items", "4", "--cal-samples", "4", "--cal-seqlen", "32", "--eval-seqlen", "32",
             "--max-eval-windows", "2", "--grad-windows", "2", "--batch-size", "2"]
    code, stdout, err = run(capsys, [
        "reproduce", "--model", str(model), "--device", "cpu", "--corpus", "python-docs", "--tasks",
        "corpus-mc", "--sparsities", "0,0.25", *small, "--no-progress", "--no-report", "--out", str(out)])
    assert code == 0, err
    for name in ("settings.json", "results.csv", "results.json", "dense.json", TABLE_FILE):
        assert (out / name).is_file(), name
    settings = json.loads((out / "settings.json").read_text())["settings"]
    assert settings["cal_seqlen"] == 32 and settings["tasks"] == ["corpus-mc"]
    lines = [ln for ln in (out / TABLE_FILE).read_text().splitlines() if ln.startswith("|")]
    assert "corpus-MC (acc_norm)" in lines[0]
    assert [_cells(ln)[:2] for ln in lines[2:]] == [["dense", "64"], ["0.25", "48"]]
    assert lines[2] in stdout
