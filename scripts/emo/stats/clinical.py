"""Proliferation score and routine markers by clinical status (paper 001, Fig. 1E-L
and Fig. 5)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from . import core
from .inputs import Dataset

log = logging.getLogger("emo")

PAM50_ORDER = ("LumA", "LumB", "Her2", "Basal", "Normal")
GROUP_ORDER = ("negative", "positive", "low", "medium", "high")
PROLIFERATION_STATUS = "proliferation"   # marker status derived from the measured P.Score

SCORE_COLUMNS = ["patient", "split", "cohort", "pam50", "pscore_measured", "pscore_predicted"]
PROLIFERATION_COLUMNS = ["split", "cohort", "group", "n", "spearman_r", "spearman_p", "mean_measured",
                         "mean_predicted"]
SUMMARY_COLUMNS = ["gene", "status_column", "split", "cohort", "source", "group", "n", "mean", "median", "sd"]
TEST_COLUMNS = ["gene", "status_column", "split", "cohort", "source", "test", "n_groups", "n", "statistic", "p"]


def ordered_groups(labels) -> list[str]:
    labels = sorted(set(labels))
    known = [g for g in GROUP_ORDER + PAM50_ORDER if g in labels]
    return known + [g for g in labels if g not in known]


def _pam50(clinical: pd.DataFrame | None, patients) -> pd.Series:
    if clinical is None or "pam50" not in clinical.columns:
        return pd.Series(pd.NA, index=pd.Index(patients), dtype="string")
    return clinical["pam50"].reindex(patients).astype("string")


def proliferation_scores(data: Dataset, genes: list[str], clinical: pd.DataFrame | None) -> pd.DataFrame:
    """Per patient of the evaluation splits: mean of the proliferation genes, measured
    and predicted (the genes' log-scale values, unweighted, as in the paper)."""
    frames = []
    for split, cohort, patients in data.subsets():
        frames.append(pd.DataFrame({
            "patient": patients, "split": split,
            "cohort": data.splits.loc[patients, "cohort"].to_numpy(),
            "pam50": _pam50(clinical, patients).to_numpy(),
            "pscore_measured": data.measured.loc[patients, genes].mean(axis=1, skipna=True).to_numpy(),
            "pscore_predicted": data.predicted.loc[patients, genes].mean(axis=1, skipna=True).to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS] if frames else pd.DataFrame(columns=SCORE_COLUMNS)


def proliferation_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Spearman r of predicted vs measured P.Score per evaluation set, overall
    (group ``all``) and within each PAM50 subtype."""
    rows = []
    scores = scores.assign(subset=np.where(scores["split"] == "external", scores["cohort"], "all"))
    for (split, subset), part in scores.groupby(["split", "subset"], sort=False):
        groups = [("all", part)]
        for subtype in ordered_groups(part["pam50"].dropna()):
            groups.append((subtype, part[part["pam50"] == subtype]))
        for group, sub in groups:
            r, p, n = core.spearman(sub["pscore_measured"].to_numpy(), sub["pscore_predicted"].to_numpy())
            rows.append({"split": split, "cohort": subset, "group": group, "n": int(n[0]),
                         "spearman_r": r[0], "spearman_p": p[0],
                         "mean_measured": sub["pscore_measured"].mean(),
                         "mean_predicted": sub["pscore_predicted"].mean()})
    return pd.DataFrame(rows, columns=PROLIFERATION_COLUMNS)


def proliferation_genes_table(configured: list[str], used: list[str], validation: pd.DataFrame | None) -> pd.DataFrame:
    selected = set(validation.loc[validation["selected"], "gene"]) if validation is not None else set()
    return pd.DataFrame({"gene": configured, "modelled": [g in used for g in configured],
                         "selected": [g in selected for g in configured]})


def status_groups(status_column: str, patients: list[str], clinical: pd.DataFrame,
                  scores: pd.DataFrame | None) -> pd.Series:
    """Group label per patient (NaN when unknown). ``proliferation`` gives tertiles
    (low/medium/high) of the measured proliferation score within the patient set."""
    if status_column == PROLIFERATION_STATUS:
        s = scores.set_index("patient").loc[patients, "pscore_measured"]
        labels = pd.qcut(s.rank(method="first"), 3, labels=["low", "medium", "high"])
        return labels.astype("string")
    return clinical[status_column].reindex(patients).astype("string").replace("", pd.NA)


def marker_tables(data: Dataset, markers: dict[str, str], clinical: pd.DataFrame,
                  scores: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured and predicted marker expression by status group: summaries and a
    two-sided Mann-Whitney U test (2 groups) or Kruskal-Wallis test (> 2 groups)."""
    summaries, tests = [], []
    for gene, status_column in markers.items():
        if gene not in data.genes:
            continue
        for split, cohort, patients in data.subsets():
            groups = status_groups(status_column, patients, clinical, scores)
            for source, frame in (("measured", data.measured), ("predicted", data.predicted)):
                values = frame.loc[patients, gene]
                samples = []
                for group in ordered_groups(groups.dropna()):
                    v = values[(groups == group).fillna(False).to_numpy()].dropna().to_numpy()
                    samples.append(v)
                    summaries.append({"gene": gene, "status_column": status_column, "split": split,
                                      "cohort": cohort, "source": source, "group": group, "n": len(v),
                                      "mean": v.mean() if len(v) else np.nan,
                                      "median": np.median(v) if len(v) else np.nan,
                                      "sd": v.std(ddof=1) if len(v) > 1 else np.nan})
                samples = [v for v in samples if len(v)]
                test, statistic, p = "none", np.nan, np.nan
                if len(samples) == 2:
                    test = "mannwhitney"
                    res = stats.mannwhitneyu(samples[0], samples[1], alternative="two-sided")
                    statistic, p = res.statistic, res.pvalue
                elif len(samples) > 2:
                    test = "kruskal"
                    try:
                        res = stats.kruskal(*samples)
                        statistic, p = res.statistic, res.pvalue
                    except ValueError:  # all values identical
                        pass
                tests.append({"gene": gene, "status_column": status_column, "split": split, "cohort": cohort,
                              "source": source, "test": test, "n_groups": len(samples),
                              "n": int(sum(len(v) for v in samples)), "statistic": statistic, "p": p})
    return pd.DataFrame(summaries, columns=SUMMARY_COLUMNS), pd.DataFrame(tests, columns=TEST_COLUMNS)


def run_proliferation(prepared, splits, predictions, clinical_path, validation_path, out_scores, out_table,
                      out_genes, cfg: dict, version: str, clinical_mapping: dict | None = None) -> None:
    """Rule gene_statistics_proliferation (``clinical_mapping``: config key clinical_mapping)."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .inputs import check_genes, load_clinical, load_dataset

    configured = list(cfg["proliferation_genes"])
    data = load_dataset(prepared, splits, predictions, genes=configured)
    used = check_genes(configured, data.genes, "statistics.proliferation_genes")
    clinical = load_clinical(clinical_path, required=["pam50"], mapping=clinical_mapping)
    scores = proliferation_scores(data, used, clinical)
    table = proliferation_table(scores)
    validation = pd.read_csv(validation_path, sep="\t")
    genes_table = proliferation_genes_table(configured, used, validation)
    params = {"proliferation_genes": configured}
    inputs = [prepared, splits, predictions, clinical_path, validation_path]
    for frame, path in ((scores, out_scores), (table, out_table), (genes_table, out_genes)):
        write_tsv(frame, path)
        write_sidecar(path, version, params, inputs)


def run_markers(prepared, splits, predictions, clinical_path, scores_path, out_summary, out_tests,
                cfg: dict, version: str, clinical_mapping: dict | None = None) -> None:
    """Rule gene_statistics_markers (``clinical_mapping``: config key clinical_mapping)."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .inputs import check_genes, load_clinical, load_dataset

    markers = dict(cfg["markers"])
    required = sorted({c for c in markers.values() if c != PROLIFERATION_STATUS})
    clinical = load_clinical(clinical_path, required=required, mapping=clinical_mapping)
    data = load_dataset(prepared, splits, predictions, genes=list(markers))
    present = check_genes(list(markers), data.genes, "statistics.markers")
    scores = pd.read_csv(scores_path, sep="\t", dtype={"patient": str})
    summary, tests = marker_tables(data, {g: markers[g] for g in present}, clinical, scores)
    params = {"markers": markers}
    inputs = [prepared, splits, predictions, clinical_path, scores_path]
    for frame, path in ((summary, out_summary), (tests, out_tests)):
        write_tsv(frame, path)
        write_sidecar(path, version, params, inputs)
