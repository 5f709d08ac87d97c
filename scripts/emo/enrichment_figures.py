"""Figure of the pathway-enrichment stage: top gene sets by GSEA FDR (bar of -log10 FDR,
as the paper's Fig. 3) and the enrichment curves (running sums with the sets' hits) of
the best sets. Agg backend, fixed style, no PNG metadata (identical inputs, identical file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figures import STYLE, _save, plt

N_CURVES = 4


def enrichment_figure(gsea: pd.DataFrame, curves: pd.DataFrame, ranked: pd.Series, top_n: int, ranking: str,
                      path: str | Path) -> None:
    with plt.rc_context(STYLE):
        fig, (bars, lines) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.22 * min(top_n, max(len(gsea), 1)) + 1.2)))
        top = gsea.head(top_n).iloc[::-1]
        if len(top):
            fdr = np.maximum(top["fdr"].to_numpy(float), 1e-4)
            colours = np.where(top["significant"].to_numpy(bool), "#C44E52", "#8C8C8C")
            labels = [f"{g} ({s})" if gsea["source"].nunique() > 1 else g
                      for g, s in zip(top["gene_set"], top["source"])]
            bars.barh(np.arange(len(top)), -np.log10(fdr), color=colours)
            bars.set_yticks(np.arange(len(top)), labels)
            bars.axvline(-np.log10(0.05), color="black", lw=0.6, ls="--")
            bars.set_xlabel("-log10 GSEA FDR q (floor 1e-4); red: significant")
        else:
            bars.text(0.5, 0.5, "no gene set within the size limits", ha="center", va="center")
        bars.set_title(f"Top gene sets (genes ranked by {ranking})")
        n = len(ranked)
        for i, ((source, name), curve) in enumerate(curves.groupby(["source", "gene_set"], sort=False)):
            if i >= N_CURVES:
                break
            line, = lines.plot(curve["rank"], curve["running_es"], lw=1.0, label=name)
            hits = curve.loc[curve["hit"].astype(bool), "rank"].to_numpy()
            lines.vlines(hits, 0.01 + 0.04 * i, 0.04 + 0.04 * i, color=line.get_color(), lw=0.5,
                         transform=lines.get_xaxis_transform())   # a row of ticks per set, at the bottom
        lines.axhline(0, color="black", lw=0.5)
        lines.set_xlim(0, n + 1)
        lines.set_xlabel("gene rank (1 = best predicted); ticks: set members")
        lines.set_ylabel("running enrichment score")
        lines.set_title(f"Enrichment curves of the top {min(N_CURVES, curves['gene_set'].nunique())} sets")
        if len(curves):
            lines.legend(loc="upper right", frameon=False)
        fig.tight_layout()
        _save(fig, path)
