"""Slicing the real embedded model: CLI end to end, float32 invariance, and the Phi-3 cross-layout check."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, Phi3Config, Phi3ForCausalLM

from slicedim_lab.cli import main
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import site_dims
from slicedim_lab.load.corpus import load_windows

SMALL = ["--cal-samples", "2", "--cal-seqlen", "64", "--eval-seqlen", "64", "--max-eval-windows", "2",
         "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def cal(smol) -> torch.Tensor:
    """More calibration tokens (1024) than D = 576: with fewer, the second moments are rank-deficient and the
    kept directions beyond the rank are an arbitrary pick from a degenerate eigenspace."""
    return load_windows(smol.tokenizer, "python-docs", "calibration", seqlen=512, max_windows=2)


def to_phi3_layout(model) -> Phi3ForCausalLM:
    """The same weights in Phi-3's layout: q/k/v stacked into qkv_proj, gate/up into gate_up_proj."""
    c = model.config
    cfg = Phi3Config(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
        original_max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
        rope_parameters=dict(c.rope_parameters), hidden_act="silu", tie_word_embeddings=c.tie_word_embeddings,
        bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id,
        attn_implementation=c._attn_implementation,  # same kernels, so the two layouts round alike
    )
    phi = Phi3ForCausalLM(cfg).eval()
    sd = {}
    for k, v in model.state_dict().items():
        if ".q_proj." in k:
            pre = k.split(".q_proj.")[0]
            sd[f"{pre}.qkv_proj.weight"] = torch.cat([v] + [model.state_dict()[f"{pre}.{n}.weight"]
                                                            for n in ("k_proj", "v_proj")])
        elif ".gate_proj." in k:
            pre = k.split(".gate_proj.")[0]
            sd[f"{pre}.gate_up_proj.weight"] = torch.cat([v, model.state_dict()[f"{pre}.up_proj.weight"]])
        elif not any(f".{n}." in k for n in ("k_proj", "v_proj", "up_proj")):
            sd[k] = v
    phi.load_state_dict(sd, strict=False)
    phi.tie_weights()
    return phi


@torch.no_grad()
def test_phi3_layout_gives_the_same_dense_and_sliced_logits(smol, smol_windows, cal) -> None:
    x = smol_windows[:1, :64]
    phi = to_phi3_layout(smol.model)
    ref = smol.model(x).logits
    dense_diff = (phi(x).logits - ref).abs().max().item()
    assert dense_diff <= 1e-4, dense_diff
    dims = site_dims(30, 576, dim=432)
    a = slice_model(smol.model, cal, dims, progress=False).model(x).logits
    b = slice_model(phi, cal, dims, progress=False).model(x).logits
    # same kernels: identical here (0.0); the margin covers BLAS builds that block the fused matmuls otherwise
    assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-5
    assert (a.argmax(-1) == b.argmax(-1)).float().mean().item() >= 0.99


@torch.no_grad()
def test_full_width_invariance_float32(smol, smol_windows, cal) -> None:
    x = smol_windows[:1, :64]
    ref = smol.model(x).logits
    out = slice_model(smol.model, cal, site_dims(30, 576, dim=576), progress=False).model(x).logits
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    print(f"float32 invariance on the real model: max |dlogit| / max |logit| = {rel:.2e}")
    assert rel <= 1e-4  # 60 rotated float32 matmul chains through 30 layers


def test_cli_slice_end_to_end(smol, tmp_path, capsys) -> None:
    out = tmp_path / "sliced"
    rc = main(["slice", "--sparsity", "0.25", *SMALL, "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["dim"] == 432 and r["hidden_size"] == 576
    assert r["params_sliced"] < 0.9 * r["params_dense"]
    assert r["macs_per_token_sliced"] < r["macs_per_token_dense"]
    for key in ("ppl", "accuracy", "seconds_calibrate_slice", "seconds_eval", "peak_rss_mb", "cal_samples"):
        assert key in r
    plain = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    assert sum(p.numel() for p in plain.parameters()) == r["params_sliced"]
    x = load_windows(smol.tokenizer, "python-docs", "eval", seqlen=64, max_windows=2)
    from slicedim_lab.eval.metrics import evaluate

    assert evaluate(plain, x, progress=False).ppl == pytest.approx(r["ppl"], rel=1e-5)


def test_cli_sparsity_zero_reproduces_dense(tmp_path) -> None:
    rc = main(["slice", "--sparsity", "0", *SMALL, "--eval-dense", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["ppl"] == pytest.approx(r["ppl_dense"], rel=1e-4)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sparsity", "1"], "sparsity must be in"),
        (["--dim", "0"], "kept widths must be in"),
        (["--dim", "577"], "kept widths must be in"),
        (["--schedule", "432,432"], "a schedule needs 61 widths"),
        (["--dim", "432", "--cal-samples", "100000"], "fewer than --cal-samples"),
        (["--dim", "432", "--corpus", "/no/such/file.txt"], "file"),
    ],
)
def test_cli_slice_bad_input(extra: list[str], message: str, tmp_path, capsys) -> None:
    js = tmp_path / "r.json"
    rc = main(["slice", *SMALL[:-2], *extra, "--json", str(js)] if "--cal-samples" in extra
              else ["slice", *SMALL, *extra, "--json", str(js)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not js.exists()


def test_cli_slice_refuses_existing_out(tmp_path, capsys) -> None:
    (tmp_path / "out").mkdir()
    assert main(["slice", "--dim", "432", *SMALL, "--out", str(tmp_path / "out")]) == 2
    assert "exists" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_sliced_copy_leaves_dense_untouched(smol, cal) -> None:
    before = copy.deepcopy(smol.model.model.layers[0].self_attn.q_proj.weight)
    slice_model(smol.model, cal, site_dims(30, 576, dim=256), progress=False)
    assert torch.equal(before, smol.model.model.layers[0].self_attn.q_proj.weight)
