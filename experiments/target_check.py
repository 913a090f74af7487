"""Issue 22 item 3, checked: `slicedim sweep --target` on a corpus and a model, then the width 16 narrower
than its answer measured as well.

    .venv/bin/python experiments/target_check.py [--model smollm2-135m-instruct] [--target "ppl<=1.5x"]
        CORPUS [CORPUS ...]

Decided before any run (committed with this script): the target `ppl<=1.5x` on every corpus and model; the
validation's settings (`lab.SETTINGS`, 32 corpus-mc items as `make demo`); a fresh folder per corpus under
runs/lab-target/<model>/<corpus>. The search passes when it measured at most 3 new widths, returned a width,
and the width answer − 16, measured afterwards in the same folder (same windows), misses the target. Every
run is appended to results/target_check.json, passes and failures alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from lab import LAB, RESULTS, SETTINGS

OUT = RESULTS / "target_check.json"


def slicedim(*argv: str) -> dict:
    """One `slicedim sweep` run (a fresh process, as a user runs it); its --json payload."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    cmd = [sys.executable, "-m", "slicedim_lab.cli", "sweep", *argv, *flags, "--mc-items", "32",
           "--device", "cpu", "--no-progress", "--no-report", "--json", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def check(model: str, corpus: str, target: str) -> dict:
    folder = LAB.parent / "lab-target" / model / corpus
    t0 = time.perf_counter()
    res = slicedim("--model", model, "--corpus", corpus, "--target", target, "--out", str(folder), "--fresh")
    rec = {"model": model, "corpus": corpus, "target": target, "threshold": res["threshold"],
           "answer": res["answer"], "exact": res["exact"], "new_widths": res["new"],
           "measured": res["measured"], "search_s": time.perf_counter() - t0}
    if res["answer"] is not None:
        narrower = res["answer"] - 16
        rows = slicedim("--model", model, "--corpus", corpus, "--dims", str(narrower), "--out", str(folder))
        row = next(r for r in rows["rows"] if r["dim"] == narrower)
        rec.update(narrower=narrower, narrower_ppl=row["ppl_measured"],
                   narrower_violates=row["ppl_measured"] > res["threshold"])
    rec["passes"] = (res["answer"] is not None and len(res["new"]) <= 3
                     and rec.get("narrower_violates", False))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="+")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--target", default="ppl<=1.5x")
    args = ap.parse_args()
    done = json.loads(OUT.read_text()) if OUT.exists() else []
    for c in args.corpora:
        rec = check(args.model, c, args.target)
        done.append(rec)
        OUT.write_text(json.dumps(done, indent=1) + "\n")
        print(json.dumps(rec))


if __name__ == "__main__":
    main()
