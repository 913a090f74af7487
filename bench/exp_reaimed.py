"""Linearised interleaved slicing with re-aimed bases (ours_lab.reaimed_jvp_losses) on the JVP windows.

.venv/bin/python bench/exp_reaimed.py CORPUS --dims 288 --windows 8
"""

import argparse
import json
import math
import time

import torch
from lab_common import folder, load, need
from ours_lab import reaimed_jvp_losses

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("--dims", default="288")
ap.add_argument("--windows", type=int, default=8)
ap.add_argument("--groups", type=int, default=2)
a = ap.parse_args()
out = folder(a.corpus)
inp, cfg = load(a.corpus, threads=1)
model = inp.model
H, C, _ = torch.load(out / "moments.pt")
del C
n_cal = inp.cal_ids.numel()
pick = need("spread")(inp.grad_ids.shape[0], a.windows)
ids = inp.grad_ids[pick]
f = out / "reaimed.json"
res = json.loads(f.read_text()) if f.exists() else {}
dense = json.loads((out / "dense_eval.json").read_text())
for d in [int(x) for x in a.dims.split(",")]:
    t0 = time.perf_counter()
    ce, kl = reaimed_jvp_losses(model, ids, H, n_cal, d, 60, groups=a.groups)
    r = {"ce": ce, "kl": kl, "seconds": time.perf_counter() - t0, "windows": pick, "groups": a.groups}
    res[f"{d}_w{a.windows}_g{a.groups}"] = r
    f.write_text(json.dumps(res, indent=1))
    pt = out / f"point_{d}.json"
    meas = math.log(json.loads(pt.read_text())["ppl"] / dense["ppl"]) if pt.exists() else float("nan")
    print(
        d,
        f"measured {meas:.3f} reaimed ce {sum(ce) / len(ce):.3f} kl {sum(kl) / len(kl):.3f}",
        [round(x, 3) for x in ce],
        f"[{r['seconds']:.0f}s]",
        flush=True,
    )
