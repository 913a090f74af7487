"""The per-layer flow table as aligned text (what `slicedim flow` prints)."""

from __future__ import annotations

import math

import pandas as pd

LAYER_COLUMNS = [  # (per_layer column, header, format)
    ("d_site", "d", "{:.0f}"),
    ("retained_cal", "ret_cal", "{:.4f}"),
    ("retained_eval_min", "ret_eval", "{:.4f}"),
    ("rel_error", "rel_err", "{:.3f}"),
    ("cosine", "cos", "{:.3f}"),
    ("lens_kl", "lens_kl", "{:.3f}"),
    ("lens_dloss", "lens_dloss", "{:+.3f}"),
    ("attr_loss_integrated", "attr_loss", "{:+.4f}"),
    ("attr_loss_direct", "direct", "{:+.4f}"),
    ("worst_map", "least-kept map", "{}"),
    ("worst_map_act_kept", "kept", "{:.3f}"),
]


def format_layers(layers: pd.DataFrame) -> str:
    """The per-layer table as aligned text (layer -1 is printed as `embed`); absent metrics are skipped."""
    layers = layers.copy()
    if {"lens_loss_sliced", "lens_loss_dense"} <= set(layers.columns):
        layers["lens_dloss"] = layers["lens_loss_sliced"] - layers["lens_loss_dense"]
    cols = [c for c in LAYER_COLUMNS if c[0] in layers.columns]
    table = [["layer"] + [h for _, h, _ in cols]]
    for _, r in layers.iterrows():
        cells = ["embed" if r["layer"] == -1 else str(int(r["layer"]))]
        for c, _, f in cols:
            v = r[c]
            cells.append("" if (isinstance(v, float) and math.isnan(v)) else f.format(v))
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table)
