"""The spectrum explorer: one site's eigen-spectrum with the cut at d', and the energy every site discards
(`viz.spectra` figures, redrawn on each move)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W

from ..core.pca import SitePCA
from ..core.sites import Site, site_at
from ..flow.tables import retained_at
from ..viz.spectra import discarded_figure, spectrum_figure
from .base import Explorer, counted, live, redraw, slider


def discarded(p: SitePCA, d: int) -> float:
    """Fraction of a site's calibration energy that its top-d directions leave out."""
    return max(0.0, 1.0 - retained_at(p, d))


def energy_shares(p: SitePCA) -> list[float]:
    """Each eigen-direction's share of the site's energy (negative eigenvalues count as 0)."""
    lam = p.eigvals.clamp_min(0)
    return (lam / lam.sum()).tolist()


def spectrum_explorer(
    pcas: Sequence[SitePCA | None], dims: Sequence[int] | None = None, dim: int | None = None, site: int = 1,
    title: str = "", sites: Sequence[Site] | None = None,
) -> Explorer:
    """Eigen-spectrum of one site (each direction's share of the energy, log scale, the cut at d' marked)
    and the fraction of energy every site discards.

    With `dims` (one width per site, e.g. a `SliceResult`'s) the widths are fixed and only the site moves;
    otherwise a d' slider sets one width for all sites (dense PCA bases: no recalibration per move).
    Sites whose PCA is None (a full-width last site in its original basis) are skipped. `sites`: the
    model's site list (`core.sites.model_sites`) for labels and hook names; default: sequential layers.
    """
    valid = [s for s, p in enumerate(pcas) if p is not None]
    D = pcas[valid[0]].eigvals.shape[0]
    site_s = slider(site if site in valid else valid[0], valid[0], valid[-1], "site")
    dim_s = slider(dim or D * 3 // 4, 1, D, "d'", step=8 if D >= 64 else 1)
    controls: dict[str, W.Widget] = {"site": site_s}
    if dims is None:
        controls["dim"] = dim_s
    sites = list(sites) if sites is not None else [site_at(s) for s in range(len(pcas))]
    labels = [sites[s].label for s in valid]
    shares = {s: energy_shares(pcas[s]) for s in valid}
    spec, energy = live(spectrum_figure([], 1)), live(discarded_figure([], []))
    status = W.HTML()
    ex = Explorer(box=W.VBox([*controls.values(), status, spec, energy]), controls=controls,
                  figures={"spectrum": spec, "energy": energy}, outputs={"status": status})

    def width(s: int) -> int:
        return int(dims[s]) if dims is not None else int(dim_s.value)

    def update(_: Any = None) -> None:
        s = site_s.value
        p = pcas[s]
        if p is None:
            status.value = f"<i>site {s} keeps its full width in its original basis: no PCA</i>"
            return
        d = width(s)
        ex.state.update(site=s, dim=d, discarded=discarded(p, d))
        hook = sites[s].hook
        status.value = (f"site {s} (<code>{hook}</code>): d' = {d} of {D} discards "
                        f"<b>{ex.state['discarded']:.3%}</b> of the energy")
        head = f"{title}eigen-spectrum of site {s} ({hook}), cut at d' = {d}"
        redraw(spec, spectrum_figure(shares[s], d, head))
        head = (f"{title}energy discarded per site at d' = {d}" if dims is None
                else f"{title}energy discarded per site at the sliced widths")
        lost = [discarded(pcas[v], width(v)) for v in valid]
        redraw(energy, discarded_figure(valid, lost, s, labels, head))

    cb = counted(ex, update)
    for c in controls.values():
        c.observe(cb, names="value")
    update()
    return ex
