"""Per-gene Pearson correlation with Holm-Šidák and Benjamini-Hochberg adjustment, as
paper 003 reports (its p-values come from an untrained network's null distribution;
ours from the t distribution of Pearson's r under independence, docs/models.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..stats.core import bh_adjust, holm_sidak_adjust

PEARSON_COLUMNS = ["set", "gene", "n", "pearson_r", "pearson_p", "padj_holm_sidak", "padj_bh"]


def pearson_columns(measured: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r, two-sided p, n) per column over the rows where both are finite; NaN where
    n < 3 or a column is constant."""
    g = measured.shape[1]
    r, p, n = np.full(g, np.nan), np.full(g, np.nan), np.zeros(g, dtype=int)
    for j in range(g):
        ok = np.isfinite(measured[:, j]) & np.isfinite(predicted[:, j])
        n[j] = int(ok.sum())
        if n[j] < 3 or np.ptp(measured[ok, j]) == 0 or np.ptp(predicted[ok, j]) == 0:
            continue
        res = stats.pearsonr(measured[ok, j], predicted[ok, j])
        r[j], p[j] = float(res.statistic), float(res.pvalue)
    return r, p, n


def pearson_table(set_name: str, genes: list[str], measured: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    r, p, n = pearson_columns(measured, predicted)
    return pd.DataFrame({"set": set_name, "gene": genes, "n": n, "pearson_r": r, "pearson_p": p,
                         "padj_holm_sidak": holm_sidak_adjust(p), "padj_bh": bh_adjust(p)})[PEARSON_COLUMNS]
