"""What a sweep is: its settings (everything that changes a measured or predicted number) and its points."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..core.widths import dim_for_sparsity
from ..errors import UsageError
from ..eval.mcq import check_tasks
from ..schema import BASES

# what a sweep folder's numbers mean beyond its settings; 2: windows spread over each split (corpus.spread)
SWEEP_FORMAT = 2
# change predictions only, never a measured value (a statistic that reads one says so: `Statistic.depends_on`)
PREDICTION_SETTINGS = ("grad_windows", "grad_heldout", "anchor_dims")


@dataclass
class SweepConfig:
    """Everything that changes a measured or predicted number (the fingerprint is taken over all of it)."""

    model: str = "smollm2-135m-instruct"
    corpus: str = "python-docs"
    basis: str = "interleaved"
    cal_samples: int = 32
    cal_seqlen: int = 512
    eval_seqlen: int = 512
    max_eval_windows: int | None = None
    grad_windows: int | None = None  # default: as many as cal_samples
    grad_heldout: bool = True  # Fisher gradients on calibration windows the PCA did not see
    tasks: list[str] = field(default_factory=lambda: ["corpus-mc"])
    mc_items: int = 48
    mc_choices: int = 4
    mc_context: int = 32
    mc_cont: int = 16
    round_interval: int = 8
    slice_head: bool = False
    seed: int = 0
    dtype: str | None = None
    anchor_dims: list[int] = field(default_factory=list)  # widths measured to anchor `{ours}_anchored`

    def check(self) -> None:
        if self.basis not in BASES:
            raise UsageError(f"unknown basis {self.basis!r}; choose one of: {', '.join(BASES)}")
        for name in ("cal_samples", "cal_seqlen", "eval_seqlen", "mc_items", "mc_context", "mc_cont"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_eval_windows", "grad_windows"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1, got {v}")
        if self.cal_seqlen < 2 or self.eval_seqlen < 2:
            raise UsageError("sequence lengths must be at least 2")
        check_tasks(self.tasks)
        if any(d < 1 for d in self.anchor_dims):
            raise UsageError(f"anchor widths must be at least 1, got {self.anchor_dims}")

    def fingerprint(self) -> str:
        blob = json.dumps({**asdict(self), "format": SWEEP_FORMAT}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_points(hidden: int, sparsities: list[float] | None = None, dims: list[int] | None = None,
                 round_interval: int = 8) -> list[tuple[int, float]]:
    """(d', sparsity) pairs in the order given, duplicates (same d') dropped; sparsity = the requested s, or
    1 − d'/D for explicit widths."""
    if (sparsities is None) == (dims is None):
        raise UsageError("give exactly one of --sparsities or --dims")
    if sparsities is not None:
        pts = [(dim_for_sparsity(s, hidden, round_interval), float(s)) for s in sparsities]
    else:
        bad = [d for d in dims if not 1 <= d <= hidden]
        if bad:
            raise UsageError(f"--dims must be in [1, {hidden}], got {bad[0]}")
        pts = [(int(d), 1 - d / hidden) for d in dims]
    seen, out = set(), []
    for d, s in pts:
        if d not in seen:
            seen.add(d)
            out.append((d, s))
    return out
