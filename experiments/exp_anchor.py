"""The dense-only anchor of `ours` on one corpus (ΔL_J per eval window), computed with the package, written
where experiments/exp_table.py reads it.

    .venv/bin/python experiments/exp_anchor.py CORPUS [--threads 2]
    .venv/bin/python experiments/exp_anchor.py CORPUS --anchor-sparsity 0.3   # the same first-order ΔL at
        another width (runs/lab/CORPUS/ours_anchor_s<s>.json; a diagnostic quoted in ours_v2.md, never read
        by a predictor)

The linearisation is the package's (a central difference of the dense model: ΔL_J on python-docs 0.1920, as
the frozen definition's forward-mode JVP gave); the moments are summed over batches of `MOMENTS_BATCH`
windows, as for the recorded anchors.
"""

from __future__ import annotations

import argparse
import json
import time

from lab import folder, load

from slicedim_lab.predict.jvp import jvp_tables
from slicedim_lab.predict.moments import dense_moments

MOMENTS_BATCH = 4  # the recorded anchors' (a sweep's `ours` statistic uses predict.moments.BATCH_SIZE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--anchor-sparsity", type=float, default=None)
    args = ap.parse_args()
    inp = load(args.corpus, args.threads)
    t0 = time.perf_counter()
    moments = dense_moments(inp.model, inp.cal_ids, MOMENTS_BATCH, logits=False, progress=False)
    t_moments = time.perf_counter() - t0
    extra = {} if args.anchor_sparsity is None else {"anchor_sparsity": args.anchor_sparsity}
    t = jvp_tables(inp.model, inp.eval_ids, moments, settings=extra, progress=False)
    settings = {**t.settings, "anchor_dim": t.anchor_dim}
    out = {"hidden": t.hidden, "window_dl": t.window_dl, "settings": settings,
           "timing": {**t.timing, "moments": t_moments}, "computed_by": "package (central difference)"}
    name = "ours_anchor.json" if args.anchor_sparsity is None else f"ours_anchor_s{args.anchor_sparsity}.json"
    (folder(args.corpus) / name).write_text(json.dumps(out, indent=1))
    print(f"{args.corpus}: d'_J {t.anchor_dim} ΔL_J {t.dloss_anchor:.4f} timing {out['timing']}")


if __name__ == "__main__":
    main()
