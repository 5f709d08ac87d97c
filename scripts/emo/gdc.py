"""A TCGA cohort from the files a user downloads from the GDC (https://portal.gdc.cancer.gov).

Turns a slide manifest, the GDC sample sheet and STAR-counts files of the expression
download, and the GDC clinical table (plus, optionally, the BCR clinical supplement for
receptor status and histology and a PAM50 table) into the pipeline's three inputs: a
sample sheet, a genes x patients expression matrix and a clinical table
(docs/data_contracts.md, docs/tcga.md).

TCGA barcodes carry what must never be mixed: the sample type (``01`` primary tumour,
``11`` solid tissue normal, ...) and the slide kind (``DX`` diagnostic FFPE, ``TS``/``BS``/
``MS`` frozen sections). Only primary-tumour samples enter a patient's slide or
expression column; everything left out is counted in the build summary.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import InputTableError

SAMPLE_TYPES = {
    "01": "primary tumour", "02": "recurrent tumour", "03": "primary blood cancer",
    "05": "additional new primary", "06": "metastatic", "07": "additional metastatic",
    "10": "blood derived normal", "11": "solid tissue normal", "12": "buccal cell normal",
    "14": "bone marrow normal",
}
PRIMARY_TUMOUR = "01"
SLIDE_KINDS = {"DX": "diagnostic", "TS": "frozen", "BS": "frozen", "MS": "frozen"}
# STAR-counts value columns of the GDC's augmented_star_gene_counts files, and the
# pipeline's `expression.input` each one needs.
STAR_VALUES = {"unstranded": "counts", "tpm_unstranded": "log", "fpkm_uq_unstranded": "log"}
DAYS_PER_MONTH = 365.25 / 12
GDC_MISSING = ("'--", "--", "", "NA", "[Not Available]", "[Not Applicable]", "[Unknown]",
               "[Not Evaluated]", "[Discrepancy]", "Not Reported", "not reported", "Unknown")

_BARCODE = re.compile(
    r"^(?P<project>TCGA)-(?P<tss>[A-Z0-9]{2})-(?P<participant>[A-Z0-9]{4})"
    r"(?:-(?P<sample_type>\d{2})(?P<vial>[A-Z])?"
    r"(?:-(?P<portion>\d{2})(?P<analyte>[A-Z])?"
    r"(?:-(?P<slide>(?:DX|TS|BS|MS)[0-9A-Z]*)|-(?P<plate>[A-Z0-9]{4})(?:-(?P<centre>\d{2}))?)?)?)?$")


@dataclass(frozen=True)
class TCGABarcode:
    barcode: str
    patient: str                 # TCGA-XX-YYYY
    site: str                    # tissue source site, the XX
    sample_type: str | None      # "01", "11", ...
    slide: str | None            # "DX1", "TS1", ... for slide barcodes

    @property
    def slide_kind(self) -> str | None:
        return SLIDE_KINDS.get(self.slide[:2]) if self.slide else None

    @property
    def sample_type_name(self) -> str:
        return SAMPLE_TYPES.get(self.sample_type or "", f"sample type {self.sample_type}")


def parse_barcode(barcode: str) -> TCGABarcode:
    """Parse a TCGA barcode (patient, sample, aliquot or slide level)."""
    text = barcode.strip().upper()
    match = _BARCODE.match(text)
    if not match:
        raise InputTableError(f"{barcode!r} is not a TCGA barcode (expected e.g. TCGA-A1-A0SB, "
                              "TCGA-A1-A0SB-01A or TCGA-A1-A0SB-01Z-00-DX1)")
    g = match.groupdict()
    return TCGABarcode(barcode=text, patient=f"TCGA-{g['tss']}-{g['participant']}", site=g["tss"],
                       sample_type=g["sample_type"], slide=g["slide"])


def tissue_source_site(patient_or_barcode: str) -> str:
    """The tissue source site (TSS) code of a TCGA barcode: TCGA-A1-A0SB -> A1."""
    return parse_barcode(patient_or_barcode).site


def _read_gdc_tsv(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputTableError(f"{what} {path} does not exist; download it from the GDC portal (docs/tcga.md)")
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _require(table: pd.DataFrame, columns: Iterable[str], what: str, path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputTableError(f"{what} {path}: missing column(s) {', '.join(missing)}; is this the GDC's "
                              f"file? Its columns are {', '.join(table.columns[:12])}")


def _locate(root: Path, file_id: str, file_name: str) -> Path | None:
    """gdc-client writes <root>/<file id>/<file name>; a flat folder of files works too."""
    for candidate in (root / file_id / file_name, root / file_name):
        if candidate.is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------- slides

def build_sample_sheet(manifest: str | Path, slides_dir: str | Path, cohort: str = "TCGA",
                       slide_kind: str = "diagnostic", one_slide_per_patient: bool = True,
                       relative_to: str | Path | None = None,
                       max_mpp: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Sample sheet from a GDC slide manifest (columns id, filename, md5, size, state).

    Keeps primary-tumour slides of ``slide_kind``; with ``one_slide_per_patient`` the
    largest file per patient (the scan with the most tissue at equal compression: EMO
    keeps each patient's slide with the largest tumour area, which needs the tumour
    stage; the tumour-regions stage then selects by predicted tumour area). Every
    slide must be in ``slides_dir``. ``max_mpp``: slides scanned coarser than this
    (level-0 µm/px, read with OpenSlide) are left out; EMO excluded TCGA's 20x scans
    (about 0.5 µm/px) with 0.35. Returns the sheet and a summary of what was left out."""
    if slide_kind not in set(SLIDE_KINDS.values()):
        raise InputTableError(f"slide kind {slide_kind!r}: use 'diagnostic' (FFPE, DX) or 'frozen' (TS/BS/MS)")
    table = _read_gdc_tsv(manifest, "slide manifest")
    _require(table, ("id", "filename"), "slide manifest", manifest)
    slides_dir = Path(slides_dir)
    rows, not_barcodes, missing = [], [], []
    left_out = {"not primary tumour": 0, "other slide kind": 0, "further slides of a patient": 0}
    if max_mpp is not None:
        left_out[f"scanned coarser than {max_mpp} µm/px"] = 0
    for record in table.itertuples(index=False):
        name = record.filename
        try:
            code = parse_barcode(name.split(".")[0])
        except InputTableError:
            not_barcodes.append(name)
            continue
        if code.slide is None:
            not_barcodes.append(name)
            continue
        if code.sample_type != PRIMARY_TUMOUR:
            left_out["not primary tumour"] += 1
            continue
        if code.slide_kind != slide_kind:
            left_out["other slide kind"] += 1
            continue
        path = _locate(slides_dir, record.id, name)
        if path is None:
            missing.append(f"{name} (looked in {slides_dir / record.id} and {slides_dir})")
            continue
        if max_mpp is not None:
            from .slides import check_slide  # opens the slide: only when asked

            if check_slide(code.barcode, path).mpp > max_mpp:
                left_out[f"scanned coarser than {max_mpp} µm/px"] += 1
                continue
        size = int(getattr(record, "size", "") or path.stat().st_size)
        rows.append({"sample": code.barcode, "patient": code.patient, "cohort": cohort,
                     "slide": str(Path(path).resolve() if relative_to is None
                                  else Path(path).resolve().relative_to(Path(relative_to).resolve())),
                     "site": code.site, "_size": size})
    if not_barcodes:
        raise InputTableError(f"slide manifest {manifest}: {len(not_barcodes)} file name(s) are not TCGA slide "
                              f"barcodes, e.g. {', '.join(not_barcodes[:3])}; is it a slide manifest?")
    if missing:
        raise InputTableError(f"{len(missing)} slide(s) of manifest {manifest} are not downloaded: "
                              + "; ".join(missing[:5]) + ". Run `gdc-client download -m <manifest>` in that folder")
    if not rows:
        raise InputTableError(f"slide manifest {manifest}: no {slide_kind} primary-tumour slide "
                              f"(left out: {left_out})")
    sheet = pd.DataFrame(rows).sort_values(["patient", "_size", "sample"], ascending=[True, False, True])
    if one_slide_per_patient:
        before = len(sheet)
        sheet = sheet.drop_duplicates("patient", keep="first")
        left_out["further slides of a patient"] = before - len(sheet)
    sheet = sheet.drop(columns="_size").sort_values("sample").reset_index(drop=True)
    return sheet, {"slides": len(sheet), "patients": sheet["patient"].nunique(), "left out": left_out}


# ----------------------------------------------------------------------------- expression

def read_star_counts(path: str | Path, value: str = "unstranded",
                     gene_types: Iterable[str] | None = ("protein_coding",)) -> pd.Series:
    """One GDC augmented STAR gene-counts file as a Series indexed by gene symbol.

    Drops the N_unmapped/N_multimapping/... summary rows; genes whose symbol occurs on
    several Ensembl IDs (PAR_Y copies, readthroughs) are summed (counts and TPM
    are both additive), so symbols are unique as the matrix contract requires."""
    if value not in STAR_VALUES:
        raise InputTableError(f"STAR-counts value {value!r}: use one of {', '.join(STAR_VALUES)}")
    table = pd.read_csv(path, sep="\t", comment="#", dtype={"gene_id": str, "gene_name": str, "gene_type": str})
    _require(table, ("gene_id", "gene_name", value), "STAR-counts file", path)
    table = table[~table["gene_id"].str.startswith("N_")]
    if gene_types is not None and "gene_type" in table.columns:
        table = table[table["gene_type"].isin(list(gene_types))]
    values = pd.to_numeric(table[value], errors="coerce")
    if values.isna().any():
        raise InputTableError(f"STAR-counts file {path}: column {value!r} has non-numeric values")
    return values.groupby(table["gene_name"].to_numpy()).sum()


def build_expression(gdc_sample_sheet: str | Path, counts_dir: str | Path, value: str = "unstranded",
                     gene_types: Iterable[str] | None = ("protein_coding",),
                     patients: Iterable[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Genes x patients matrix from the GDC sample sheet of a STAR-counts download.

    Only primary-tumour samples (``01``); a patient with several (re-sequenced
    aliquots) keeps the lowest sample ID, then file name. ``patients`` restricts the
    matrix (e.g. to the slide sheet's). Values: raw counts for ``unstranded`` (config
    ``expression.input: counts``), log2(x + 1) for TPM/FPKM-UQ (``input: log``)."""
    table = _read_gdc_tsv(gdc_sample_sheet, "GDC sample sheet")
    _require(table, ("File ID", "File Name", "Sample ID"), "GDC sample sheet", gdc_sample_sheet)
    if "Data Type" in table.columns:
        table = table[table["Data Type"] == "Gene Expression Quantification"]
    counts_dir = Path(counts_dir)
    wanted = set(patients) if patients is not None else None
    left_out = {"not primary tumour": 0, "further samples of a patient": 0, "not in the slide sheet": 0}
    chosen: dict[str, tuple[str, str, str]] = {}
    for file_id, file_name, sample_field in zip(table["File ID"], table["File Name"], table["Sample ID"]):
        sample_ids = [s.strip() for s in sample_field.split(",")]
        if len(sample_ids) != 1:
            raise InputTableError(f"GDC sample sheet {gdc_sample_sheet}: file {file_name} pools samples "
                                  f"{', '.join(sample_ids)}; expression files must be one sample each")
        code = parse_barcode(sample_ids[0])
        if code.sample_type != PRIMARY_TUMOUR:
            left_out["not primary tumour"] += 1
            continue
        if wanted is not None and code.patient not in wanted:
            left_out["not in the slide sheet"] += 1
            continue
        key = (code.barcode, file_name, file_id)
        if code.patient in chosen:
            left_out["further samples of a patient"] += 1
            if key >= chosen[code.patient]:
                continue
        chosen[code.patient] = key
    if not chosen:
        raise InputTableError(f"GDC sample sheet {gdc_sample_sheet}: no primary-tumour expression file "
                              f"(left out: {left_out})")
    columns, missing = {}, []
    for patient in sorted(chosen):
        _, file_name, file_id = chosen[patient]
        path = _locate(counts_dir, file_id, file_name)
        if path is None:
            missing.append(f"{patient}: {file_name}")
            continue
        columns[patient] = read_star_counts(path, value, gene_types)
    if missing:
        raise InputTableError(f"{len(missing)} expression file(s) are not in {counts_dir}: {'; '.join(missing[:5])}. "
                              "Run `gdc-client download -m <manifest>` there")
    matrix = pd.DataFrame(columns).fillna(0.0).sort_index()
    if STAR_VALUES[value] == "log":
        matrix = np.log2(matrix + 1.0)
    matrix.index.name = "gene"
    summary = {"patients": matrix.shape[1], "genes": matrix.shape[0], "left out": left_out,
               "expression.input": STAR_VALUES[value]}
    return matrix.reset_index(), summary


# ----------------------------------------------------------------------------- clinical

def _missing_to_nan(series: pd.Series) -> pd.Series:
    return series.where(~series.isin(GDC_MISSING), np.nan)


def _one_value_per_patient(table: pd.DataFrame, column: str, path) -> pd.Series:
    """GDC clinical tables repeat a case on one row per treatment: the case's values
    must agree (else the table is ambiguous and refused, naming the case)."""
    values = table[["patient", column]].dropna().drop_duplicates()
    clash = values["patient"][values["patient"].duplicated()].unique()
    if len(clash):
        raise InputTableError(f"clinical table {path}: case(s) {', '.join(clash[:5])} have conflicting "
                              f"'{column}' values on their rows; fix the download or remove the rows")
    return values.set_index("patient")[column]


def _status(value, mapping: Mapping[str, str]):
    return mapping.get(str(value).strip().lower(), np.nan) if isinstance(value, str) else np.nan


def build_clinical(clinical_tsv: str | Path, bcr_patient: str | Path | None = None,
                   subtypes: str | Path | None = None, subtype_column: str = "BRCA_Subtype_PAM50",
                   patients: Iterable[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Clinical table (one row per patient) in the pipeline's columns.

    ``clinical_tsv``: the GDC clinical download's clinical.tsv (case_submitter_id,
    vital_status, days_to_death, days_to_last_follow_up, age_at_index).
    Survival: months to death for the dead, to last follow-up for the living; event 1 = dead.
    ``bcr_patient``: the BCR clinical supplement nationwidechildrens.org_clinical_patient_brca.txt
    (er/pr/her2_status_by_ihc, histological_type), for receptor status and histology.
    ``subtypes``: a TSV with a ``patient`` column (or TCGA barcodes in the first column)
    and the PAM50 call in ``subtype_column`` (e.g. TCGAbiolinks' PanCancer Atlas subtypes)."""
    table = _read_gdc_tsv(clinical_tsv, "GDC clinical table")
    _require(table, ("case_submitter_id", "vital_status", "days_to_death", "days_to_last_follow_up"),
             "GDC clinical table", clinical_tsv)
    table = table.apply(_missing_to_nan)
    table["patient"] = [parse_barcode(b).patient for b in table["case_submitter_id"]]
    vital = _one_value_per_patient(table, "vital_status", clinical_tsv).str.lower()
    death = pd.to_numeric(_one_value_per_patient(table, "days_to_death", clinical_tsv), errors="coerce")
    follow = pd.to_numeric(_one_value_per_patient(table, "days_to_last_follow_up", clinical_tsv), errors="coerce")
    out = pd.DataFrame(index=pd.Index(sorted(table["patient"].unique()), name="patient"))
    event = vital.reindex(out.index).map({"dead": 1, "alive": 0})
    days = np.where(event == 1, death.reindex(out.index), follow.reindex(out.index))
    days = pd.Series(days, index=out.index, dtype=float)
    bad = days.index[(days < 0).fillna(False)]
    if len(bad):
        raise InputTableError(f"clinical table {clinical_tsv}: negative survival days for {', '.join(bad[:5])}")
    out["survival_time"] = (days / DAYS_PER_MONTH).round(3)
    out["survival_event"] = event.where(days.notna())
    if "age_at_index" in table.columns:
        out["age"] = pd.to_numeric(_one_value_per_patient(table, "age_at_index", clinical_tsv),
                                   errors="coerce").reindex(out.index)
    if bcr_patient is not None:
        bcr = _read_gdc_tsv(bcr_patient, "BCR clinical supplement")
        _require(bcr, ("bcr_patient_barcode",), "BCR clinical supplement", bcr_patient)
        # rows 2-3 of the supplement repeat the header as CDE names and IDs
        bcr = bcr[bcr["bcr_patient_barcode"].str.startswith("TCGA-")].copy()
        bcr["patient"] = [parse_barcode(b).patient for b in bcr["bcr_patient_barcode"]]
        if bcr["patient"].duplicated().any():
            dup = bcr["patient"][bcr["patient"].duplicated()].unique()
            raise InputTableError(f"BCR clinical supplement {bcr_patient}: patients {', '.join(dup[:5])} "
                                  "appear twice")
        bcr = bcr.set_index("patient")
        status = {"positive": "positive", "negative": "negative"}
        for ours, theirs in (("er", "er_status_by_ihc"), ("pr", "pr_status_by_ihc"),
                             ("her2", "her2_status_by_ihc")):
            if theirs in bcr.columns:
                out[ours] = bcr[theirs].map(lambda v: _status(v, status)).reindex(out.index)
        if "histological_type" in bcr.columns:
            histology = {"infiltrating ductal carcinoma": "ductal", "infiltrating lobular carcinoma": "lobular"}
            out["histology"] = bcr["histological_type"].map(
                lambda v: histology.get(v.strip().lower(), "other") if isinstance(v, str)
                and v not in GDC_MISSING else np.nan).reindex(out.index)
    if subtypes is not None:
        calls = _read_gdc_tsv(subtypes, "subtype table")
        id_column = "patient" if "patient" in calls.columns else calls.columns[0]
        _require(calls, (subtype_column,), "subtype table", subtypes)
        calls = calls.assign(patient=[parse_barcode(b).patient for b in calls[id_column]])
        pam50 = {"luma": "LumA", "lumb": "LumB", "her2": "Her2", "basal": "Basal", "normal": "Normal"}
        out["pam50"] = (calls.drop_duplicates("patient").set_index("patient")[subtype_column]
                        .map(lambda v: _status(v.replace("BRCA.", "") if isinstance(v, str) else v, pam50))
                        .reindex(out.index))
    if patients is not None:
        wanted = sorted(set(patients))
        absent = [p for p in wanted if p not in out.index]
        out = out.reindex(wanted)
        summary_absent = len(absent)
    else:
        summary_absent = 0
    out["survival_event"] = out["survival_event"].astype("Int64")
    summary = {"patients": len(out), "with survival": int(out["survival_time"].notna().sum()),
               "events": int((out["survival_event"] == 1).sum()), "absent from the clinical table": summary_absent}
    return out.reset_index(), summary


def write_cohort(out_dir: str | Path, sheet: pd.DataFrame, expression: pd.DataFrame,
                 clinical: pd.DataFrame, expression_input: str, cohort: str = "TCGA") -> dict[str, Path]:
    """Write samples.tsv, expression_<cohort>.tsv, clinical.tsv and a config snippet;
    patients without expression are dropped from the sheet (they could not be trained
    on or validated) and counted."""
    from .io import atomic_write_text, write_tsv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with_expression = set(expression.columns[1:])
    sheet = sheet[sheet["patient"].isin(with_expression)]
    if sheet.empty:
        raise InputTableError("no slide's patient has a primary-tumour expression profile: are the slide "
                              "manifest and the expression download of the same project?")
    paths = {"samples": out / "samples.tsv", "expression": out / f"expression_{cohort}.tsv",
             "clinical": out / "clinical.tsv", "config": out / "config.yaml"}
    write_tsv(sheet, paths["samples"])
    write_tsv(expression[["gene"] + sorted(set(sheet["patient"]))], paths["expression"])
    write_tsv(clinical[clinical["patient"].isin(set(sheet["patient"]))], paths["clinical"])
    atomic_write_text(paths["config"], "\n".join([
        "# written by `python -m emo.gdc`; see docs/tcga.md",
        f"samples: {paths['samples'].resolve()}",
        f"clinical: {paths['clinical'].resolve()}",
        "cohorts:",
        f"  {cohort}:",
        f"    expression: {paths['expression'].resolve()}",
        "    role: training",
        "    reference: true",
        "expression:",
        f"  input: {expression_input}",
        "demo:",
        "  enabled: false",
        "heterogeneity:",
        "  enabled: false   # to enable, list two or more genes as traits (docs/heterogeneity.md)",
        ""]))
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m emo.gdc", description=(
        "Build the sample sheet, expression matrix and clinical table of a TCGA cohort from GDC "
        "downloads (docs/tcga.md)."))
    parser.add_argument("--slide-manifest", required=True, help="GDC manifest of the slide download")
    parser.add_argument("--slides-dir", required=True, help="folder gdc-client downloaded the slides into")
    parser.add_argument("--expression-sample-sheet", required=True,
                        help="GDC sample sheet of the STAR-counts download (gdc_sample_sheet.*.tsv)")
    parser.add_argument("--counts-dir", required=True, help="folder of the STAR-counts files")
    parser.add_argument("--clinical", required=True, help="clinical.tsv of the GDC clinical download")
    parser.add_argument("--bcr-patient", help="nationwidechildrens.org_clinical_patient_brca.txt (receptors, histology)")
    parser.add_argument("--subtypes", help="TSV of PAM50 calls per patient")
    parser.add_argument("--subtype-column", default="BRCA_Subtype_PAM50")
    parser.add_argument("--value", default="unstranded", choices=sorted(STAR_VALUES))
    parser.add_argument("--slide-kind", default="diagnostic", choices=["diagnostic", "frozen"])
    parser.add_argument("--all-slides", action="store_true", help="keep every slide of a patient, not the largest")
    parser.add_argument("--max-mpp", type=float, help="leave out slides scanned coarser (EMO: 0.35, no 20x scans)")
    parser.add_argument("--cohort", default="TCGA")
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    sheet, sheet_summary = build_sample_sheet(args.slide_manifest, args.slides_dir, args.cohort,
                                              args.slide_kind, not args.all_slides, max_mpp=args.max_mpp)
    patients = sorted(set(sheet["patient"]))
    expression, expression_summary = build_expression(args.expression_sample_sheet, args.counts_dir,
                                                      args.value, patients=patients)
    clinical, clinical_summary = build_clinical(args.clinical, args.bcr_patient, args.subtypes,
                                                args.subtype_column, patients=patients)
    paths = write_cohort(args.out_dir, sheet, expression, clinical, expression_summary["expression.input"],
                         args.cohort)
    print(json.dumps({"slides": sheet_summary, "expression": expression_summary, "clinical": clinical_summary,
                      "written": {k: str(v) for k, v in paths.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
