"""Slide-level IHC Ki67 against the proliferation score (paper 001: "When comparing
slide-level IHC Ki67 score with P.Score (EMO), we observed a positive correlation
(Spearman r = 0.61)", Supplementary Fig. S6).

The Ki67 score is a clinical-table column (config ``statistics.ki67_column``, one value per
patient, % positive nuclei); the proliferation scores are those of rule
gene_statistics_proliferation (patient mean over the patient's slides, so a patient with
one slide gives the paper's slide-level value). Spearman of Ki67 vs the predicted P.Score,
and vs the measured (RNA-seq) P.Score as the reference, per evaluation set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import InputTableError
from . import core

KI67_COLUMNS = ["split", "cohort", "score", "n", "spearman_r", "spearman_p", "median_ki67"]
PAIR_COLUMNS = ["patient", "split", "cohort", "pam50", "ki67", "pscore_measured", "pscore_predicted"]


def ki67_values(clinical: pd.DataFrame, column: str, path) -> pd.Series:
    """Ki67 per patient as numbers (a trailing % allowed); other text is refused, named."""
    raw = clinical[column]
    text = raw.astype("string").str.strip().str.rstrip("%").replace("", pd.NA)
    values = pd.to_numeric(text, errors="coerce")
    bad = raw[values.isna() & text.notna()]
    if len(bad):
        shown = ", ".join(f"{p}: {v!r}" for p, v in list(bad.items())[:5])
        raise InputTableError(f"clinical table {path}: column {column!r} (config key 'statistics.ki67_column') "
                              f"holds non-numeric values ({shown}); give the Ki67 index as a number (% positive)")
    return values.astype(float)


def ki67_pairs(scores: pd.DataFrame, ki67: pd.Series) -> pd.DataFrame:
    pairs = scores.assign(ki67=scores["patient"].map(ki67))
    return pairs[PAIR_COLUMNS]


def ki67_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Spearman r (and p) of Ki67 vs the predicted and the measured P.Score per evaluation
    set: validation and test pooled (cohort ``all``), each external cohort on its own."""
    rows = []
    pairs = pairs.assign(subset=np.where(pairs["split"] == "external", pairs["cohort"], "all"))
    for (split, subset), part in pairs.groupby(["split", "subset"], sort=False):
        for score in ("predicted", "measured"):
            r, p, n = core.spearman(part["ki67"].to_numpy(float), part[f"pscore_{score}"].to_numpy(float))
            rows.append({"split": split, "cohort": subset, "score": score, "n": int(n[0]), "spearman_r": r[0],
                         "spearman_p": p[0], "median_ki67": part["ki67"].median()})
    return pd.DataFrame(rows, columns=KI67_COLUMNS)


def run_ki67(scores_path, clinical_path, column: str, out_table, out_pairs, out_figure, version: str,
             clinical_mapping: dict | None = None) -> pd.DataFrame:
    """Rule gene_statistics_ki67."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .inputs import load_clinical

    clinical = load_clinical(clinical_path, required=[column], mapping=clinical_mapping)
    ki67 = ki67_values(clinical, column, clinical_path)
    scores = pd.read_csv(scores_path, sep="\t", dtype={"patient": str})
    pairs = ki67_pairs(scores, ki67)
    if pairs["ki67"].notna().sum() < 3:
        raise InputTableError(f"clinical table {clinical_path}: column {column!r} has a Ki67 value for "
                              f"{int(pairs['ki67'].notna().sum())} patient(s) of the evaluation sets; at least 3 "
                              "are needed for a correlation")
    table = ki67_table(pairs)
    params = {"ki67_column": column}
    for frame, path in ((table, out_table), (pairs, out_pairs)):
        write_tsv(frame, path)
        write_sidecar(path, version, params, [scores_path, clinical_path])
    ki67_figure(pairs, table, out_figure)
    return table


def ki67_figure(pairs: pd.DataFrame, table: pd.DataFrame, path: str | Path) -> None:
    """IHC Ki67 against the predicted P.Score, one panel per evaluation set, PAM50-coloured."""
    from ..figures import STYLE, SUBTYPE_COLOURS, _save, plt

    pairs = pairs.assign(subset=np.where(pairs["split"] == "external", pairs["cohort"], "all"))
    groups = list(pairs.groupby(["split", "subset"], sort=False))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.2), squeeze=False)
        for ax, ((split, subset), part) in zip(axes[0], groups):
            colours = [SUBTYPE_COLOURS.get(str(s), "#555555") for s in part["pam50"]]
            ax.scatter(part["pscore_predicted"], part["ki67"], s=12, c=colours, edgecolors="none")
            row = table[(table["split"] == split) & (table["cohort"] == subset) & (table["score"] == "predicted")]
            r, p, n = row["spearman_r"].iloc[0], row["spearman_p"].iloc[0], row["n"].iloc[0]
            ax.set_title(f"{split}" + (f" ({subset})" if subset != "all" else "") +
                         f"\nSpearman r = {r:.2f}, p = {p:.2g}, n = {n}")
            ax.set_xlabel("predicted P.Score")
            ax.set_ylabel("IHC Ki67 (%)")
        handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=s) for s, c in SUBTYPE_COLOURS.items()]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        _save(fig, path)
