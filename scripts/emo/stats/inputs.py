"""Loading and aligning the statistics inputs (contracts: docs/data_contracts.md).

- ``results/expression/prepared.h5``: /values (patients x genes), /patients, /genes, /cohort
- ``results/splits/patients.tsv``: patient, cohort, split, ...
- ``results/predictions/{encoder}/patients.tsv``: patient + one column per gene
- clinical table (config ``clinical``)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTableError
from ..stores.expression import open_expression_store

log = logging.getLogger("emo")

EVALUATION_SPLITS = ("validation", "test", "external")


@dataclass
class Measured:
    values: pd.DataFrame   # patients x genes, float64
    cohort: pd.Series      # patient -> cohort


def load_measured(path: str | Path, genes: list[str] | None = None) -> Measured:
    """Read prepared.h5; with ``genes`` only those columns are loaded (column-sliced read)."""
    path = Path(path)
    if not path.is_file():
        raise InputTableError(f"prepared expression store {path} does not exist; run the expression stage first")
    with open_expression_store(path) as store:
        for key in store.missing(("values", "patients", "genes", "cohort")):
            raise InputTableError(f"prepared expression store {path} has no /{key} dataset "
                                  "(see docs/data_contracts.md, 'Expression and splits')")
        patients = store.patients()
        all_genes = store.genes()
        cohort = store.cohort()
        # One contiguous read (patients x genes float32: 70 MB at 1,000 x 17,695);
        # h5py fancy indexing over thousands of columns is far slower.
        values = store.values()
        columns = all_genes
        if genes is not None:
            position = {g: i for i, g in enumerate(all_genes)}
            idx = np.array(sorted(position[g] for g in genes if g in position), dtype=np.int64)
            values = values[:, idx]
            columns = [all_genes[i] for i in idx]
    frame = pd.DataFrame(np.asarray(values, dtype=np.float64), index=pd.Index(patients, name="patient"),
                         columns=columns)
    return Measured(values=frame, cohort=pd.Series(cohort, index=frame.index, name="cohort"))


def load_splits(path: str | Path) -> pd.DataFrame:
    splits = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in ("patient", "cohort", "split") if c not in splits.columns]
    if missing:
        raise InputTableError(f"split table {path}: missing column(s) {', '.join(missing)}")
    return splits.set_index("patient", drop=False)


def load_predictions(path: str | Path, genes: list[str] | None = None) -> pd.DataFrame:
    """Patient-level predictions (patients x genes, float64), patient as index; with
    ``genes`` only those columns are parsed (in the given order, absent ones skipped)."""
    header = list(pd.read_csv(path, sep="\t", nrows=0).columns)
    if not header or header[0] != "patient":
        raise InputTableError(f"prediction table {path}: first column must be 'patient'")
    usecols = None
    if genes is not None:
        present = set(header)
        wanted = [g for g in dict.fromkeys(genes) if g in present and g != "patient"]
        usecols = ["patient", *wanted]
    frame = pd.read_csv(path, sep="\t", dtype={"patient": str}, usecols=usecols, engine="c")
    if usecols is not None:
        frame = frame[usecols]
    frame = frame.set_index("patient")
    if frame.index.duplicated().any():
        dup = frame.index[frame.index.duplicated()][0]
        raise InputTableError(f"prediction table {path}: patient {dup!r} appears more than once")
    return frame.astype(np.float64)


CLINICAL_BINARY = {"er", "pr", "her2"}


def read_clinical(path: str | Path) -> pd.DataFrame:
    """The clinical table as stored (``patient`` a string column), checked: it exists, is
    tab-separated (a .csv / .parquet name is read as such), has a ``patient`` column and
    one row per patient. The statistics and survival stages read it through here, and
    the DAG-build checks too, so a bad table fails before any job with the same message."""
    from ..io import check_tab_separated, read_table

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"clinical table {path} (config key 'clinical') does not exist")
    clinical = read_table(path, dtype={"patient": str}, keep_default_na=True)
    clinical.columns = [str(c).strip() for c in clinical.columns]
    check_tab_separated(clinical.columns, f"clinical table {path} (config key 'clinical')", InputTableError)
    if "patient" not in clinical.columns:
        raise InputTableError(f"clinical table {path} (config key 'clinical'): missing column 'patient'")
    clinical["patient"] = clinical["patient"].map(lambda v: v.strip() if isinstance(v, str) else v)
    repeated = clinical["patient"][clinical["patient"].notna() & clinical["patient"].duplicated(keep=False)]
    if not repeated.empty:
        counts = repeated.value_counts(sort=False)
        named = ", ".join(f"{p!r} ({n} rows)" for p, n in list(counts.items())[:5])
        more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
        raise InputTableError(
            f"clinical table {path} (config key 'clinical'): {len(counts)} patient(s) appear in more than one "
            f"row: {named}{more}; the table needs exactly one row per patient: merge or delete the extra rows")
    return clinical


def load_clinical(path: str | Path, required: list[str] = ()) -> pd.DataFrame:
    """Clinical table indexed by patient (:func:`read_clinical`); ``required`` columns
    must exist (error names the column and the config key)."""
    clinical = read_clinical(path)
    check_clinical_columns(clinical.columns, required, path)
    for column in CLINICAL_BINARY & set(clinical.columns):
        clinical[column] = clinical[column].astype("string").str.strip().str.lower()
    return clinical.set_index("patient")


def check_clinical_columns(columns, required, path) -> None:
    missing = [c for c in required if c not in set(columns)]
    if missing:
        raise InputTableError(
            f"clinical table {path} (config key 'clinical') lacks column(s) {', '.join(missing)} needed by "
            "the statistics stage; add the column(s) or change config keys statistics.markers / "
            "statistics.er_models.covariates")


def check_genes(genes_wanted, genes_available, config_key: str, allow_missing: bool = True) -> list[str]:
    """Genes of ``genes_wanted`` present in ``genes_available`` (order kept). When none is
    present (or any is missing and ``allow_missing`` is False) raise naming the genes and key."""
    available = set(genes_available)
    present = [g for g in genes_wanted if g in available]
    missing = [g for g in genes_wanted if g not in available]
    if missing and (not allow_missing or not present):
        raise ConfigError(f"gene(s) {', '.join(missing)} of config key {config_key} are not modelled "
                          "(absent from the predictions or the prepared expression); fix the gene symbols "
                          "(HGNC) or remove them from the key")
    if missing:
        log.warning("%s: genes not modelled, left out: %s", config_key, ", ".join(missing))
    return present


@dataclass
class Dataset:
    """Measured and predicted expression aligned on patients and genes."""
    measured: pd.DataFrame
    predicted: pd.DataFrame
    splits: pd.DataFrame

    @property
    def genes(self) -> list[str]:
        return list(self.measured.columns)

    def subsets(self) -> list[tuple[str, str, list[str]]]:
        """(split, cohort, patients) for validation (all training cohorts together),
        test, and each external cohort; sorted patients; empty sets left out."""
        out = []
        present = self.splits.loc[self.splits.index.isin(self.measured.index)]
        for split in EVALUATION_SPLITS:
            rows = present[present["split"] == split]
            if split == "external":
                for cohort in sorted(rows["cohort"].unique()):
                    patients = sorted(rows.index[rows["cohort"] == cohort])
                    if patients:
                        out.append((split, cohort, patients))
            else:
                patients = sorted(rows.index)
                if patients:
                    out.append((split, "all", patients))
        return out


def load_dataset(prepared: str | Path, splits: str | Path, predictions: str | Path,
                 genes: list[str] | None = None) -> Dataset:
    """Align prepared expression and predictions. Genes: the predicted genes (restricted
    to ``genes`` when given); a predicted gene absent from prepared.h5 is an error.
    Patients: those with a split, a prediction and measured expression."""
    split_table = load_splits(splits)
    predicted = load_predictions(predictions, genes=genes)
    measured = load_measured(prepared, genes=list(predicted.columns))
    absent = [g for g in predicted.columns if g not in measured.values.columns]
    if absent:
        raise InputTableError(f"prediction table {predictions}: gene(s) {', '.join(absent[:10])}"
                              f"{' ...' if len(absent) > 10 else ''} are not in {prepared}; predictions "
                              "must come from the same prepared expression store (rerun predictions)")
    gene_order = list(predicted.columns)
    patients = sorted(set(predicted.index) & set(measured.values.index) & set(split_table.index))
    unmatched = sorted(set(predicted.index) - set(measured.values.index))
    if unmatched:
        log.warning("%d predicted patient(s) have no measured expression and are left out (e.g. %s)",
                    len(unmatched), unmatched[0])
    if not patients:
        raise InputTableError(f"no patient is in all of {prepared}, {splits} and {predictions}; "
                              "check that the patient identifiers agree")
    return Dataset(measured=measured.values.loc[patients, gene_order],
                   predicted=predicted.loc[patients, gene_order],
                   splits=split_table.loc[patients])
