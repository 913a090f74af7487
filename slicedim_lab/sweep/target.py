"""The narrowest width for a target, in a few measurements: `slicedim sweep --target "ppl<=1.25x"`.

A target is METRIC OP VALUE: `ppl<=V` (perplexity at most V), `acc>=V` (next-token top-1 accuracy at least
V), `mc_acc>=V` (multiple-choice accuracy at least V); a trailing `x` makes V a multiple of the dense
model's own value (`ppl<=1.25x`: at most 25 % above the dense perplexity).

The search measures at most `max_new` (3) sliced widths, multiples of the sweep's rounding step:
1. the dense-only headline's curve (the prior) names the narrowest width predicted to meet the target;
   it is measured;
2. the headline corrected by every width measured so far (the anchored rule of `predict/anchor.py`, on the
   target metric's damage: ln(PPL/PPL₀), or ln(acc₀/acc)) names the next one; where that width is measured
   already, one step towards the crossing is taken instead, so the measured widths bracket the target;
3. it stops early once two neighbouring widths bracket it (the wider meets, the narrower misses).
The answer is the narrowest MEASURED width whose measured value meets the target (`exact` when its
narrower neighbour was measured and misses). Widths already measured in the sweep folder count from the
start, so an interrupted search resumes where it stopped. A target the dense model itself misses is one line
after the dense measurement; one that the widest sliced width misses is one line once that width is measured.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import schema
from ..errors import UsageError
from ..predict import anchoring, predict_point
from ..predict.anchor import Anchor, ratio_at
from ..predict.registry import DenseMetrics, headline

METRICS = {"ppl": "<=", "acc": ">=", "mc_acc": ">="}  # each metric's direction of "good enough"
_GRAMMAR = re.compile(r"^\s*(ppl|acc|mc_acc)\s*(<=|>=)\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(x?)\s*$")


@dataclass(frozen=True)
class Target:
    """`metric` `op` `value` (× the dense value when `relative`), as the user wrote it in `text`."""

    metric: str
    value: float
    relative: bool
    text: str

    def bound(self, dense_value: float) -> float:
        """The absolute threshold."""
        return self.value * dense_value if self.relative else self.value

    def meets(self, value: float, bound: float) -> bool:
        return value <= bound if self.metric == "ppl" else value >= bound

    def damage(self, value: float, dense_value: float) -> float:
        """How far `value` is from the dense one, ≥ 0 when worse: ln(PPL/PPL₀) or ln(acc₀/acc)."""
        if self.metric == "ppl":
            return math.log(value / dense_value)
        return math.log(dense_value / max(value, 1e-12))

    def undamage(self, damage: float, dense_value: float) -> float:
        """The metric value whose damage is `damage` (the inverse of `damage`)."""
        return dense_value * math.exp(damage) if self.metric == "ppl" else dense_value * math.exp(-damage)


def parse_target(text: str) -> Target:
    """A `Target` from its text; a malformed one is a one-line UsageError (before anything loads)."""
    m = _GRAMMAR.match(text or "")
    if m is None or METRICS[m.group(1)] != m.group(2) or float(m.group(3)) <= 0:
        raise UsageError(f"malformed target {text!r}: write ppl<=V, acc>=V or mc_acc>=V with V > 0, and a "
                         "trailing x for a multiple of the dense value (e.g. ppl<=1.25x, acc>=0.4)")
    return Target(m.group(1), float(m.group(3)), m.group(4) == "x", text.strip())


def dense_value(dense: DenseMetrics, metric: str) -> float:
    """The dense model's measured value of `metric` (a one-line error when it was not measured)."""
    value = {"ppl": dense.ppl, "acc": dense.acc, "mc_acc": dense.mc_acc}[metric]
    if value is None:
        raise UsageError(f"target on {metric} needs it measured: add corpus-mc to --tasks")
    return value


@dataclass
class TargetResult:
    """What a search found: the `answer` width (None: no measured width meets the target), whether it is
    `exact` (its narrower neighbour measured and missing), the widths it measured (`new`, in order), their
    wall time, every measured width's value of the target metric, and the printed curve's rows."""

    target: Target
    bound: float
    answer: int | None
    exact: bool
    new: list[int]
    seconds: float
    measured: dict[int, float]
    curve: list[dict] = field(default_factory=list)
    step: int = 8
    hidden: int = 0

    def full_sweep_widths(self) -> int:
        """How many widths a sweep over every multiple of the step below D would measure."""
        return len(range(self.step, self.hidden, self.step))


class _Search:
    """The state of one search: the runner, the target and its threshold, the candidate widths."""

    def __init__(self, runner, target: Target, prior: Callable[[int], float | None] | None = None):
        self.runner, self.target, self._prior = runner, target, prior
        self.dense: DenseMetrics = runner.dense
        self.v0 = dense_value(self.dense, target.metric)
        self.bound = target.bound(self.v0)
        self.step, self.D = runner.cfg.round_interval, runner.hidden
        self.widths = list(range(self.step, self.D, self.step))
        self.head = headline(runner.cfg.basis)
        runner.cover(self.widths)  # the headline answers at every candidate width (dense-only work)

    def measured(self) -> dict[int, float]:
        """The target metric at every sliced width measured in the folder."""
        col = schema.measured(self.target.metric)
        return {d: r[col] for d, r in self.runner.measured().items() if d < self.D and r.get(col) is not None}

    def prior(self, d: int) -> float | None:
        """The dense-only headline's value of the target metric at `d` (or the given prior's)."""
        if self._prior is not None:
            return self._prior(d)
        row = predict_point(self.dense, d, self.runner.stats)
        return row.get(schema.pred(self.target.metric, self.head))

    def predicted(self, d: int, anchors: list[Anchor]) -> float | None:
        """The headline corrected by `anchors` (the anchored rule on the target metric's damage)."""
        p = self.prior(d)
        if p is None or not anchors:
            return p
        return self.target.undamage(ratio_at(d, anchors, self.D) * self.target.damage(p, self.v0), self.v0)

    def anchors(self, measured: dict[int, float]) -> list[Anchor]:
        out = []
        for d, v in sorted(measured.items()):
            p = self.prior(d)
            if p is not None and self.target.damage(p, self.v0) > 0:
                out.append(Anchor(d, self.target.damage(v, self.v0), self.target.damage(p, self.v0)))
        return out

    def crossing(self, measured: dict[int, float]) -> int:
        """The narrowest width predicted to meet the target at it and at every wider width (D: none)."""
        anchors = self.anchors(measured)
        best = self.D
        for d in reversed(self.widths):
            v = measured.get(d, self.predicted(d, anchors))
            if v is None or not self.target.meets(v, self.bound):
                break
            best = d
        return best

    def bracketed(self, measured: dict[int, float]) -> bool:
        meeting = [d for d, v in measured.items() if self.target.meets(v, self.bound)]
        if not meeting:
            return False
        d = min(meeting)
        return d - self.step in measured or d == self.step

    def next_width(self, measured: dict[int, float]) -> int | None:
        """The width to measure next, None when nothing new would be learnt."""
        d = self.crossing(measured)
        if d >= self.D:  # nothing sliced is predicted to meet it: look at the widest sliced width
            d = self.widths[-1]
        if d in measured:
            d = d - self.step if self.target.meets(measured[d], self.bound) else d + self.step
            if d in measured or not self.step <= d < self.D:
                return None
        return d


def search_width(runner, target: Target, *, max_new: int = 3, log: Callable[[str], None] = print,
                 prior: Callable[[int], float | None] | None = None) -> TargetResult:
    """The narrowest width meeting `target`, measuring at most `max_new` sliced widths with `runner` (a
    `SweepRunner`: its executor measures, its folder keeps every row). `prior(d)`: the target metric's
    dense-only prediction (default: the sweep's headline predictor)."""
    s = _Search(runner, target, prior)
    if not target.meets(s.v0, s.bound):
        raise UsageError(f"no width can meet {target.text}: the dense model's own {target.metric} is "
                         f"{s.v0:.4g} (threshold {s.bound:.4g})")
    t0, new = time.perf_counter(), []
    while len(new) < max_new and not s.bracketed(s.measured()):
        d = s.next_width(s.measured())
        if d is None:
            break
        log(f"target {target.text}: measuring d'={d}")
        runner.measure(d)
        new.append(d)
    measured = s.measured()
    meeting = sorted(d for d, v in measured.items() if target.meets(v, s.bound))
    widest = s.widths[-1]
    if not meeting and widest in measured:
        raise UsageError(f"the widest sliced width d'={widest} already misses {target.text}: measured "
                         f"{target.metric} {measured[widest]:.4g} (threshold {s.bound:.4g})")
    answer = meeting[0] if meeting else None
    exact = answer is not None and (answer - s.step in measured or answer == s.step)
    res = TargetResult(target, s.bound, answer, exact, new, time.perf_counter() - t0, measured,
                       step=s.step, hidden=s.D)
    res.curve = _curve(s, measured, answer)
    return res


def _curve(s: _Search, measured: dict[int, float], answer: int | None) -> list[dict]:
    """Rows to print: the measured widths and two steps around the answer, with the headline's anchored
    prediction (and its 90 % interval, for perplexity)."""
    around = [] if answer is None else [answer + k * s.step for k in (-2, -1, 1, 2)]
    dims = sorted({d for d in [*measured, *around] if s.step <= d < s.D}, reverse=True)
    anchors = s.anchors(measured)
    ppl_anchoring = None
    if s.target.metric == "ppl" and anchors and s._prior is None:  # the headline states its interval
        ppl_anchoring = anchoring(s.dense, s.runner.stats, s.head, sorted(measured), s.runner.measured_ppl())
    rows = []
    for d in dims:
        row = {"dim": d, "measured": measured.get(d), "predicted": s.predicted(d, anchors)}
        if ppl_anchoring is not None:
            p = predict_point(s.dense, d, s.runner.stats, anchoring=ppl_anchoring)
            name = schema.anchored(s.head)
            row["lo"], row["hi"] = p.get(schema.lo("ppl", name)), p.get(schema.hi("ppl", name))
        v = row["measured"] if row["measured"] is not None else row["predicted"]
        row["meets"] = None if v is None else s.target.meets(v, s.bound)
        rows.append(row)
    return rows


def target_lines(res: TargetResult, seconds_per_point: float | None = None) -> list[str]:
    """The printed answer: the curve around it, the answer, and the cost against a full sweep."""
    t = res.target
    lines = [f"target {t.text}: {t.metric} {METRICS[t.metric]} {res.bound:.4g}",
             f"{'d_prime':>7}  {'measured':>9}  {'predicted':>9}  {'90% interval':>17}  meets"]
    for r in res.curve:
        meas = "" if r["measured"] is None else f"{r['measured']:.4g}"
        pred = "" if r["predicted"] is None else f"{r['predicted']:.4g}"
        band = "" if r.get("lo") is None else f"[{r['lo']:.4g}, {r['hi']:.4g}]"
        meets = "" if r["meets"] is None else ("yes" if r["meets"] else "no")
        lines.append(f"{r['dim']:>7}  {meas:>9}  {pred:>9}  {band:>17}  {meets}")
    if res.answer is None:
        lines.append(f"no measured width meets {t.text} after {len(res.new)} measurement(s); widths "
                     f"measured: {sorted(res.measured)}")
    else:
        how = ("exact: the next narrower width was measured and misses" if res.exact else
               "the next narrower width was not measured (the curve predicts it misses)")
        lines.append(f"answer: d'={res.answer} ({t.metric} {res.measured[res.answer]:.4g}); {how}")
    full = res.full_sweep_widths()
    cost = f"{len(res.new)} width(s) measured in {res.seconds:.0f} s"
    if seconds_per_point:
        cost += (f"; a full sweep of every multiple of {res.step} ({full} widths) ≈ "
                 f"{full * seconds_per_point:.0f} s")
    lines.append(cost)
    return lines


def run_target(cfg, out, target: Target, *, fresh: bool = False, batch_size: int = 4, device: str = "auto",
               lm=None, progress: bool = True, report: bool = True, log: Callable[[str], None] = print,
               executor=None, predictors: list[str] | None = None) -> TargetResult:
    """`slicedim sweep --target`: open (or resume) the sweep folder `out`, search, refresh every row's
    predictions (with the measured widths as anchors of the headline) and render the report. Only the
    statistics the headline and `predictors` read are built: the search reads the headline alone, and the
    semi-interleaved Fisher tables at every candidate width would cost more than the measurements."""
    from .runner import SweepRunner, open_sweep

    head = headline(cfg.basis)
    wanted = [head, *(p for p in predictors or [] if p != head)]
    sweep = open_sweep(cfg, out, lm=lm, device=device, batch_size=batch_size, fresh=fresh, progress=progress,
                       log=log, executor=executor)
    try:
        runner = SweepRunner(sweep, predictors=wanted)
        if sweep.hidden not in runner.measured():
            runner.measure(sweep.hidden)  # the dense row: every table starts with it
        res = search_width(runner, target, log=log)
        runner.finish(report=report, anchor_widths=sorted(res.measured))
        return res
    finally:
        sweep.executor.close()
