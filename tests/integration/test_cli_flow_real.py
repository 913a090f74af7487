"""slicedim flow on the real embedded model."""

from __future__ import annotations

import json

import pytest

from slicedim_lab.cli import main

SMALL = ["--cal-samples", "2", "--cal-seqlen", "32", "--eval-windows", "2", "--eval-seqlen", "24",
         "--batch-size", "2", "--no-progress"]


@pytest.mark.smol
@pytest.mark.slow
def test_flow_real_model(capsys):
    code, out, err = run(capsys, ["flow", "--dim", "432", "--basis", "dense", "--cal-samples", "2",
                                  "--cal-seqlen", "64", "--eval-windows", "1", "--eval-seqlen", "64",
                                  "--lens", "10", "--attribution-steps", "1", "--no-progress", "--json", "-"])
    assert code == 0
    res = json.loads(out)
    assert res["hidden_size"] == 576 and len(res["per_layer"]) == 31
    sm = res["summary"]
    assert sm["ppl_sliced"] > sm["ppl_dense"] and sm["kl"] > 0
    total = sm["attr_loss_dense"] + sm["attr_loss_integrated_sum"] + sm["attr_loss_integrated_remainder"]
    assert total == pytest.approx(sm["attr_loss_sliced"], abs=1e-9)


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
