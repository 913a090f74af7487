"""The frozen `ours` anchor of one lab corpus computed with the package as it is now (central-difference
linearisation, ~3x cheaper than the frozen lab code's forward-mode AD; the same ΔL_J to 4 decimals on
python-docs), written where `bench/exp_ours.py` reads it, in its format.

    .venv/bin/python bench/exp_anchor_now.py CORPUS     # then: .venv/bin/python bench/exp_ours.py CORPUS
    .venv/bin/python bench/exp_anchor_now.py CORPUS --anchor-sparsity 0.3   # a diagnostic: the same
        first-order ΔL at another width (written to ours_anchor_s<s>.json, never read by a predictor)

Uses the working tree's slicedim_lab (not the lab's pinned snapshot) and the lab's settings and corpus file
(runs/lab/corpora/CORPUS.txt, built by bench/lab_common.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slicedim_lab.predict.fisher import dense_moments  # noqa: E402
from slicedim_lab.predict.ours import ours_tables  # noqa: E402
from slicedim_lab.sweep.config import SweepConfig  # noqa: E402
from slicedim_lab.sweep.inputs import load_inputs  # noqa: E402

LAB = ROOT / "runs" / "lab"
SETTINGS = dict(cal_samples=32, cal_seqlen=512, eval_seqlen=512, max_eval_windows=16, grad_windows=16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--anchor-sparsity", type=float, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    corpus = args.corpus if args.corpus == "python-docs" else str(LAB / "corpora" / f"{args.corpus}.txt")
    inp = load_inputs(SweepConfig(corpus=corpus, tasks=[], **SETTINGS), device="cpu")
    t0 = time.perf_counter()
    moments = dense_moments(inp.model, inp.cal_ids, 4, logits=False, progress=False)
    t_moments = time.perf_counter() - t0
    extra = {} if args.anchor_sparsity is None else {"anchor_sparsity": args.anchor_sparsity}
    t = ours_tables(inp.model, inp.eval_ids, moments, settings=extra, progress=False)
    settings = {**t.settings, "anchor_dim": t.anchor_dim, "interval_z": 1.6449}
    out = {"hidden": t.hidden, "window_dl": t.window_dl, "settings": settings,
           "timing": {"moments": t_moments, **t.timing}, "computed_by": "package (central difference)"}
    (LAB / args.corpus).mkdir(parents=True, exist_ok=True)
    name = "ours_anchor.json" if args.anchor_sparsity is None else f"ours_anchor_s{args.anchor_sparsity}.json"
    (LAB / args.corpus / name).write_text(json.dumps(out, indent=1))
    print(f"{args.corpus}: d'_J {t.anchor_dim} ΔL_J {t.dloss_anchor:.4f} timing {out['timing']}")


if __name__ == "__main__":
    main()
