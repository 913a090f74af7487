"""`slicedim plan` → `slicedim slice --schedule` → an export with the planned count; `slicedim sweep
--plan`; and the bad inputs (one line, exit 2; a bad schedule before any weight is read) — tiny models with
the real tokenizer."""

from __future__ import annotations

import csv
import json

import pytest
from tiny_fixtures import tiny_folder

from slicedim_lab import schema
from slicedim_lab.cli import main
from slicedim_lab.core.export import load_sliced
from slicedim_lab.core.size import count_params
from slicedim_lab.load import models

SIZES = ["--cal-samples", "2", "--cal-seqlen", "32", "--eval-seqlen", "32", "--max-eval-windows", "1",
         "--no-progress"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, smol_tok) -> dict:
    root = tmp_path_factory.mktemp("plan")
    return {arch: tiny_folder(root / arch, smol_tok, arch, tied=True) for arch in ("llama", "gemma3")}


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_plan_then_slice_gives_the_planned_count(capsys, tmp_path, folders, arch: str) -> None:
    plan = tmp_path / "plan.json"
    code = main(["plan", "--model", str(folders[arch]), "--sparsity", "0.3", "--out", str(plan),
                 "--grad-windows", "2", "--tables", str(tmp_path / "t.pt"), "--json", "-", *SIZES])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and json.loads(plan.read_text())["site_dims"] == res["site_dims"]
    assert res["params"] <= res["budget"] == res["uniform"]["params"]
    assert res["predicted"]["dloss"] <= res["uniform"]["dloss"]
    out = tmp_path / "sliced"
    code = main(["slice", "--model", str(folders[arch]), "--schedule", str(plan), "--out", str(out),
                 "--json", "-", *SIZES[:-1]])
    sliced = json.loads(capsys.readouterr().out)
    assert code == 0 and sliced["dims"] == res["site_dims"]
    exported = count_params(load_sliced(out))
    assert exported == sliced["params_sliced"] == res["params"]  # counted exactly, not just within 0.5 %
    frac = f"{min(1.0, (res['budget'] + 5000) / res['dense_params']):.6f}"  # tables reused from --tables
    again = main(["plan", "--model", str(folders[arch]), "--params", frac, "--out", str(tmp_path / "p2.json"),
                  "--grad-windows", "2", "--tables", str(tmp_path / "t.pt"), *SIZES])
    assert again == 0 and "planned" in capsys.readouterr().out


def test_unreachable_budgets_are_one_line(capsys, tmp_path, folders) -> None:
    args = ["plan", "--model", str(folders["llama"]), "--grad-windows", "2", *SIZES]
    assert main([*args, "--params", "1.5", "--out", str(tmp_path / "a.json")]) == 2
    assert "fraction of the dense parameter count" in one_line(capsys)
    assert main([*args, "--params", "0.05", "--out", str(tmp_path / "b.json")]) == 2
    assert "below the smallest schedule" in one_line(capsys)
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("schedule, message", [("64,64,64", "a schedule needs 5 widths"),
                                                ("64,64,4,64,64", "schedule widths must be in [8, 64]"),
                                                ("64,64,65,64,64", "schedule widths must be in [8, 64]")])
def test_bad_schedules_fail_before_anything_loads(capsys, tmp_path, folders, monkeypatch, schedule: str,
                                                  message: str) -> None:
    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(models, "load_model", no_load)
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"site_dims": [int(x) for x in schedule.split(",")]}))
    assert main(["slice", "--model", str(folders["llama"]), "--schedule", str(f), *SIZES]) == 2
    assert message in one_line(capsys)


def test_sweep_plan_measures_both_side_by_side(capsys, tmp_path, folders) -> None:
    out = tmp_path / "sw"
    code = main(["sweep", "--model", str(folders["llama"]), "--sparsities", "0.3,0.5", "--plan", "--out",
                 str(out), "--grad-windows", "2", "--mc-items", "4", *SIZES])
    log = capsys.readouterr().out
    assert code == 0 and "planned vs uniform widths at the same parameter count" in log
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 2
    for r in rows:
        assert r[schema.planned("params")] <= r["params"] == r[schema.planned("budget")]
        for m in ("ppl", "acc", "mc_acc"):
            assert r[schema.planned(schema.measured(m))] is not None
        dims = [int(x) for x in r[schema.planned("dims")].split(",")]
        assert len(dims) == 5 and all(d % 8 == 0 for d in dims)
    with open(out / "results.csv") as f:
        assert schema.planned(schema.measured("ppl")) in next(csv.reader(f))
    assert "Planned widths vs uniform slicing" in (out / "report.html").read_text()
    assert set(json.loads((out / "plan.json").read_text())) == {str(r["dim"]) for r in rows}
