"""RNA-seq preparation as in EMO (Wang et al. 2021, "RNA-seq data preparation").

1. Read each cohort's genes x patients matrix (TSV/CSV/Parquet, first column
   ``gene``); ``input: log`` keeps values, ``input: counts`` gives log2(CPM + 1).
2. Cross-cohort median normalisation: for every gene, the offset of a training
   cohort is ``median(reference cohort) - median(cohort)`` with both medians taken
   over train + validation patients only (the reference's offset is 0); the offset
   is added to every patient of the cohort (train, tune, validation and test alike).
   An external cohort is normalised to the same reference medians (reference
   train + validation) with its own median taken over all of its patients, as EMO
   did for ABiM.
3. Variance filter: per-gene sample variance (ddof = 1) over the TRAINING patients
   after normalisation; genes with variance > ``min_variance`` are modelled.

Two stores are written (layout and I/O: :mod:`emo.stores.expression`): ``training.h5``
(train/tune/validation patients of training cohorts; everything training needs, so
adding test or external patients never changes it) and ``prepared.h5`` (every patient
of the sample sheet).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, InputTableError
from .io import read_table

FIT_SPLITS = ("train", "validation")  # median normalisation is fitted on these
TRAINING_STORE_SPLITS = ("train", "tune", "validation")


# --------------------------------------------------------------------------- reading
def read_expression(path: str | Path, cohort: str = "") -> pd.DataFrame:
    """Genes x patients matrix as float64, indexed by gene (input order kept)."""
    path = Path(path)
    where = f"expression matrix {path}" + (f" (cohort {cohort!r})" if cohort else "")
    if not path.is_file():
        raise InputTableError(f"{where} does not exist; set config key 'cohorts.{cohort}.expression' to a genes x "
                              "patients table whose first column is 'gene'")
    try:
        if str(path).lower().endswith((".parquet", ".pq")):
            table = read_table(path)
        else:
            table = read_table(path, dtype=str)
    except Exception as error:  # noqa: BLE001 - report the file
        raise InputTableError(f"{where} cannot be read: {error}") from error
    if table.shape[1] < 2 or str(table.columns[0]).strip().lower() != "gene":
        raise InputTableError(f"{where}: the first column must be 'gene' followed by one column per patient; "
                              f"found columns {list(map(str, table.columns[:5]))}")
    genes = table.iloc[:, 0].astype(str).str.strip()
    duplicated = genes[genes.duplicated()]
    if not duplicated.empty:
        raise InputTableError(f"{where}: gene {duplicated.iloc[0]!r} appears more than once "
                              f"({int(duplicated.size)} duplicated row(s)); genes must be unique (sum or drop duplicates)")
    values = table.iloc[:, 1:]
    values.columns = [str(c).strip() for c in values.columns]
    dup_patients = pd.Index(values.columns)[pd.Index(values.columns).duplicated()]
    if len(dup_patients):
        raise InputTableError(f"{where}: patient column {dup_patients[0]!r} appears more than once")
    numeric = values.apply(pd.to_numeric, errors="coerce") if (values.dtypes == object).any() else values
    bad = numeric.isna() & values.notna()
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise InputTableError(f"{where}: gene {genes.iloc[row]!r}, patient {values.columns[col]!r}: value "
                              f"{values.iat[row, col]!r} is not a number")
    numeric.index = pd.Index(genes, name="gene")
    return numeric.astype(np.float64)


def check_finite(matrix: pd.DataFrame, where: str) -> None:
    arr = matrix.to_numpy()
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputTableError(f"{where}: gene {matrix.index[row]!r}, patient {matrix.columns[col]!r} is "
                              f"{arr[row, col]} ({int(bad.sum())} missing/non-finite value(s)); impute or drop "
                              "the gene/patient before running emo")


def to_log_scale(matrix: pd.DataFrame, kind: str, where: str) -> pd.DataFrame:
    """``log``: unchanged; ``counts``: log2(counts per million + 1)."""
    if kind == "log":
        return matrix
    if kind != "counts":
        raise ConfigError(f"config key 'expression.input': {kind!r} is not 'log' or 'counts'")
    arr = matrix.to_numpy()
    if (arr < 0).any():
        row, col = np.argwhere(arr < 0)[0]
        raise InputTableError(f"{where}: gene {matrix.index[row]!r}, patient {matrix.columns[col]!r} has negative "
                              f"count {arr[row, col]}; with expression.input: counts values must be raw counts "
                              "(set expression.input: log for already log-scale values)")
    library = arr.sum(axis=0)
    if (library <= 0).any():
        col = int(np.argmax(library <= 0))
        raise InputTableError(f"{where}: patient {matrix.columns[col]!r} has a library size of 0")
    cpm = arr / library * 1e6
    return pd.DataFrame(np.log2(cpm + 1.0), index=matrix.index, columns=matrix.columns)


def load_cohort(path: str | Path, cohort: str, patients: Sequence[str], kind: str) -> pd.DataFrame:
    """Read, validate, log-transform and restrict a cohort matrix to ``patients``
    (in that order). Counts are library-normalised over all patients' full columns."""
    where = f"expression matrix {path} (cohort {cohort!r})"
    matrix = read_expression(path, cohort)
    missing = [p for p in patients if p not in matrix.columns]
    if missing:
        raise InputTableError(f"{where}: patient(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} of the "
                              f"sample sheet ({len(missing)} in all) have no column; add their expression or "
                              "remove their slides from the sample sheet")
    matrix = matrix.loc[:, list(patients)]
    check_finite(matrix, where)
    return to_log_scale(matrix, kind, where)


def check_gene_sets(matrices: Mapping[str, pd.DataFrame], paths: Mapping[str, str]) -> list[str]:
    """All cohorts must measure the same genes; returns them sorted."""
    names = sorted(matrices)
    first = names[0]
    reference = set(matrices[first].index)
    for name in names[1:]:
        genes = set(matrices[name].index)
        if genes != reference:
            only_a = sorted(reference - genes)[:5]
            only_b = sorted(genes - reference)[:5]
            raise InputTableError(f"expression matrices {paths[first]} (cohort {first!r}) and {paths[name]} "
                                  f"(cohort {name!r}) list different genes: only in {first!r}: {only_a}, only in "
                                  f"{name!r}: {only_b}; restrict all matrices to the same gene set")
    return sorted(reference)


def load_cohorts(patients: Sequence[Sequence[str]], cohorts: Sequence[str], paths: Sequence[str],
                 kind: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The rules' common start: (patient, cohort, split) rows -> split table and one log-scale
    matrix per cohort (restricted to its sheet patients), gene sets checked to agree."""
    table = pd.DataFrame(list(patients), columns=["patient", "cohort", "split"])
    by_cohort = dict(zip(cohorts, paths))
    matrices = {c: load_cohort(by_cohort[c], c, sorted(table.loc[table["cohort"] == c, "patient"]), kind)
                for c in cohorts}
    check_gene_sets(matrices, by_cohort)
    return table, matrices


# ------------------------------------------------------------------------ chunking
def gene_chunks(genes: Sequence[str], chunk_size: int) -> list[list[str]]:
    """Chunk k = the k-th slice of size ``chunk_size`` of the SORTED gene list."""
    ordered = sorted(genes)
    return [ordered[i:i + chunk_size] for i in range(0, len(ordered), chunk_size)]


def chunk_ids(n_genes: int, chunk_size: int) -> list[str]:
    return [f"{k:04d}" for k in range(math.ceil(n_genes / chunk_size))]


def read_gene_column(path: str | Path) -> list[str]:
    """Sorted genes of an expression matrix (its first column), read without the values."""
    path = Path(path)
    if str(path).lower().endswith((".parquet", ".pq")):
        column = pd.read_parquet(path, columns=None).iloc[:, 0]
    else:
        sep = "," if str(path).lower().endswith((".csv", ".csv.gz")) else "\t"
        column = pd.read_csv(path, sep=sep, usecols=[0], dtype=str).iloc[:, 0]
    return sorted(column.astype(str).str.strip())


def reference_cohort(cohorts: Mapping[str, Mapping]) -> str:
    refs = [name for name, c in cohorts.items() if c.get("reference", False)]
    training = [name for name, c in cohorts.items() if c.get("role") == "training"]
    if not training:
        raise ConfigError("config key 'cohorts': at least one cohort needs role: training")
    if len(refs) > 1:
        raise ConfigError(f"config key 'cohorts': several cohorts are marked reference: true ({refs}); mark one")
    if not refs:
        if len(training) == 1:
            return training[0]
        raise ConfigError(f"config key 'cohorts': mark one training cohort (of {training}) with reference: true; "
                          "it is the reference of the cross-cohort median normalisation")
    if cohorts[refs[0]].get("role") != "training":
        raise ConfigError(f"config key 'cohorts.{refs[0]}.reference': the reference cohort must have role: training")
    return refs[0]


# -------------------------------------------------------------------- normalisation
def fit_medians(matrix: pd.DataFrame, patients: Sequence[str], cohort: str) -> np.ndarray:
    if len(patients) == 0:
        raise InputTableError(f"cohort {cohort!r} has no patients to fit the median normalisation on (train + "
                              "validation for training cohorts); add patients or adjust 'splits.proportions'")
    return np.median(matrix.loc[:, list(patients)].to_numpy(), axis=1)


def prepare_training(matrices: Mapping[str, pd.DataFrame], splits: pd.DataFrame, reference: str,
                     min_variance: float, chunk_size: int) -> dict:
    """Median-normalise the training cohorts and filter genes by training variance.

    ``matrices``: cohort -> log-scale genes x patients (train/tune/validation patients
    of that cohort, any order). ``splits``: patient, cohort, split.
    Returns a dict with ``genes_all``, ``reference_median``, ``offsets`` (cohort ->
    array over genes_all), ``gene_table``, ``values`` (patients x kept genes),
    ``patients``, ``cohort``, ``split``, ``genes``.
    """
    if reference not in matrices:
        raise ConfigError(f"reference cohort {reference!r} has no train/validation patients in the sample sheet")
    split_of = dict(zip(splits["patient"], splits["split"]))
    genes_all = list(matrices[reference].index)
    for name, matrix in matrices.items():
        if list(matrix.index) != genes_all:
            matrices = {k: v.loc[genes_all] for k, v in matrices.items()}
            break
    fit_patients = {name: [p for p in m.columns if split_of[p] in FIT_SPLITS] for name, m in matrices.items()}
    ref_median = fit_medians(matrices[reference], fit_patients[reference], reference)
    offsets = {name: (np.zeros(len(genes_all)) if name == reference
                      else ref_median - fit_medians(m, fit_patients[name], name))
               for name, m in sorted(matrices.items())}
    patients, cohorts, split_col, blocks = [], [], [], []
    for name in sorted(matrices):
        m = matrices[name]
        cols = sorted(m.columns)
        blocks.append(m.loc[:, cols].to_numpy() + offsets[name][:, None])
        patients += cols
        cohorts += [name] * len(cols)
        split_col += [split_of[p] for p in cols]
    values = np.concatenate(blocks, axis=1).T  # patients x genes
    order = np.argsort(np.asarray(patients, dtype=object), kind="stable")
    values = values[order]
    patients = [patients[i] for i in order]
    cohorts = [cohorts[i] for i in order]
    split_col = [split_col[i] for i in order]
    train_rows = np.array([s == "train" for s in split_col])
    if train_rows.sum() < 2:
        raise InputTableError(f"only {int(train_rows.sum())} training patient(s) have expression; the variance "
                              "filter needs at least 2 (check the sample sheet and 'splits.proportions')")
    variance = values[train_rows].var(axis=0, ddof=1)
    kept = variance > float(min_variance)
    gene_order = np.argsort(np.asarray(genes_all, dtype=object), kind="stable")
    chunk_of = {}
    for k, chunk in enumerate(gene_chunks(genes_all, chunk_size)):
        for gene in chunk:
            chunk_of[gene] = k
    gene_table = pd.DataFrame({
        "gene": [genes_all[i] for i in gene_order],
        "variance": variance[gene_order],
        "kept": kept[gene_order],
        "chunk": [chunk_of[genes_all[i]] for i in gene_order],
    })
    kept_sorted = [genes_all[i] for i in gene_order if kept[i]]
    col_index = {g: i for i, g in enumerate(genes_all)}
    kept_idx = np.array([col_index[g] for g in kept_sorted], dtype=np.int64)
    return {
        "genes_all": genes_all, "reference": reference, "reference_median": ref_median, "offsets": offsets,
        "fit_patients": {k: sorted(v) for k, v in fit_patients.items()}, "gene_table": gene_table,
        "values": values[:, kept_idx].astype(np.float32), "patients": patients, "cohort": cohorts,
        "split": split_col, "genes": kept_sorted,
    }


def apply_normalisation(matrices: Mapping[str, pd.DataFrame], splits: pd.DataFrame, training: Mapping,
                        cohort_roles: Mapping[str, str]) -> dict:
    """Normalise every patient with the offsets fitted on the training store.

    Training cohorts use the stored offsets unchanged; an external cohort's offset
    is ``reference_median - median(all its patients)``. Returns patients x kept genes.
    """
    split_of = dict(zip(splits["patient"], splits["split"]))
    genes_all = list(training["genes_all"])
    genes = list(training["genes"])
    col_index = {g: i for i, g in enumerate(genes_all)}
    kept_idx = np.array([col_index[g] for g in genes], dtype=np.int64)
    offsets = {}
    patients, cohorts, split_col, blocks = [], [], [], []
    for name in sorted(matrices):
        m = matrices[name].loc[genes_all]
        cols = sorted(m.columns)
        if cohort_roles[name] == "external":
            offset = np.asarray(training["reference_median"]) - fit_medians(m, cols, name)
        elif name in training["offsets"]:
            offset = np.asarray(training["offsets"][name])
        else:
            raise InputTableError(f"training cohort {name!r} has no train/validation patients, so no median "
                                  "normalisation offset could be fitted; give it train/validation patients or "
                                  "make its role external")
        offsets[name] = offset
        blocks.append((m.loc[:, cols].to_numpy() + offset[:, None])[kept_idx])
        patients += cols
        cohorts += [name] * len(cols)
        split_col += [split_of[p] for p in cols]
    values = np.concatenate(blocks, axis=1).T if blocks else np.zeros((0, len(genes)))
    order = np.argsort(np.asarray(patients, dtype=object), kind="stable")
    return {
        "values": values[order].astype(np.float32), "patients": [patients[i] for i in order],
        "cohort": [cohorts[i] for i in order], "split": [split_col[i] for i in order], "genes": genes,
        "offsets": {k: v[kept_idx] for k, v in offsets.items()}, "reference": training["reference"],
    }
