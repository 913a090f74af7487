"""The `ours` lab: dense-only building blocks for predicting SliceGPT-sliced perplexity (issue 12).

Self-contained functions (inputs: a transformers model, calibration windows, gradient windows, dense
metrics), so that the chosen predictor can later move into slicedim_lab/predict/ as one registered predictor.
Nothing here runs a sliced or projected model on any text: every pass is the DENSE model, forward, backward
(reverse-mode gradients) or forward-mode (a JVP: the dense model's derivative applied to a tangent).

Pieces
- `dense_moments`: per-site uncentred second moments H_s and neighbour cross moments C_s = Σ x_sᵀx_{s−1}
  of the dense residual stream on the calibration windows (one dense forward).
- `semi_bases` (from the package): semi-interleaved bases at a width, from H and C only.
- `increment(s, x_s, x_{s−1}, B_s, B_{s−1})`: δ_s = −(I−P_s)(x_s − (I−P_{s−1})x_{s−1}), the perturbation
  site s newly adds (PAPER.md), for any bases.
- `jvp_logits`: ONE forward-mode pass of the dense model in which, at every site s, the increment δ_s of the
  dense residual is added to the TANGENT (the primal stays the dense model): returns the dense logits z and
  the linearised logit change Δz = Σ_s J_s δ_s (all positions, all paths through attention).
- `token_losses_at`: from (z, Δz) and the true next tokens, per token: the exact cross-entropy increase
  CE(z+Δz, y) − CE(z, y), the KL(softmax z || softmax(z+Δz)), and the Gauss-Newton quadratic ½ΔzᵀFΔz.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from einops import rearrange
from lab_common import need


def _parts(model):
    adapter = need("adapter_for")(model)
    get = model.get_submodule
    return adapter, get(adapter.layers), get(adapter.final_norm), get(adapter.lm_head)


@torch.no_grad()
def dense_moments(model, cal_ids, batch_size=4):
    """H_s = Σ x_sᵀx_s (float64) for every site and C_s = Σ x_sᵀx_{s−1} for s ≥ 1, on `cal_ids`."""
    run_sites = need("run_sites")
    H = C = None
    for ids in torch.split(cal_ids, batch_size):
        sites, _ = run_sites(model, ids, logits=False)
        flat = [rearrange(x.double(), "b p d -> (b p) d") for x in sites]
        h = [f.T @ f for f in flat]
        c = [flat[s].T @ flat[s - 1] for s in range(1, len(flat))]
        H = h if H is None else [a + b for a, b in zip(H, h)]
        C = c if C is None else [a + b for a, b in zip(C, c)]
        del sites, flat
    return H, C


def semi_bases(H, C, dim, charged):
    return need("semi_bases")(H, C, dim, charged)


def increment(x, x_prev, b, b_prev):
    """δ = −(I−P)(x − (I−P_prev) x_prev) with P = b bᵀ (x_prev None: site 0)."""
    u = x if x_prev is None else x - x_prev + (x_prev @ b_prev) @ b_prev.T
    return -(u - (u @ b) @ b.T)


def jvp_logits(model, ids, bases, charged=None, final_residual=False, mode="increment"):
    """Dense logits z and linearised logit change Δz with every charged site's increment injected into the
    tangent of ONE forward-mode pass of the dense model. `bases[s]`: D×d_s (float32) for charged sites."""
    adapter, layers, norm, head = _parts(model)
    layer0_inputs = need("layer0_inputs")
    # SDPA has no forward-mode derivative on CPU: eager attention for this pass (the causal mask is built
    # for eager by the model itself, so layer0_inputs must run with eager set too)
    old = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        return _jvp(model, ids, bases, charged, adapter, layers, norm, head, layer0_inputs, final_residual,
                    mode)
    finally:
        model.set_attn_implementation(old)


def _jvp(model, ids, bases, charged, adapter, layers, norm, head, layer0_inputs, final_residual=False,
         mode="increment"):
    """mode "increment": add δ_s (from dense x only) to the tangent, which is never projected;
    mode "linearised": the tangent itself is cut at every site, e_s = P_s t_s − (I−P_s)x_s — the first-order
    expansion of the sliced model around the dense trajectory (dense primal; only the tangent is
    projected)."""
    x0, kw = layer0_inputs(model, adapter, ids)
    charged = len(bases) if charged is None else charged
    dt = x0.dtype
    bs = [b.to(dt) for b in bases[:charged]]
    prev = {"x": None}

    def inject(x, s):
        p, t = fwAD.unpack_dual(x)
        if s >= charged:
            return x
        if mode == "linearised":
            u = p if t is None else p + t
            d = -(u - (u @ bs[s]) @ bs[s].T)
        else:
            d = increment(p, prev["x"], bs[s], bs[s - 1] if s else None)
        prev["x"] = p
        return fwAD.make_dual(p, d if t is None else t + d)

    with torch.no_grad(), fwAD.dual_level():
        x = inject(x0, 0)
        for i, layer in enumerate(layers):
            a = layer.get_submodule(adapter.attn)
            x = x + a(hidden_states=layer.get_submodule(adapter.attn_norm)(x), **kw)[0]
            x = inject(x, 2 * i + 1)
            x = x + layer.get_submodule(adapter.mlp)(layer.get_submodule(adapter.mlp_norm)(x))
            x = inject(x, 2 * i + 2)
        if final_residual:  # the last site's dense residual and its linearised change
            xl, el = fwAD.unpack_dual(x)
            return xl.clone(), el.clone()
        z, dz = fwAD.unpack_dual(head(norm(x)))
    return z, dz


def token_losses_at(z, dz, ids, scales=(1.0,)):
    """Per predicted token [b, p−1]: exact CE increase, KL(p_dense || p_new), GN quadratic ½ΔzᵀFΔz, each for
    Δz scaled by every factor in `scales` (dict scale -> dict of tensors)."""
    z = z[:, :-1].float()
    dz = dz[:, :-1].float()
    y = ids[:, 1:]
    lp = z.log_softmax(-1)
    p = lp.exp()
    ce0 = -lp.gather(-1, y[..., None])[..., 0]
    out = {}
    m1 = (p * dz).sum(-1)
    quad = 0.5 * ((p * dz.square()).sum(-1) - m1.square())
    for a in scales:
        lq = (z + a * dz).log_softmax(-1)
        ce = -lq.gather(-1, y[..., None])[..., 0]
        kl = (p * (lp - lq)).sum(-1)
        out[a] = {"ce": ce - ce0, "kl": kl, "quad": a * a * quad}
    return out


def fisher_pass(model, grad_ids, basis_sets, charged, seed=0, batch_size=2):
    """Sampled-label Fisher sums of the increments for every named basis set (dict name -> bases):
    returns name -> (incoherent Σ_s Σ_t (g·δ_s)², coherent Σ_t (Σ_s g·δ_s)², tokens)."""
    run_sites = need("run_sites")
    gen = torch.Generator().manual_seed(seed)
    res = {k: [0.0, 0.0] for k in basis_sets}
    tokens = 0
    for ids in torch.split(grad_ids, batch_size):
        sites, logits = run_sites(model, ids, keep_grad=True)
        lg = logits[:, :-1].float()
        with torch.no_grad():
            probs = rearrange(lg.softmax(-1), "b p v -> (b p) v").double()
            labels = torch.multinomial(probs, 1, generator=gen)[:, 0]
        F.cross_entropy(rearrange(lg, "b p v -> (b p) v"), labels, reduction="sum").backward()
        b, p = ids.shape
        xs = [rearrange(x.detach(), "b p d -> (b p) d") for x in sites]
        gs = [rearrange(x.grad, "b p d -> (b p) d") for x in sites[:charged]]
        del sites, logits, lg
        tokens += b * (p - 1)
        with torch.no_grad():
            for name, bases in basis_sets.items():
                q = []
                for s in range(charged):
                    d = increment(xs[s], xs[s - 1] if s else None, bases[s], bases[s - 1] if s else None)
                    q.append((gs[s] * d).sum(1).double())
                q = torch.stack(q)
                res[name][0] += q.square().sum().item()
                res[name][1] += q.sum(0).square().sum().item()
    return {k: (0.5 * v[0] / tokens, 0.5 * v[1] / tokens) for k, v in res.items()}


def reaimed_jvp_losses(model, ids, H, n_cal_tokens, dim, charged, groups=2, damp=0.01, head_chunk=2):
    """Linearised INTERLEAVED slicing, from the dense model only: one forward-mode pass over all `ids` at
    once; at every charged site s the tangent t (the linearised perturbation of the stream arriving there)
    is cut with a basis re-aimed like SliceGPT's interleaved calibration, to first order: the top-`dim`
    eigenvectors of  H_s / N_cal + (XᵀT + TᵀX + TᵀT) / N_jvp  (H_s the dense second moment on the PCA
    windows; X, T the dense residual and its tangent on the JVP windows), then e_s = P_s(x_s + t_s) − x_s,
    i.e. the new tangent is t − (I−P_s)(x + t). Cross-fitted: the windows are split into `groups`, and a
    group's bases use the tangent statistics of the OTHER groups (not its own, which would be in-sample).
    Returns per-window mean exact CE increase CE(z+Δz, y) − CE(z, y) with the true next tokens, and KL."""
    adapter, layers, norm, head = _parts(model)
    layer0_inputs = need("layer0_inputs")
    old = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        x0, kw = layer0_inputs(model, adapter, ids)
        B, P, D = x0.shape
        grp = torch.arange(B) % groups
        eye = torch.eye(D, dtype=torch.float64)

        def basis(m):
            m = m + damp * torch.diagonal(m).mean() * eye
            vals, vecs = torch.linalg.eigh(m)
            return vecs.flip(1)[:, :dim].float()

        def cut(x, s):
            p, t = fwAD.unpack_dual(x)
            if s >= charged:
                return x
            if t is None:
                b = basis(H[s] / n_cal_tokens)
                return fwAD.make_dual(p, -(p - (p @ b) @ b.T))
            xf = p.double()
            tf = t.double()
            stats = []
            for g in range(groups):
                X = rearrange(xf[grp == g], "b p d -> (b p) d")
                T = rearrange(tf[grp == g], "b p d -> (b p) d")
                c = X.T @ T
                stats.append((c + c.T + T.T @ T, X.shape[0]))
            new = torch.empty_like(t)
            for g in range(groups):
                num = sum(st for k, (st, _) in enumerate(stats) if k != g)
                den = sum(n for k, (_, n) in enumerate(stats) if k != g)
                b = basis(H[s] / n_cal_tokens + num / den)
                u = p[grp == g] + t[grp == g]
                new[grp == g] = t[grp == g] - (u - (u @ b) @ b.T)
            return fwAD.make_dual(p, new)

        with torch.no_grad(), fwAD.dual_level():
            x = cut(fwAD.make_dual(x0, torch.zeros_like(x0)), 0)
            for i, layer in enumerate(layers):
                a = layer.get_submodule(adapter.attn)
                x = x + a(hidden_states=layer.get_submodule(adapter.attn_norm)(x), **kw)[0]
                x = cut(x, 2 * i + 1)
                x = x + layer.get_submodule(adapter.mlp)(layer.get_submodule(adapter.mlp_norm)(x))
                x = cut(x, 2 * i + 2)
            ce, kl = [], []
            for j in range(0, B, head_chunk):
                z, dz = fwAD.unpack_dual(head(norm(x[j:j + head_chunk])))
                r = token_losses_at(z, dz, ids[j:j + head_chunk])[1.0]
                ce += r["ce"].double().mean(1).tolist()
                kl += r["kl"].double().mean(1).tolist()
                del z, dz
    finally:
        model.set_attn_implementation(old)
    return ce, kl
