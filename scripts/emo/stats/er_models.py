"""ER+ vs ER- differential expression in measured and predicted expression (paper
001: per selected gene, expression ~ ER status + age + HER2 status + tumour size +
lymph-node status, fixed-effects linear model; genes with FDR-adjusted P < 0.05 are
counted, and genes significant in both with the same sign of the ER coefficient are
"concordant").

The OLS fit is vectorised over genes (one design matrix per evaluation set); it
equals statsmodels OLS gene by gene (tests/unit/test_statistics_tables.py).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from . import core
from .. import covariates as covariates_mod
from .inputs import Dataset

log = logging.getLogger("emo")

MODEL_COLUMNS = ["split", "cohort", "gene", "n", "beta_er_measured", "p_measured", "padj_measured",
                 "beta_er_predicted", "p_predicted", "padj_predicted", "significant_measured",
                 "significant_predicted", "concordant"]
SUMMARY_COLUMNS = ["split", "cohort", "n_patients", "n_er_positive", "n_er_negative", "n_genes", "covariates",
                   "dropped_covariates", "n_significant_measured", "n_significant_predicted", "n_concordant"]


def design(clinical: pd.DataFrame, patients: list[str], covariates: list[str],
           max_missing_fraction: float) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Design matrix (intercept, er, usable covariates) over complete cases, the
    covariates used and the dropped ones with the reason ('name: absent|missing|constant')."""
    er = covariates_mod.encode("er", clinical["er"].reindex(patients))
    frame = pd.DataFrame({"intercept": 1.0, "er": er}, index=pd.Index(patients, name="patient"))
    frame = frame[frame["er"].notna()]
    usable, dropped = covariates_mod.screen(clinical.reindex(frame.index), covariates, max_missing_fraction)
    for name, values in usable.items():
        frame[name] = values
    used = list(usable)
    frame = covariates_mod.drop_constant_after_filter(frame.dropna(), used, dropped)
    return frame, used, dropped


def ols_coefficient(X: np.ndarray, Y: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient ``column`` of OLS fits Y[:, g] ~ X and its two-sided t-test p-value,
    for all genes at once; genes with missing values are fitted on their own complete
    cases."""
    n_genes = Y.shape[1]
    beta = np.full(n_genes, np.nan)
    pval = np.full(n_genes, np.nan)
    complete = ~np.isnan(Y).any(axis=0)
    groups = [(np.ones(X.shape[0], bool), np.flatnonzero(complete))]
    groups += [(~np.isnan(Y[:, g]), np.array([g])) for g in np.flatnonzero(~complete)]
    for rows, genes in groups:
        if len(genes) == 0:
            continue
        x, y = X[rows], Y[np.ix_(rows, genes)]
        dof = x.shape[0] - np.linalg.matrix_rank(x)
        if dof < 1 or np.linalg.matrix_rank(x) < x.shape[1]:
            continue
        xtx_inv = np.linalg.inv(x.T @ x)
        coef = xtx_inv @ x.T @ y
        resid = y - x @ coef
        sigma2 = (resid ** 2).sum(axis=0) / dof
        se = np.sqrt(sigma2 * xtx_inv[column, column])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = coef[column] / se
        beta[genes] = coef[column]
        pval[genes] = 2.0 * stats.t.sf(np.abs(t), dof)
    return beta, pval


def er_models(data: Dataset, genes: list[str], clinical: pd.DataFrame, covariates: list[str], fdr: float,
              max_missing_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables, summaries = [], []
    for split, cohort, patients in data.subsets():
        X, used, dropped = design(clinical, patients, covariates, max_missing_fraction)
        n_pos = int((X["er"] == 1).sum())
        n_neg = int((X["er"] == 0).sum())
        summary = {"split": split, "cohort": cohort, "n_patients": len(X), "n_er_positive": n_pos,
                   "n_er_negative": n_neg, "n_genes": len(genes), "covariates": ",".join(used),
                   "dropped_covariates": ",".join(dropped), "n_significant_measured": 0,
                   "n_significant_predicted": 0, "n_concordant": 0}
        if dropped:
            log.warning("ER models %s/%s: covariates dropped: %s", split, cohort, ", ".join(dropped))
        if n_pos < 2 or n_neg < 2 or len(X) <= X.shape[1] or not genes:
            log.warning("ER models %s/%s: %d ER+ and %d ER- patients with complete covariates; skipped",
                        split, cohort, n_pos, n_neg)
            summaries.append(summary)
            continue
        x = X.to_numpy(dtype=float)
        column = list(X.columns).index("er")
        table = pd.DataFrame({"split": split, "cohort": cohort, "gene": genes})
        table["n"] = data.measured.loc[X.index, genes].notna().to_numpy().sum(axis=0)
        for source, frame in (("measured", data.measured), ("predicted", data.predicted)):
            beta, p = ols_coefficient(x, frame.loc[X.index, genes].to_numpy(dtype=float), column)
            table[f"beta_er_{source}"] = beta
            table[f"p_{source}"] = p
            table[f"padj_{source}"] = core.bh_adjust(p)
            table[f"significant_{source}"] = table[f"padj_{source}"] < fdr
        table["concordant"] = (table["significant_measured"] & table["significant_predicted"]
                               & (np.sign(table["beta_er_measured"]) == np.sign(table["beta_er_predicted"])))
        summary.update(n_significant_measured=int(table["significant_measured"].sum()),
                       n_significant_predicted=int(table["significant_predicted"].sum()),
                       n_concordant=int(table["concordant"].sum()))
        log.info("ER models %s/%s: %d patients, %d/%d/%d significant measured/predicted/concordant",
                 split, cohort, len(X), summary["n_significant_measured"], summary["n_significant_predicted"],
                 summary["n_concordant"])
        tables.append(table[MODEL_COLUMNS])
        summaries.append(summary)
    models = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=MODEL_COLUMNS)
    return models, pd.DataFrame(summaries, columns=SUMMARY_COLUMNS)


def run_er_models(prepared, splits, predictions, clinical_path, selected, out_models, out_summary,
                  cfg: dict, version: str, clinical_mapping: dict | None = None) -> None:
    """Rule gene_statistics_er_models (``clinical_mapping``: config key clinical_mapping)."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .inputs import load_clinical, load_dataset

    settings = cfg["er_models"]
    genes = list(pd.read_csv(selected, sep="\t", usecols=["gene"])["gene"].astype(str))
    clinical = load_clinical(clinical_path, required=["er"], mapping=clinical_mapping)
    if genes:
        data = load_dataset(prepared, splits, predictions, genes=genes)
        models, summary = er_models(data, genes, clinical, list(settings["covariates"]), float(settings["fdr"]),
                                    float(settings["max_missing_fraction"]))
    else:
        log.warning("no selected genes; ER model tables are empty")
        models, summary = pd.DataFrame(columns=MODEL_COLUMNS), pd.DataFrame(columns=SUMMARY_COLUMNS)
    inputs = [prepared, splits, predictions, clinical_path, selected]
    for frame, path in ((models, out_models), (summary, out_summary)):
        write_tsv(frame, path)
        write_sidecar(path, version, {"er_models": settings}, inputs)
