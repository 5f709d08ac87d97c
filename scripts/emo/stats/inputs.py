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
from typing import Mapping

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


# ----------------------------------------------------------------------------- column and value mapping
# The pipeline's clinical column names (docs/data_contracts.md, 'Clinical table') and the
# coding a stage needs, for the checks of config key clinical_mapping. Columns named in
# the statistics and survival settings (markers, covariates) may be mapped too.
CLINICAL_COLUMNS = ("patient", "age", "er", "pr", "her2", "pam50", "tp53", "histology", "grade", "tumour_size_mm",
                    "nodes_positive", "survival_time", "survival_event")
_POSITIVE_NEGATIVE = ("positive", "negative")
# column -> (description of the coding, test of one mapped value)
_CODINGS = {
    **{c: ("positive / negative", lambda v: str(v).strip().lower() in _POSITIVE_NEGATIVE)
       for c in sorted(CLINICAL_BINARY)},
    "survival_event": ("0 (censored) / 1 (event)", lambda v: _number(v) in (0, 1)),
    "survival_time": ("a number of months >= 0", lambda v: _number(v) is not None and _number(v) >= 0),
    "nodes_positive": ("a number of positive nodes >= 0", lambda v: _number(v) is not None and _number(v) >= 0),
    "tumour_size_mm": ("a number (mm)", lambda v: _number(v) is not None),
    "age": ("a number (years)", lambda v: _number(v) is not None),
}
_NUMERIC = {"survival_event", "survival_time", "nodes_positive", "tumour_size_mm", "age"}


def _number(value) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return None if number != number else number


def _shown(values, limit: int = 6) -> str:
    values = list(values)
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(repr(v) for v in values[:limit]) + more


def clinical_column_names(config: Mapping | None = None) -> list[str]:
    """The pipeline column names config key clinical_mapping may map: the fixed ones and
    those the statistics and survival settings name (markers' columns, covariates, the Ki67 column)."""
    names = set(CLINICAL_COLUMNS)
    if config:
        statistics, surv = config.get("statistics") or {}, config.get("survival") or {}
        names |= {c for c in (statistics.get("markers") or {}).values() if c != "proliferation"}
        names |= set((statistics.get("er_models") or {}).get("covariates") or [])
        names |= set(surv.get("covariates") or [])
        if statistics.get("ki67_column"):
            names.add(statistics["ki67_column"])
    return sorted(names)


def check_clinical_mapping(mapping: Mapping | None, known: list[str] | None = None) -> dict:
    """Config key clinical_mapping checked without the table: ``columns`` keys and
    ``values`` keys are pipeline column names (``known``, from :func:`clinical_column_names`
    of the config; None skips that check: the DAG build made it with the whole config),
    and no source column feeds two pipeline columns. Returns
    ``{"columns": {...}, "values": {...}}`` (empty when no mapping)."""
    mapping = dict(mapping or {})
    columns = {str(k): str(v).strip() for k, v in (mapping.get("columns") or {}).items()}
    values = {str(k): dict(v or {}) for k, v in (mapping.get("values") or {}).items()}
    for part, names in (("columns", columns), ("values", values)):
        unknown = [n for n in names if known is not None and n not in known]
        if unknown:
            raise ConfigError(
                f"config key 'clinical_mapping.{part}': unknown pipeline column(s) {', '.join(map(repr, unknown))}; "
                f"the keys are the pipeline's column names ({', '.join(known)}) and the "
                + ("values the table's column names" if part == "columns" else "values map the table's codings"))
    sources: dict[str, list[str]] = {}
    for target, source in columns.items():
        sources.setdefault(source, []).append(target)
    shared = {s: t for s, t in sources.items() if len(t) > 1}
    if shared:
        source, targets = next(iter(shared.items()))
        raise ConfigError(
            f"config key 'clinical_mapping.columns': table column {source!r} is mapped to more than one pipeline "
            f"column ({', '.join(f'clinical_mapping.columns.{t}' for t in targets)}); map each table column once")
    return {"columns": columns, "values": values}


def _code_key(value) -> str:
    """A coding as matched: text stripped; numbers by value, so a YAML integer key 2, a
    cell '2' and a cell read as 2.0 (a numeric column with empty cells) are one code."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def apply_clinical_mapping(clinical: pd.DataFrame, mapping: Mapping | None, where: str,
                           known: list[str] | None = None) -> pd.DataFrame:
    """``clinical`` (as read, columns stripped) with config key clinical_mapping applied:
    table columns renamed to the pipeline's, then raw codings replaced. Raises naming the
    key, the column and the offending values when a mapped column is absent, a renamed
    column collides with one already there, or a column with a value mapping still holds
    values outside the coding its stage needs."""
    mapping = check_clinical_mapping(mapping, known)
    columns, values = mapping["columns"], mapping["values"]
    if not columns and not values:
        return clinical
    present = list(clinical.columns)
    absent = {t: s for t, s in columns.items() if s not in present}
    if absent:
        target, source = next(iter(absent.items()))
        raise InputTableError(
            f"{where}: config key 'clinical_mapping.columns.{target}' names column {source!r}, which the table lacks; "
            f"its columns: {', '.join(present)}")
    renamed = {s: t for t, s in columns.items() if s != t}
    collide = [t for s, t in renamed.items() if t in present and t not in renamed]
    if collide:
        target = collide[0]
        raise InputTableError(
            f"{where}: config key 'clinical_mapping.columns.{target}' maps {columns[target]!r} to {target!r}, "
            f"but the table already has a column {target!r}; drop one of them or map it too")
    clinical = clinical.rename(columns=renamed)
    for column, codes in values.items():
        key = f"clinical_mapping.values.{column}"
        if column not in clinical.columns:
            raise InputTableError(
                f"{where}: config key {key!r} maps values of column {column!r}, which the table lacks "
                f"(after clinical_mapping.columns); its columns: {', '.join(clinical.columns)}")
        lookup = {_code_key(k): v for k, v in codes.items()}
        raw = clinical[column]
        text = raw.astype("string").str.strip()
        given = raw.notna() & text.ne("")
        mapped = raw.where(~given, text.map(lambda v: lookup.get(_code_key(v), v) if v is not pd.NA else v))
        if column in _CODINGS:
            coding, accepts = _CODINGS[column]
            bad = [v for v in dict.fromkeys(mapped[given].tolist()) if not accepts(v)]
            if bad:
                raw_bad = list(dict.fromkeys(text[given & mapped.isin(bad)].tolist()))
                raise InputTableError(
                    f"{where}, column {column!r}: after config key {key!r} value(s) {_shown(raw_bad)} are still not "
                    f"in the coding the pipeline needs ({coding}); add them to {key!r}")
        if column in _NUMERIC:
            mapped = pd.to_numeric(mapped.where(given), errors="coerce")
            if mapped.notna().all() and (mapped == mapped.round()).all():
                mapped = mapped.astype("int64")
        clinical[column] = mapped
    return clinical


def read_clinical(path: str | Path, mapping: Mapping | None = None, known: list[str] | None = None) -> pd.DataFrame:
    """The clinical table as stored (``patient`` a string column), checked: it exists, is
    tab-separated (a .csv / .parquet name is read as such), has a ``patient`` column and
    one row per patient. ``mapping`` (config key clinical_mapping) renames the table's
    columns and recodes values first (:func:`apply_clinical_mapping`; ``known``: the
    pipeline column names it may use). The statistics and survival stages read it through
    here, and the DAG-build checks too, so a bad table fails before any job with the same message."""
    from ..io import check_tab_separated, read_table

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"clinical table {path} (config key 'clinical') does not exist")
    patient = str(((mapping or {}).get("columns") or {}).get("patient", "patient")).strip()
    clinical = read_table(path, dtype={patient: str}, keep_default_na=True)
    clinical.columns = [str(c).strip() for c in clinical.columns]
    check_tab_separated(clinical.columns, f"clinical table {path} (config key 'clinical')", InputTableError)
    clinical = apply_clinical_mapping(clinical, mapping, f"clinical table {path} (config key 'clinical')", known)
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


def load_clinical(path: str | Path, required: list[str] = (), mapping: Mapping | None = None) -> pd.DataFrame:
    """Clinical table indexed by patient (:func:`read_clinical`, with config key
    clinical_mapping ``mapping``); ``required`` columns must exist (error names the
    column and the config key)."""
    clinical = read_clinical(path, mapping)
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
