"""The setup the model notebooks share: load the model (optionally only its first layers) and pick its
windows as a sweep picks them (`sweep.inputs.load_inputs`), so the held-out gradient windows never overlap
the PCA's calibration windows."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..core.sites import model_sites
from ..core.size import count_params
from ..load.models import LoadedModel, keep_first_layers, load_model
from ..sweep.config import SweepConfig
from ..sweep.inputs import load_inputs


@dataclass
class NotebookSetup:
    """A loaded model and its token windows: `cal` (the PCA's calibration windows), `evw` (eval windows) and,
    when asked for, `grad` (calibration windows for Fisher gradients; disjoint from `cal` when
    `grad_heldout`, which is False only if the split has no window to spare)."""

    lm: LoadedModel
    corpus: str
    cal: Tensor
    evw: Tensor
    grad: Tensor | None = None
    grad_heldout: bool = False

    @property
    def n_layers(self) -> int:
        return int(self.lm.model.config.num_hidden_layers)

    @property
    def hidden(self) -> int:
        return int(self.lm.model.config.hidden_size)

    @property
    def n_sites(self) -> int:
        """Residual sites of the model, as its adapter lays them out (2L + 1 for sequential blocks)."""
        return len(model_sites(self.lm.model))

    def summary(self) -> str:
        """Two lines: the model (layers, width, sites, parameters) and the window shapes."""
        lm, L = self.lm, self.n_layers
        model = (f"{lm.name} on {lm.device}: {L} layers, width D = {self.hidden}, {self.n_sites} residual "
                 f"sites, {count_params(lm.model) / 1e6:.1f} M parameters")
        shapes = [f"calibration {tuple(self.cal.shape)}"]
        if self.grad is not None:
            kind = "held-out" if self.grad_heldout else "in-sample (no window to spare)"
            shapes.append(f"{kind} gradient {tuple(self.grad.shape)}")
        shapes.append(f"eval {tuple(self.evw.shape)}")
        return f"{model}\n{', '.join(shapes)} token windows of {self.corpus}"


def notebook_setup(
    model: str, device: str = "auto", corpus: str = "python-docs", *, cal_windows: int, cal_seqlen: int,
    eval_windows: int | None, eval_seqlen: int, grad_windows: int | None = None,
    max_layers: int | None = None, lm: LoadedModel | None = None,
) -> NotebookSetup:
    """Load `model` on `device` (or take `lm`), keep its first `max_layers` decoder layers (None: all), and
    pick `cal_windows` calibration windows, `eval_windows` eval windows and — with `grad_windows` — that many
    calibration windows besides the PCA's for Fisher gradients, each spread over its split."""
    lm = lm or load_model(model, device=device)
    keep_first_layers(lm.model, max_layers)
    cfg = SweepConfig(model=lm.name, corpus=corpus, cal_samples=cal_windows, cal_seqlen=cal_seqlen,
                      eval_seqlen=eval_seqlen, max_eval_windows=eval_windows, grad_windows=grad_windows,
                      tasks=[])
    cfg.check()
    inp = load_inputs(cfg, lm)
    if grad_windows is None:
        return NotebookSetup(lm, corpus, inp.cal_ids, inp.eval_ids)
    return NotebookSetup(lm, corpus, inp.cal_ids, inp.eval_ids, inp.grad_ids, inp.grad_heldout)
