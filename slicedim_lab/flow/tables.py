"""The tidy tables of the activation flow: the column schema, the site columns of a row, the eigen-spectrum
table of a PCA and the per-layer roll-up of a flow table."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.pca import SitePCA
from ..core.sites import Site, site_at

COLUMNS = ["basis", "dim", "site", "hook", "layer", "kind", "map", "role", "metric", "value"]


def site_row(site: int | Site) -> dict:
    """The site columns of a table row (`core.sites.Site.row`; an int: the site of sequential layers)."""
    return site.row() if isinstance(site, Site) else site_at(site).row()


def retained_at(p: SitePCA | None, d: int) -> float:
    """Calibration energy kept by the top d eigenvectors (1 at full width, or when the site had no PCA)."""
    if p is None or d >= p.eigvals.shape[0]:
        return 1.0
    return float(p.retained_energy()[d - 1])


def spectrum_table(
    pcas: Sequence[SitePCA | None], basis: str = "dense", sites: Sequence[Site] | None = None
) -> pd.DataFrame:
    """Eigen-spectrum of every site's second moment: one row per site x eigenvalue index (1-based), with the
    eigenvalue, its share of the trace and the cumulative retained energy at that width."""
    rows = []
    for s, p in enumerate(pcas):
        if p is None:
            continue
        lam = p.eigvals.clamp_min(0).double()
        share = lam / lam.sum()
        cum = share.cumsum(0)
        base = {"basis": basis, **site_row(s if sites is None else sites[s])}
        rows += [{**base, "index": i + 1, "eigval": float(lam[i]), "share": float(share[i]),
                  "retained": float(cum[i])} for i in range(lam.shape[0])]
    return pd.DataFrame(rows)


def per_layer(table: pd.DataFrame) -> pd.DataFrame:
    """One row per layer (-1 = embeddings): the site metrics at the layer's output (its last site), the
    sites' summed attributions and the least-kept map (lowest act_kept) among the map rows of the layer's
    sites (rows keyed by their site's `layer` column, as every row of the table)."""
    t = table[table["map"] == ""]
    out_site = t.groupby("layer")["site"].max()
    at_out = t[t["site"].isin(out_site.values)].pivot_table(index="layer", columns="metric", values="value")
    attr = t[t["metric"].str.startswith("attr_")].pivot_table(index="layer", columns="metric", values="value",
                                                              aggfunc="sum")
    res = at_out.drop(columns=[c for c in at_out.columns if c.startswith("attr_")])
    if "retained_eval" in t["metric"].values:
        res["retained_eval_min"] = t[t["metric"] == "retained_eval"].groupby("layer")["value"].min()
    res = res.join(attr)
    maps = table[(table["map"] != "") & (table["metric"] == "act_kept")]
    if len(maps):
        worst = maps.loc[maps.groupby("layer")["value"].idxmin()].set_index("layer")
        res["worst_map"] = worst["map"]
        res["worst_map_act_kept"] = worst["value"]
    return res.reset_index()
