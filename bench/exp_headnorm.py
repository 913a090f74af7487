"""Does the exact final norm + head at the linearised last residual x_L + e_L (instead of z + Δz) remove the
linearisation's overshoot at strong cuts? Dense-only (the primal is the dense model; e_L from the JVP).

    .venv/bin/python bench/exp_headnorm.py CORPUS --dims 288,512 --windows 2
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F
from lab_common import folder, load, need
from ours_lab import _parts, jvp_logits

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("--dims", default="288,512")
ap.add_argument("--windows", type=int, default=2)
ap.add_argument("--kind", default="semi")
a = ap.parse_args()
out = folder(a.corpus)
inp, cfg = load(a.corpus, threads=1)
model = inp.model
adapter, layers, norm, head = _parts(model)
pick = need("spread")(inp.grad_ids.shape[0], 8)[: a.windows]
ids = inp.grad_ids[pick]
res = {}
for d in [int(x) for x in a.dims.split(",")]:
    b = torch.load(out / f"{a.kind}_{d}.pt")
    b = b[0] if isinstance(b, tuple) else b
    t0 = time.perf_counter()
    xl, el = jvp_logits(model, ids, b, 60, final_residual=True)
    with torch.no_grad():
        y = ids[:, 1:]

        def ce(x, y=y):
            lg = head(norm(x))[:, :-1].float()
            return (
                F.cross_entropy(lg.flatten(0, 1), y.flatten(), reduction="none")
                .view(y.shape)
                .double()
                .mean(1)
            )

        base = ce(xl)
        r = {
            "norm_exact": (ce(xl + el) - base).tolist(),
            "norm_exact_half": (ce(xl + 0.5 * el) - base).tolist(),
            "rel_norm": (el.norm(dim=-1) / xl.norm(dim=-1)).mean().item(),
        }
    r["seconds"] = time.perf_counter() - t0
    res[f"{a.kind}_{d}"] = r
    print(d, r, flush=True)
(out / f"headnorm_{a.kind}.json").write_text(json.dumps(res, indent=1))
