"""`slicedim sweep --target`: the grammar, the search on a known curve (at most three measured widths, the
narrowest meeting width, resume from the folder, one-line refusals), and the command end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from slicedim_lab import schema
from slicedim_lab.cli import main
from slicedim_lab.errors import UsageError
from slicedim_lab.predict.registry import DenseMetrics
from slicedim_lab.sweep.target import parse_target, search_width, target_lines

D, STEP, PPL0 = 256, 8, 10.0


def true_ppl(d: int) -> float:
    """A power law in s, as measured curves are: PPL₀·exp(2·s^1.6)."""
    return PPL0 * math.exp(2.0 * (1 - d / D) ** 1.6)


class FakeRunner:
    """What the search uses of a `SweepRunner`, measuring a known curve."""

    def __init__(self, rows: dict[int, float] | None = None):
        self.cfg = SimpleNamespace(round_interval=STEP, basis="interleaved")
        self.hidden, self.stats = D, {}
        self.dense = DenseMetrics(ppl=PPL0, acc=0.5, hidden=D)
        self.rows = {d: {"dim": d, schema.measured("ppl"): v} for d, v in (rows or {}).items()}
        self.calls: list[int] = []

    def cover(self, dims) -> None:
        pass

    def measure(self, d: int) -> None:
        self.calls.append(d)
        self.rows[d] = {"dim": d, schema.measured("ppl"): true_ppl(d)}

    def measured(self) -> dict[int, dict]:
        return self.rows

    def measured_ppl(self) -> dict[int, float]:
        return {d: r[schema.measured("ppl")] for d, r in self.rows.items()}


def narrowest(bound: float) -> int:
    return min(d for d in range(STEP, D, STEP) if true_ppl(d) <= bound)


@pytest.mark.parametrize("text, metric, value, relative", [
    ("ppl<=1.25x", "ppl", 1.25, True), ("ppl <= 20", "ppl", 20.0, False), ("acc>=0.4", "acc", 0.4, False),
    ("mc_acc>=.9x", "mc_acc", 0.9, True),
])
def test_grammar(text: str, metric: str, value: float, relative: bool) -> None:
    t = parse_target(text)
    assert (t.metric, t.value, t.relative) == (metric, value, relative)


@pytest.mark.parametrize("text", ["ppl>=2", "acc<=0.3", "ppl<1.2", "loss<=2", "ppl<=-1", "ppl<=abc", "",
                                  "ppl<=0"])
def test_malformed_targets_are_one_line(text: str) -> None:
    with pytest.raises(UsageError, match="malformed target") as e:
        parse_target(text)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("factor, bias", [(1.3, 1.5), (1.6, 0.6), (2.5, 1.0), (1.05, 2.0)])
def test_search_finds_the_narrowest_width_in_three_measurements(factor: float, bias: float) -> None:
    """A prior off by a constant factor `bias` in ln PPL (dense-only predictors are): three measured widths
    at most, and the answer is the true narrowest multiple of 8 meeting the target."""
    runner = FakeRunner()
    res = search_width(runner, parse_target(f"ppl<={factor}x"), log=lambda m: None,
                       prior=lambda d: PPL0 * math.exp(bias * 2.0 * (1 - d / D) ** 1.6))
    assert len(runner.calls) == len(res.new) <= 3
    assert res.answer == narrowest(factor * PPL0)
    assert true_ppl(res.answer - 16) > factor * PPL0  # not conservative by two steps or more
    lines = target_lines(res, seconds_per_point=60.0)
    assert lines[-1].startswith(f"{len(res.new)} width(s) measured") and "full sweep" in lines[-1]


def test_search_resumes_from_the_measured_rows() -> None:
    first = FakeRunner()
    prior = lambda d: PPL0 * math.exp(3.0 * (1 - d / D) ** 1.6)  # noqa: E731
    done = search_width(first, parse_target("ppl<=2x"), log=lambda m: None, prior=prior)
    again = FakeRunner({d: r[schema.measured("ppl")] for d, r in first.rows.items()})
    res = search_width(again, parse_target("ppl<=2x"), log=lambda m: None, prior=prior)
    assert again.calls == [] and res.answer == done.answer


def test_unreachable_targets_are_one_line() -> None:
    with pytest.raises(UsageError, match="no width can meet ppl<=0.9x: the dense model's own ppl is 10"):
        search_width(FakeRunner(), parse_target("ppl<=0.9x"), log=lambda m: None, prior=true_ppl)
    runner = FakeRunner()
    with pytest.raises(UsageError, match=r"the widest sliced width d'=248 already misses ppl<=1.0001x") as e:
        search_width(runner, parse_target("ppl<=1.0001x"), log=lambda m: None, prior=true_ppl)
    assert runner.calls == [248] and "\n" not in str(e.value)


def test_cli_target_on_a_tiny_model(tmp_path, smol_tok, monkeypatch, capsys) -> None:
    """End to end on a tiny model: the dense row, at most three sliced widths, the answer in the JSON, the
    measured widths as anchors of the headline in results.csv; a malformed target fails before loading."""
    from slicedim_lab.load import models
    from slicedim_lab.load.models import LoadedModel
    from slicedim_lab.testing import tiny_model

    tiny = tiny_model("llama", vocab_size=len(smol_tok), tie_word_embeddings=True)
    monkeypatch.setattr(models, "load_model",
                        lambda *a, **k: LoadedModel(tiny, smol_tok, "tiny", torch.device("cpu")))
    import slicedim_lab.sweep.inputs as inputs
    monkeypatch.setattr(inputs, "load_model", models.load_model)
    small = ["--cal-samples", "4", "--cal-seqlen", "32", "--eval-seqlen", "32", "--max-eval-windows", "2",
             "--grad-windows", "2", "--tasks", "none", "--no-progress", "--device", "cpu", "--no-report"]
    out = tmp_path / "t"
    rc = main(["sweep", "--target", "ppl<=1.05x", *small, "--out", str(out),
               "--json", str(tmp_path / "r.json")])
    r = json.loads((tmp_path / "r.json").read_text())
    assert rc in (0, 1) and len(r["new"]) <= 3
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {row["dim"] for row in rows} == {64, *r["new"]}
    if r["answer"] is not None:
        assert r["measured"][str(r["answer"])] <= r["threshold"]
    # the search reads the headline alone: only its statistic is built (no Fisher tables at every width)
    assert (out / "jvp.pt").exists() and not (out / "fisher.pt").exists()
    assert "ppl_pred_ours" in rows[-1] and "ppl_pred_fisher" not in rows[-1]
    # --predictors adds predictors to the rows (their statistics built); the search is the same
    every = tmp_path / "all"
    assert main(["sweep", "--target", "ppl<=1.05x", *small, "--out", str(every), "--predictors", "all",
                 "--json", str(tmp_path / "all.json")]) == rc
    assert json.loads((tmp_path / "all.json").read_text())["new"] == r["new"]
    assert (every / "fisher.pt").exists()
    assert "ppl_pred_fisher" in json.loads((every / "results.json").read_text())["rows"][-1]
    capsys.readouterr()
    assert main(["sweep", "--plan", "--sparsities", "0.3", *small, "--predictors", "ours",
                 "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not --plan" in err[0]
    assert main(["sweep", "--target", "ppl>=2", *small, "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "malformed target" in err[0] and not (tmp_path / "u").exists()
