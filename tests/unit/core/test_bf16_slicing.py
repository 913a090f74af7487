"""SliceGPT in bfloat16 (weights and activations) with float64 PCA and transforms, on every tiny family.

What bfloat16 can hold: 8 significant bits, a unit roundoff of u = 2^-8 (3.9e-3 relative). A tiny bf16
model's logits are already 1-2.5 u off the exact function of its own weights (the same weights in float64);
slicing adds one rounding of every folded weight and of the activations in the rotated basis. So the sliced
bf16 model must stay within 3x the dense bf16 model's own error and within 4 u = 2^-6 of the exact function
(measured: at most 2.1x and 2.8 u over these families) — or, where the dense bf16 model is itself further off
than 4 u (the tiny random Gemma 3, whose post-norms rescale every block output: 11 u), within 1.5x its error
(measured 1.23x). The float64 tests (test_slicing, test_emulate) hold the same invariants to 1e-6.
"""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors import safe_open

from slicedim_lab.core.export import load_sliced, save_sliced
from slicedim_lab.core.replay import ProjectedModel
from slicedim_lab.core.sites import is_parallel, model_sites
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import site_dims
from slicedim_lab.testing import TINY_ARCHS, tiny_model

U = 2.0**-8  # bfloat16's unit roundoff
L, D = 3, 64


def ids(n: int = 6, t: int = 16) -> torch.Tensor:
    return torch.randint(3, 256, (n, t), generator=torch.Generator().manual_seed(0))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def pair(arch: str, tied: bool = False) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A bf16 tiny model and the exact function of its weights (the same weights in float64)."""
    m = tiny_model(arch, dtype=torch.bfloat16, tie_word_embeddings=tied)
    return m, copy.deepcopy(m).double()


def dims_of(model, **kw) -> list[int]:
    return site_dims(L, D, parallel=is_parallel(model_sites(model)), **kw)


def within_bf16(err: float, dense_err: float) -> None:
    bound = max(4 * U, 1.5 * dense_err)
    assert err <= bound and err <= 3 * dense_err, f"error {err:.2e} (dense bf16 {dense_err:.2e}, u {U:.2e})"


@torch.no_grad()
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_full_width_is_invariant_in_bf16(arch: str) -> None:
    model, exact = pair(arch, tied=arch in ("llama", "gpt2"))
    x = ids()
    ref = exact(x).logits
    res = slice_model(model, x, dims_of(model, dim=D), progress=False)
    within_bf16(rel(res.model(x).logits, ref), rel(model(x).logits, ref))


@torch.no_grad()
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_sliced_bf16_is_the_projected_function(arch: str) -> None:
    """Emulation = slicing: the bf16 sliced model computes the exact weights' function with every site
    projected on the bases it used (float64 `ProjectedModel`)."""
    model, exact = pair(arch)
    x = ids()
    res = slice_model(model, x, dims_of(model, dim=40), progress=False)
    within_bf16(rel(res.model(x).logits, ProjectedModel(exact, res.bases)(x).logits),
                rel(model(x).logits, exact(x).logits))


def max_angle(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest principal angle (radians) between corresponding kept subspaces of two runs."""
    return max(float(torch.arccos(torch.linalg.svdvals(x.T @ y).clamp(max=1)).max()) for x, y in zip(a, b))


@torch.no_grad()
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tied_equals_untied_in_bf16(arch: str) -> None:
    """Tied and untied heads each compute the projected function of the bases their calibration found; where
    the two bf16 calibrations find the same subspaces, the two models agree to 4 u. (They need not: bf16
    activations move a subspace whose eigenvalues have no gap at d' — the tiny Gemma 3's post-norms flatten
    its spectrum, 4-13 % gaps at d' = 40, and its two runs' subspaces differ by up to 0.2 rad.)"""
    model, exact = pair(arch, tied=True)
    x = ids()
    dense_err = rel(model(x).logits, exact(x).logits)
    runs = [slice_model(model, x, dims_of(model, dim=40), untie_head=u, progress=False)
            for u in (False, True)]
    logits = [r.model(x).logits for r in runs]
    for r, out in zip(runs, logits):
        within_bf16(rel(out, ProjectedModel(exact, r.bases)(x).logits), dense_err)
    if max_angle(runs[0].bases, runs[1].bases) < 0.05:
        assert rel(*logits) <= 4 * U


@torch.no_grad()
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_calibration_loss_in_bf16(arch: str) -> None:
    """The tracked loss equals a fresh forward of the sliced model to a quarter of u (measured <= 8e-5)."""
    model, _ = pair(arch)
    x = ids()
    res = slice_model(model, x, dims_of(model, dim=32), batch_size=4, progress=False)
    logits = res.model(x).logits[:, :-1].float()
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()).item()
    assert res.cal_loss == pytest.approx(loss, rel=U / 4)


@torch.no_grad()
def test_every_stored_tensor_has_its_stated_dtype(tmp_path) -> None:
    """Weights (the model's, the export's) in bf16; bases, eigenvectors and eigenvalues in float64; the
    export loads back in bf16, the same tensors."""
    model, _ = pair("llama")
    x = ids()
    res = slice_model(model, x, dims_of(model, dim=40), progress=False)
    assert {t.dtype for t in res.model.state_dict().values()} == {torch.bfloat16}
    assert res.model.config.dtype == torch.bfloat16
    assert {b.dtype for b in res.bases} == {torch.float64}
    assert {t.dtype for p in res.pcas if p is not None for t in (p.vectors, p.eigvals)} == {torch.float64}
    folder = save_sliced(res.model, tmp_path / "bf16")
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    back = load_sliced(folder).state_dict()
    assert all(torch.equal(back[k], v) and back[k].dtype == torch.bfloat16
               for k, v in res.model.state_dict().items())
