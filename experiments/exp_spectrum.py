"""Dense-only statistics of one lab corpus that might carry its growth exponent (issue 12, `ours` v2 lab).

The frozen `ours` uses one growth exponent β = 1.44 for every text; the measured exponents are 1.43–1.46 on
Python documentation and 1.64–1.84 on plain English. This script computes, with the DENSE model only
(nothing sliced or projected runs), the statistics a text-dependent exponent could come from, at the lab's
widths: the dense eval perplexity; the semi-interleaved Fisher sums (`fisher_semi`, `fisher_semi_cross`,
16 held-out gradient windows); the fraction of the stream's energy the semi-interleaved cuts discard; and
the log-log slope of each between d' = 512 and 288. Written to runs/lab/<corpus>/spectrum.json.

    .venv/bin/python experiments/exp_spectrum.py CORPUS [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from lab import DIMS, SETTINGS, folder, load

from slicedim_lab.eval.metrics import evaluate
from slicedim_lab.predict.fisher import fisher_tables
from slicedim_lab.predict.increments import semi_pcas
from slicedim_lab.predict.moments import dense_moments


def semi_energy(second: list[torch.Tensor], cross: list[torch.Tensor], dim: int, charged: int) -> dict:
    """Energy the semi-interleaved cuts at `dim` discard, as a fraction of the dense stream's energy:
    Σ_s tr((I−P̃_s) H_u,s) / Σ_s tr(H_s) over the charged sites (H_u,s the increment's second moment of
    `increments.semi_pcas`), and the same per site, averaged."""
    lost = [float(p.eigvals[dim:].sum()) for p in semi_pcas(second, cross, dim, charged)]
    total = [float(second[s].trace()) for s in range(charged)]
    return {"total": sum(lost) / sum(total), "site_mean": sum(x / t for x, t in zip(lost, total)) / charged}


def slope(values: dict[int, float], hidden: int, a: int = 512, b: int = 288) -> float:
    """d ln(value) / d ln(s) between widths a and b."""
    sa, sb = 1 - a / hidden, 1 - b / hidden
    return math.log(values[b] / values[a]) / math.log(sb / sa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    inp = load(args.corpus, args.threads)
    D = inp.model.config.hidden_size
    timing = {}
    t0 = time.perf_counter()
    dense = evaluate(inp.model, inp.eval_ids, batch_size=2, progress=False)
    timing["dense_eval"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dm = dense_moments(inp.model, inp.cal_ids, 2, progress=False)
    timing["moments"] = time.perf_counter() - t0
    charged = len(dm.second) - 1
    t0 = time.perf_counter()
    energy = {d: semi_energy(dm.second, dm.cross, d, charged) for d in DIMS}
    timing["energy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ft = fisher_tables(inp.model, inp.cal_ids, SETTINGS["grad_windows"], grad_ids=inp.grad_ids,
                       semi_dims=DIMS, moments=dm, progress=False)
    timing["fisher"] = time.perf_counter() - t0
    semi = {d: ft.delta_loss(d, "fisher_semi") for d in DIMS}
    semi_cross = {d: ft.delta_loss(d, "fisher_semi_cross") for d in DIMS}
    out = {
        "corpus": args.corpus, "hidden": D, "ppl0": dense.ppl, "dims": DIMS,
        "fisher_semi": semi, "fisher_semi_cross": semi_cross,
        "energy_total": {d: e["total"] for d, e in energy.items()},
        "energy_site_mean": {d: e["site_mean"] for d, e in energy.items()},
        "slopes": {
            "fisher_semi": slope(semi, D), "fisher_semi_cross": slope(semi_cross, D),
            "energy_total": slope({d: e["total"] for d, e in energy.items()}, D),
            "energy_site_mean": slope({d: e["site_mean"] for d, e in energy.items()}, D),
        },
        "timing": timing,
    }
    (folder(args.corpus) / "spectrum.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("corpus", "ppl0", "slopes", "timing")}))


if __name__ == "__main__":
    main()
