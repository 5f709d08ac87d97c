"""Validation, gene selection and internal/external testing (paper 001, "Model
validation" and "Model selection for testing")."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from . import core
from .inputs import Dataset

log = logging.getLogger("emo")

VALIDATION_COLUMNS = ["gene", "n", "spearman_r", "spearman_p", "padj_bh", "r2_pred", "selected"]
TEST_COLUMNS = ["gene", "n", "spearman_r", "spearman_p", "padj_bonferroni", "r2_pred", "validated"]
EXTERNAL_COLUMNS = ["cohort", "gene", "n", "spearman_r", "spearman_p", "padj_bonferroni", "validated"]


# a prediction whose range over the patients is below this share of its magnitude is
# constant (float32 means of one repeated value differ in the last bits)
CONSTANT_PREDICTION_RTOL = 1e-6


def gene_statistics(measured: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """Per gene n, Spearman r and p, R²_pred (measured = y_true) over the given patients.

    A gene whose model predicts one value for every patient (a head that kept its
    untrained epoch predicts the training mean) orders no patient: r 0 and p 1, so it
    stays in the multiple-testing correction as a test without evidence instead of
    dropping out of it (which would make the correction laxer for the other genes)."""
    r, p, n = core.spearman(measured.to_numpy(), predicted.to_numpy())
    values = predicted.to_numpy(dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns; they have n < 3
        spread = np.nanmax(values, axis=0, initial=-np.inf) - np.nanmin(values, axis=0, initial=np.inf)
        scale = np.maximum(1.0, np.abs(np.nanmean(values, axis=0)))
    constant = (n >= 3) & (spread <= CONSTANT_PREDICTION_RTOL * scale)
    r, p = np.where(constant, 0.0, r), np.where(constant, 1.0, p)
    r2 = core.r2_score_columns(measured.to_numpy(), predicted.to_numpy())
    return pd.DataFrame({"gene": measured.columns, "n": n.astype(int), "spearman_r": r,
                         "spearman_p": p, "r2_pred": r2})


def validation_table(data: Dataset, min_r2: float, max_padj: float) -> pd.DataFrame:
    """All modelled genes on the validation split (all training cohorts pooled), BH over
    the genes with a p-value; ``selected`` = R²_pred > min_r2 and padj_bh < max_padj."""
    patients = data.splits.index[data.splits["split"] == "validation"]
    if len(patients) < 3:
        from ..errors import InputTableError
        raise InputTableError(f"the validation split has {len(patients)} patient(s) with predictions and "
                              "measured expression; at least 3 are needed (config key splits.proportions)")
    table = gene_statistics(data.measured.loc[patients], data.predicted.loc[patients])
    table["padj_bh"] = core.bh_adjust(table["spearman_p"].to_numpy())
    table["selected"] = (table["r2_pred"] > min_r2) & (table["padj_bh"] < max_padj)
    log.info("validation: %d patients, %d genes, %d selected (R2 > %g, padj < %g)", len(patients),
             len(table), int(table["selected"].sum()), min_r2, max_padj)
    return table[VALIDATION_COLUMNS]


def selected_genes(validation: pd.DataFrame) -> pd.DataFrame:
    return validation.loc[validation["selected"], ["gene", "n", "spearman_r", "padj_bh", "r2_pred"]] \
        .reset_index(drop=True)


def _tested(data: Dataset, patients: list[str], genes: list[str], alpha: float) -> pd.DataFrame:
    table = gene_statistics(data.measured.loc[patients, genes], data.predicted.loc[patients, genes])
    table["padj_bonferroni"] = core.bonferroni_adjust(table["spearman_p"].to_numpy())
    table["validated"] = table["padj_bonferroni"] < alpha
    return table


def testing_tables(data: Dataset, genes: list[str], alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Internal test (split ``test``) and external tests (split ``external``, per cohort)
    of the selected genes, Bonferroni over the genes tested in each set (genes not
    measured in a cohort are left out of that cohort's table and of its m). R² is not
    reported for external cohorts (different scale), as in the paper."""
    internal = pd.DataFrame(columns=TEST_COLUMNS)
    externals = []
    for split, cohort, patients in data.subsets():
        if split == "validation":
            continue
        if split == "test":
            internal = _tested(data, patients, genes, alpha)[TEST_COLUMNS]
            log.info("internal test: %d patients, %d/%d genes validated", len(patients),
                     int(internal["validated"].sum()), len(genes))
        else:
            measured_genes = [g for g in genes if data.measured.loc[patients, g].notna().sum() >= 3]
            if len(measured_genes) < len(genes):
                log.warning("external cohort %s: %d selected gene(s) not measured, left out",
                            cohort, len(genes) - len(measured_genes))
            table = _tested(data, patients, measured_genes, alpha)
            table.insert(0, "cohort", cohort)
            externals.append(table[EXTERNAL_COLUMNS])
            log.info("external cohort %s: %d patients, %d/%d genes validated", cohort, len(patients),
                     int(table["validated"].sum()), len(measured_genes))
    external = pd.concat(externals, ignore_index=True) if externals else pd.DataFrame(columns=EXTERNAL_COLUMNS)
    return internal.reset_index(drop=True), external


def run_validation(prepared, splits, predictions, out_validation, out_selected, cfg: dict, version: str) -> None:
    """Rule gene_statistics_validation."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .inputs import load_dataset

    data = load_dataset(prepared, splits, predictions)
    table = validation_table(data, cfg["selection"]["min_r2"], cfg["selection"]["max_padj"])
    params = {"selection": cfg["selection"]}
    write_tsv(table, out_validation)
    write_sidecar(out_validation, version, params, [prepared, splits, predictions])
    write_tsv(selected_genes(table), out_selected)
    write_sidecar(out_selected, version, params, [out_validation])


def run_testing(prepared, splits, predictions, selected, out_test, out_external, cfg: dict, version: str) -> None:
    """Rule gene_statistics_testing."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .inputs import load_dataset

    genes = list(pd.read_csv(selected, sep="\t", usecols=["gene"])["gene"].astype(str))
    if not genes:
        log.warning("no gene passed the selection on the validation set; test tables are empty "
                    "(config keys statistics.selection.min_r2 / max_padj)")
        internal, external = pd.DataFrame(columns=TEST_COLUMNS), pd.DataFrame(columns=EXTERNAL_COLUMNS)
    else:
        data = load_dataset(prepared, splits, predictions, genes=genes)
        internal, external = testing_tables(data, genes, cfg["test_alpha"])
    params = {"test_alpha": cfg["test_alpha"]}
    for table, path in ((internal, out_test), (external, out_external)):
        write_tsv(table, path)
        write_sidecar(path, version, params, [prepared, splits, predictions, selected])


COMPARISON_COLUMNS = ["model", "n_genes", "n_padj_below_0.05", "n_r2_above_min", "n_selected",
                      "median_spearman_r", "median_r2_pred"]


def model_comparison(tables: dict[str, pd.DataFrame], min_r2: float) -> pd.DataFrame:
    """One row per model's validation table (EMO gene models, the ridge baselines on encoder
    features and on colour/texture descriptors), in the order given,
    counted over the genes the models share."""
    shared = sorted(set.intersection(*(set(t["gene"]) for t in tables.values())))
    rows = []
    for model, table in tables.items():
        t = table.set_index("gene").loc[shared]
        rows.append({"model": model, "n_genes": len(shared),
                     "n_padj_below_0.05": int((t["padj_bh"] < 0.05).sum()),
                     "n_r2_above_min": int((t["r2_pred"] > min_r2).sum()),
                     "n_selected": int(t["selected"].astype(bool).sum()),
                     "median_spearman_r": float(t["spearman_r"].median()),
                     "median_r2_pred": float(t["r2_pred"].median())})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def run_model_comparison(validation_paths: dict[str, str], out_path, cfg: dict, version: str) -> None:
    """Rule gene_statistics_model_comparison."""
    from ..io import write_tsv
    from ..provenance import write_sidecar

    tables = {model: pd.read_csv(path, sep="\t") for model, path in validation_paths.items()}
    write_tsv(model_comparison(tables, cfg["selection"]["min_r2"]), out_path)
    write_sidecar(out_path, version, {"selection": cfg["selection"]}, list(validation_paths.values()))
