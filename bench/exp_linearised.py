"""Increment-injected JVP vs the linearised sliced model (tangent cut at every site), exact CE at z+Δz.

.venv/bin/python bench/exp_linearised.py CORPUS --dims 288,512 --windows 2 [--kind semi|true]
"""

import argparse
import json
import time

import torch
from lab_common import folder, load, need
from ours_lab import jvp_logits, token_losses_at

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("--dims", default="288,512")
ap.add_argument("--windows", type=int, default=2)
ap.add_argument("--kind", default="semi")
ap.add_argument("--first", type=int, default=0)
a = ap.parse_args()
out = folder(a.corpus)
inp, cfg = load(a.corpus, threads=1)
model = inp.model
pick = need("spread")(inp.grad_ids.shape[0], 8)[a.first : a.first + a.windows]
ids_all = inp.grad_ids[pick]
f = out / "linearised.json"
res = json.loads(f.read_text()) if f.exists() else {}
for d in [int(x) for x in a.dims.split(",")]:
    b = torch.load(out / (f"bases_{d}.pt" if a.kind == "true" else f"{a.kind}_{d}.pt"))
    b = b[0] if isinstance(b, tuple) else b
    t0 = time.perf_counter()
    r = {"ce": [], "kl": [], "quad": [], "ce_half": []}
    for ids in torch.split(ids_all, 2):
        z, dz = jvp_logits(model, ids, b, 60, mode="linearised")
        o = token_losses_at(z, dz, ids, scales=(1.0, 0.5))
        for k in ("ce", "kl", "quad"):
            r[k] += o[1.0][k].double().mean(1).tolist()
        r["ce_half"] += o[0.5]["ce"].double().mean(1).tolist()
    r["seconds"] = time.perf_counter() - t0
    r["windows"] = pick
    res[f"{a.kind}_{d}_w{a.first}-{a.first + a.windows}"] = r
    f.write_text(json.dumps(res, indent=1))
    print(d, {k: (sum(v) / len(v) if isinstance(v, list) else v) for k, v in r.items()}, r["ce"], flush=True)
