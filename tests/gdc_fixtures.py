"""A small download in the GDC's own layouts (docs/tcga.md), written into a folder.

Slides: a gdc-client folder (<file id>/<file name>) of real SVS files (copies of
CMU-1-Small-Region under TCGA slide barcodes) and its manifest. Expression: STAR
augmented gene-counts files (with the N_* summary rows, a PAR_Y duplicate symbol and a
non-coding gene) and the GDC sample sheet. Clinical: clinical.tsv with one row per
treatment and ``'--`` for missing, the BCR patient supplement with its two extra header
rows, and a PAM50 table.

Patients (site = the barcode's tissue source site):
* TCGA-A1-A0SB: two diagnostic slides (DX1 small, DX2 large) and a frozen one; two
  tumour aliquots (01A, 01B); dead.
* TCGA-A2-A04P: one diagnostic slide; a tumour and a solid-tissue-normal (11A)
  expression profile; alive.
* TCGA-A2-A0CM: a diagnostic tumour slide and a normal-tissue (11A) slide; alive.
* TCGA-BH-A0B3..A0B9: one diagnostic slide and one profile each.
* TCGA-E2-A14N: a slide but no expression profile (dropped from the sheet).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from external_slides import cmu_small_region

GENES = [("ENSG00000000003.15", "TSPAN6", "protein_coding"),
         ("ENSG00000000005.6", "TNMD", "protein_coding"),
         ("ENSG00000091831.24", "ESR1", "protein_coding"),
         ("ENSG00000148773.14", "MKI67", "protein_coding"),
         ("ENSG00000002586.20", "CD99", "protein_coding"),
         ("ENSG00000002586.20_PAR_Y", "CD99", "protein_coding"),
         ("ENSG00000225880.6", "LINC00115", "lncRNA")]
BH = [f"TCGA-BH-A0B{i}" for i in range(3, 10)]


def _uuid(i: int) -> str:
    return f"{i:08d}-0000-4000-8000-{i:012d}"


def _star_file(path: Path, counts: np.ndarray) -> None:
    lines = ["# gene-model: GENCODE v36",
             "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded"
             "\tfpkm_unstranded\tfpkm_uq_unstranded"]
    for name in ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"):
        lines.append(f"{name}\t\t\t123456\t1\t1\t\t\t")
    tpm = counts / counts.sum() * 1e6
    for (gene_id, name, kind), c, t in zip(GENES, counts, tpm):
        lines.append(f"{gene_id}\t{name}\t{kind}\t{int(c)}\t{int(c // 2)}\t{int(c // 2)}\t{t:.4f}\t{t / 2:.4f}\t{t / 3:.4f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_gdc_download(root: Path) -> dict[str, Path]:
    """Write the download; returns the paths the builder takes, and the expected
    tumour counts per patient under ``root / 'truth.tsv'``."""
    rng = np.random.default_rng(7)
    slide = cmu_small_region()
    slides_dir = root / "slides"
    slides = [("TCGA-A1-A0SB-01Z-00-DX1", 1), ("TCGA-A1-A0SB-01Z-00-DX2", 3), ("TCGA-A1-A0SB-01A-01-TS1", 5),
              ("TCGA-A2-A04P-01Z-00-DX1", 1), ("TCGA-A2-A0CM-01Z-00-DX1", 1), ("TCGA-A2-A0CM-11A-01-DX1", 9),
              *[(f"{p}-01Z-00-DX1", 1) for p in BH], ("TCGA-E2-A14N-01Z-00-DX1", 1)]
    manifest = []
    for i, (barcode, weight) in enumerate(slides):
        name = f"{barcode}.{_uuid(100 + i).upper()}.svs"
        target = slides_dir / _uuid(i) / name
        target.parent.mkdir(parents=True)
        shutil.copy2(slide, target)
        # the manifest's size decides which of a patient's slides is kept
        manifest.append({"id": _uuid(i), "filename": name, "md5": "0" * 32,
                         "size": str(target.stat().st_size * weight), "state": "released"})
    pd.DataFrame(manifest).to_csv(root / "gdc_manifest.slides.txt", sep="\t", index=False)

    counts_dir = root / "counts"
    samples = [("TCGA-A1-A0SB-01A", "Primary Tumor"), ("TCGA-A1-A0SB-01B", "Primary Tumor"),
               ("TCGA-A2-A04P-01A", "Primary Tumor"), ("TCGA-A2-A04P-11A", "Solid Tissue Normal"),
               ("TCGA-A2-A0CM-01A", "Primary Tumor"), *[(f"{p}-01A", "Primary Tumor") for p in BH]]
    sheet_rows, truth = [], {}
    for i, (sample, kind) in enumerate(samples):
        counts = rng.integers(10, 5000, len(GENES)).astype(float)
        if kind != "Primary Tumor":
            counts *= 1000  # a normal profile mixed in would be obvious
        file_id = _uuid(500 + i)
        name = f"{_uuid(900 + i)}.rna_seq.augmented_star_gene_counts.tsv"
        _star_file(counts_dir / file_id / name, counts)
        sheet_rows.append({"File ID": file_id, "File Name": name, "Data Category": "Transcriptome Profiling",
                           "Data Type": "Gene Expression Quantification", "Project ID": "TCGA-BRCA",
                           "Case ID": sample[:12], "Sample ID": sample, "Sample Type": kind})
        patient = sample[:12]
        if kind == "Primary Tumor" and patient not in truth:  # 01A sorts before 01B
            truth[patient] = {"TSPAN6": counts[0], "ESR1": counts[2], "CD99": counts[4] + counts[5]}
    pd.DataFrame(sheet_rows).to_csv(root / "gdc_sample_sheet.expression.tsv", sep="\t", index=False)
    pd.DataFrame(truth).T.rename_axis("patient").to_csv(root / "truth.tsv", sep="\t")

    patients = ["TCGA-A1-A0SB", "TCGA-A2-A04P", "TCGA-A2-A0CM", *BH, "TCGA-E2-A14N"]
    clinical = []
    for j, p in enumerate(patients):
        dead = j % 3 == 0
        row = {"case_id": _uuid(2000 + j), "case_submitter_id": p, "project_id": "TCGA-BRCA",
               "age_at_index": str(40 + j), "vital_status": "Dead" if dead else "Alive",
               "days_to_death": str(300 + 30 * j) if dead else "'--",
               "days_to_last_follow_up": "'--" if dead else str(900 + 10 * j),
               "treatment_type": "Radiation Therapy, NOS"}
        clinical.append(row)
        clinical.append({**row, "treatment_type": "Pharmaceutical Therapy, NOS"})  # GDC: a row per treatment
    pd.DataFrame(clinical).to_csv(root / "clinical.tsv", sep="\t", index=False)

    header = ["bcr_patient_uuid", "bcr_patient_barcode", "er_status_by_ihc", "pr_status_by_ihc",
              "her2_status_by_ihc", "histological_type"]
    bcr = [header, ["bcr_patient_uuid", "bcr_patient_barcode", "breast_carcinoma_estrogen_receptor_status",
                    "breast_carcinoma_progesterone_receptor_status", "lab_proc_her2_neu_immunohistochemistry_receptor_status",
                    "histological_type"],
           ["CDE_ID:", "CDE_ID:2003301", "CDE_ID:2957359", "CDE_ID:2957357", "CDE_ID:2957563", "CDE_ID:3081934"]]
    statuses = ["Positive", "Negative", "[Not Evaluated]", "Equivocal", "Indeterminate"]
    types = ["Infiltrating Ductal Carcinoma", "Infiltrating Lobular Carcinoma", "Mucinous Carcinoma", "[Not Available]"]
    for j, p in enumerate(patients):
        bcr.append([_uuid(3000 + j), p, statuses[j % 5], statuses[(j + 1) % 5], statuses[(j + 2) % 5], types[j % 4]])
    (root / "nationwidechildrens.org_clinical_patient_brca.txt").write_text(
        "\n".join("\t".join(r) for r in bcr) + "\n")
    subtypes = ["BRCA.LumA", "BRCA.LumB", "BRCA.Her2", "BRCA.Basal", "BRCA.Normal"]
    pd.DataFrame({"patient": patients, "BRCA_Subtype_PAM50": [subtypes[j % 5] for j in range(len(patients))]}).to_csv(
        root / "subtypes.tsv", sep="\t", index=False)
    return {"slide_manifest": root / "gdc_manifest.slides.txt", "slides_dir": slides_dir,
            "expression_sample_sheet": root / "gdc_sample_sheet.expression.tsv", "counts_dir": counts_dir,
            "clinical": root / "clinical.tsv", "bcr_patient": root / "nationwidechildrens.org_clinical_patient_brca.txt",
            "subtypes": root / "subtypes.tsv", "truth": root / "truth.tsv"}
