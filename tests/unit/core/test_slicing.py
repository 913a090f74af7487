"""SliceGPT slicing on tiny random models: invariance, shapes, tied heads, save/load, generate."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from slicedim_lab.core.export import load_sliced, save_sliced
from slicedim_lab.core.memory import storage_ptrs
from slicedim_lab.core.sites import is_parallel, model_sites
from slicedim_lab.core.size import count_params, param_breakdown
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import dim_for_sparsity, site_dims
from slicedim_lab.errors import UsageError
from slicedim_lab.testing import TINY_ARCHS, tiny_model

ARCHS = TINY_ARCHS
L, D = 3, 64


def ids(n: int = 6, t: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 256, (n, t), generator=torch.Generator().manual_seed(seed))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def dims_of(model, **kw) -> list[int]:
    """Site widths for a model's own site list (2L+1 sequential, L+1 parallel)."""
    return site_dims(L, D, parallel=is_parallel(model_sites(model)), **kw)


def schedule_of(model) -> list[int]:
    """Every site its own width (the head's input full)."""
    return [40, 32, 48, 24, 56, 40, 64][-len(model_sites(model)):]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("orientation", ["pca", "random"])
def test_full_width_is_invariant(arch: str, tied: bool, orientation: str) -> None:
    """Fused + rotated, unsliced: the dense function to float64 rounding (HF's RMSNorm upcasts to float32)."""
    model = tiny_model(arch, dtype=torch.float64, tie_word_embeddings=tied)
    x = ids()
    res = slice_model(model, x, dims_of(model, dim=D), final_orientation=orientation, progress=False)
    assert rel(res.model(x).logits, model(x).logits) <= 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_tied_equals_untied_at_every_width(arch: str) -> None:
    model = tiny_model(arch, dtype=torch.float64, tie_word_embeddings=True)
    x = ids()
    for dims in (
        dims_of(model, dim=40),
        dims_of(model, dim=24, slice_head=True),
        schedule_of(model),
    ):
        tied = slice_model(model, x, dims, progress=False)
        untied = slice_model(model, x, dims, untie_head=True, progress=False)
        assert tied.model.config.tie_word_embeddings and not untied.model.config.tie_word_embeddings
        assert rel(tied.model(x).logits, untied.model(x).logits) <= 1e-6
        if dims[-1] == D:  # an untied full-width head costs a second vocab x D table
            tables = [param_breakdown(r.model)["embeddings_head"] for r in (tied, untied)]
            assert tables[0] < tables[1]


@pytest.mark.parametrize("arch", ARCHS)
def test_calibration_loss_matches_the_sliced_model(arch: str) -> None:
    """The loss the interleaved calibration tracks equals a fresh forward of the finished sliced model."""
    model = tiny_model(arch, dtype=torch.float64)
    x = ids()
    res = slice_model(model, x, dims_of(model, dim=32), batch_size=4, progress=False)
    logits = res.model(x).logits[:, :-1]
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()).item()
    assert res.cal_loss == pytest.approx(loss, rel=1e-7)  # eager softmax runs in float32


def test_slicing_changes_the_function_and_keeps_the_source() -> None:
    model = tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = ids()
    res = slice_model(model, x, site_dims(L, D, dim=16), progress=False)
    assert rel(res.model(x).logits, model(x).logits) > 1e-3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("arch", ["llama", "gpt2", "phi"])
@pytest.mark.parametrize("tied", [False, True])
def test_copy_free_slicing_equals_inplace_and_shares_nothing(arch: str, tied: bool) -> None:
    """Without `inplace` nothing is deep-copied (an alias copy is sliced): the result is the inplace one bit
    for bit, the source stays as it was and the sliced model shares no storage with it."""
    model = tiny_model(arch, dtype=torch.float64, tie_word_embeddings=tied)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, dims = ids(), dims_of(model, dim=40)
    res = slice_model(model, x, dims, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not storage_ptrs(res.model) & storage_ptrs(model)
    ref = slice_model(copy.deepcopy(model), x, dims, inplace=True, progress=False)
    a, b = res.model.state_dict(), ref.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert res.cal_loss == ref.cal_loss and all(torch.equal(p, q) for p, q in zip(res.bases, ref.bases))


@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_shapes_and_parameter_count(arch: str) -> None:
    model = tiny_model(arch, tie_word_embeddings=False)
    dims = [40, 32, 48, 24, 56, 40, 64]
    sliced = slice_model(model, ids(), dims, progress=False).model
    cfg = model.config
    layers = sliced.model.layers
    for i, layer in enumerate(layers):
        d_in, d_mid, d_out = dims[2 * i : 2 * i + 3]
        assert layer.attn_shortcut.weight.shape == (d_mid, d_in)
        assert layer.mlp_shortcut.weight.shape == (d_out, d_mid)
        assert layer.self_attn.o_proj.weight.shape[0] == d_mid
        assert layer.mlp.down_proj.weight.shape[0] == d_out
        readers = [
            m
            for n, m in layer.named_modules()
            if n.endswith(("q_proj", "qkv_proj", "gate_up_proj", "up_proj"))
        ]
        assert readers and all(m.in_features in (d_in, d_mid) for m in readers)
    assert sliced.model.embed_tokens.weight.shape == (cfg.vocab_size, dims[0])
    assert sliced.lm_head.weight.shape == (cfg.vocab_size, dims[-1])
    dense_block = sum(p.numel() for p in model.model.layers.parameters())
    sliced_block = param_breakdown(sliced)["blocks"]
    assert sliced_block < dense_block
    shortcuts = sum(dims[2 * i] * dims[2 * i + 1] + dims[2 * i + 1] * dims[2 * i + 2] for i in range(L))
    assert param_breakdown(sliced)["shortcuts"] == shortcuts
    assert param_breakdown(sliced)["total"] == count_params(sliced)


def test_post_norm_blocks_keep_their_width_and_map_into_the_site() -> None:
    """Gemma 3: each block's output norm becomes a weightless norm over the block's D-wide output and a new
    D x d_s map (the norm's scale and the site basis), counted as `post_norm_maps`; the writers keep D."""
    model = tiny_model("gemma3", tie_word_embeddings=False)
    dims = [40, 32, 48, 24, 56, 40, 64]
    sliced = slice_model(model, ids(), dims, progress=False).model
    for i, layer in enumerate(sliced.model.layers):
        d_mid, d_out = dims[2 * i + 1], dims[2 * i + 2]
        assert layer.self_attn.o_proj.weight.shape[0] == layer.mlp.down_proj.weight.shape[0] == D
        assert layer.post_attention_layernorm.output_map.weight.shape == (d_mid, D)
        assert layer.post_feedforward_layernorm.output_map.weight.shape == (d_out, D)
    breakdown = param_breakdown(sliced)
    assert breakdown["post_norm_maps"] == D * sum(dims[1:])
    assert breakdown["total"] == count_params(sliced)
    assert param_breakdown(model)["post_norm_maps"] == 0  # the dense model's post-norms are norms


def test_a_gemma3_cut_to_its_local_layers_slices() -> None:
    """`keep_first_layers` (the notebooks' MAX_LAYERS) can leave a Gemma 3 with sliding-window layers only:
    its sliced model then declares no global rotary buffer; slicing keeps the dense function at full width."""
    from slicedim_lab.load.models import keep_first_layers

    model = keep_first_layers(tiny_model("gemma3", dtype=torch.float64), 1)
    assert set(model.config.layer_types) == {"sliding_attention"}
    x = ids()
    res = slice_model(model, x, [D] * 3, progress=False)  # 2 sites per layer + the head's input
    assert rel(res.model(x).logits, model(x).logits) <= 1e-6
    assert slice_model(model, x, [D - 16] * 3, progress=False).model(x).logits.isfinite().all()


def test_widths_from_sparsity() -> None:
    assert dim_for_sparsity(0.25, 576) == 432
    assert dim_for_sparsity(0.1, 576) == 512  # int(518.4) = 518, rounded down to a multiple of 8
    assert dim_for_sparsity(0.0, 576) == 576
    assert site_dims(2, 576, sparsity=0.5) == [288, 288, 288, 288, 576]
    assert site_dims(2, 576, sparsity=0.5, slice_head=True) == [288] * 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sparsity=1.0), "sparsity must be in"),
        (dict(sparsity=-0.1), "sparsity must be in"),
        (dict(dim=0), "kept widths must be in"),
        (dict(dim=65), "kept widths must be in"),
        (dict(schedule=[8] * 6), "a schedule needs 7 widths"),
        (dict(dim=8, sparsity=0.1), "exactly one of"),
    ],
)
def test_bad_widths(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        site_dims(L, D, **kwargs)


@pytest.mark.parametrize("tied", [False, True])
def test_save_load_both_ways(tmp_path, tied: bool) -> None:
    model = tiny_model("phi3" if tied else "qwen2", tie_word_embeddings=tied)
    x = ids()
    sliced = slice_model(model, x, site_dims(L, D, dim=40), progress=False).model
    folder = save_sliced(sliced, tmp_path / "out")
    with pytest.raises(UsageError, match="exists"):
        save_sliced(sliced, folder)
    ours = load_sliced(folder)
    plain = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    ref = sliced(x).logits
    assert torch.equal(ours(x).logits, ref)
    assert torch.equal(plain(x).logits, ref)
    assert count_params(plain) == count_params(sliced)
    assert json.loads((folder / "slicing.json").read_text())["site_dims"] == [40] * 6 + [64]


def test_loading_wrong_shapes_is_a_clear_error(tmp_path) -> None:
    sliced = slice_model(tiny_model("llama"), ids(), site_dims(L, D, dim=40), progress=False).model
    folder = save_sliced(sliced, tmp_path / "out")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["slicing"]["site_dims"] = [48] * 6 + [64]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="has shape"):
        load_sliced(folder)


def test_generate_with_cache_matches_greedy_without_cache() -> None:
    model = tiny_model("llama", tie_word_embeddings=True)
    sliced = slice_model(model, ids(), site_dims(L, D, dim=40), progress=False).model
    prompt = ids(1, 5, seed=3)
    out = sliced.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
    seq = prompt
    for _ in range(6):
        seq = torch.cat([seq, sliced(seq, use_cache=False).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, seq)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_every_family_exports_and_generates(tmp_path, arch: str, tied: bool) -> None:
    """Float64, every architecture: the sliced model at d' < D saved and reloaded by `load_sliced` and by
    plain transformers gives identical logits, and greedy `generate()` with the KV cache equals a greedy loop
    without it."""
    model = tiny_model(arch, dtype=torch.float64, tie_word_embeddings=tied)
    x = ids()
    sliced = slice_model(model, x, dims_of(model, dim=40), progress=False).model
    folder = save_sliced(sliced, tmp_path / "out")
    ref = sliced(x).logits
    assert torch.equal(load_sliced(folder)(x).logits, ref)
    plain = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.float64)
    assert torch.equal(plain(x).logits, ref) and count_params(plain) == count_params(sliced)
    assert plain.config.tie_word_embeddings == tied
    if tied:
        assert plain.get_output_embeddings().weight is plain.get_input_embeddings().weight
    prompt = ids(2, 5, seed=3)
    out = plain.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
    seq = prompt
    for _ in range(6):
        with torch.no_grad():
            seq = torch.cat([seq, plain(seq, use_cache=False).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, seq)
