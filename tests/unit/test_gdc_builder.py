"""The TCGA cohort builder (emo.gdc) on a small download in the GDC's layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emo import gdc
from emo.errors import InputTableError
from emo.sheets import load_sample_sheet
from gdc_fixtures import BH, write_gdc_download


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    return write_gdc_download(tmp_path_factory.mktemp("gdc"))


@pytest.mark.parametrize("barcode, patient, site, sample_type, slide, kind", [
    ("TCGA-A1-A0SB", "TCGA-A1-A0SB", "A1", None, None, None),
    ("TCGA-A1-A0SB-01A", "TCGA-A1-A0SB", "A1", "01", None, None),
    ("TCGA-A2-A04P-11A-13R-A034-07", "TCGA-A2-A04P", "A2", "11", None, None),
    ("TCGA-BH-A0B3-01Z-00-DX1", "TCGA-BH-A0B3", "BH", "01", "DX1", "diagnostic"),
    ("tcga-bh-a0b3-01a-02-ts2", "TCGA-BH-A0B3", "BH", "01", "TS2", "frozen"),
])
def test_barcode_fields(barcode, patient, site, sample_type, slide, kind):
    code = gdc.parse_barcode(barcode)
    assert (code.patient, code.site, code.sample_type, code.slide, code.slide_kind) == (
        patient, site, sample_type, slide, kind)
    assert gdc.tissue_source_site(barcode) == site


@pytest.mark.parametrize("text", ["TCGA-A1", "A1-A0SB-01A", "TCGA-A1-A0SB-1A", "CMU-1-Small-Region"])
def test_not_a_barcode_is_refused_with_an_example(text):
    with pytest.raises(InputTableError, match="not a TCGA barcode.*TCGA-A1-A0SB-01Z-00-DX1"):
        gdc.parse_barcode(text)


def test_sheet_keeps_one_diagnostic_primary_tumour_slide_per_patient(download):
    sheet, summary = gdc.build_sample_sheet(download["slide_manifest"], download["slides_dir"])
    by_patient = sheet.set_index("patient")["sample"]
    # DX2 is the larger scan; the frozen TS1 and the normal-tissue (11A) slide are left out
    assert by_patient["TCGA-A1-A0SB"] == "TCGA-A1-A0SB-01Z-00-DX2"
    assert by_patient["TCGA-A2-A0CM"] == "TCGA-A2-A0CM-01Z-00-DX1"
    assert not sheet["sample"].str.contains("-11A-|-TS", regex=True).any()
    assert summary["left out"] == {"not primary tumour": 1, "other slide kind": 1, "further slides of a patient": 1}
    assert sheet["patient"].is_unique and len(sheet) == 4 + len(BH)
    assert (sheet["site"] == [gdc.tissue_source_site(p) for p in sheet["patient"]]).all()
    every, _ = gdc.build_sample_sheet(download["slide_manifest"], download["slides_dir"], one_slide_per_patient=False)
    assert set(every["sample"]) - set(sheet["sample"]) == {"TCGA-A1-A0SB-01Z-00-DX1"}
    frozen, _ = gdc.build_sample_sheet(download["slide_manifest"], download["slides_dir"], slide_kind="frozen")
    assert list(frozen["sample"]) == ["TCGA-A1-A0SB-01A-01-TS1"]


def test_sheet_names_slides_not_downloaded(download, tmp_path):
    manifest = pd.read_csv(download["slide_manifest"], sep="\t", dtype=str)
    manifest.loc[0, "id"] = "not-downloaded"
    manifest.loc[0, "filename"] = "TCGA-ZZ-ZZZZ-01Z-00-DX1.FFFF.svs"
    manifest.to_csv(tmp_path / "manifest.txt", sep="\t", index=False)
    with pytest.raises(InputTableError, match=r"1 slide\(s\).*TCGA-ZZ-ZZZZ-01Z-00-DX1\.FFFF\.svs.*gdc-client"):
        gdc.build_sample_sheet(tmp_path / "manifest.txt", download["slides_dir"])


def test_a_non_slide_manifest_is_refused(download, tmp_path):
    sheet = pd.read_csv(download["expression_sample_sheet"], sep="\t", dtype=str)
    sheet.rename(columns={"File ID": "id", "File Name": "filename"}).to_csv(tmp_path / "m.txt", sep="\t", index=False)
    with pytest.raises(InputTableError, match="not TCGA slide barcodes.*is it a slide manifest"):
        gdc.build_sample_sheet(tmp_path / "m.txt", download["slides_dir"])


def test_star_counts_file_reading(download):
    sheet = pd.read_csv(download["expression_sample_sheet"], sep="\t", dtype=str)
    path = download["counts_dir"] / sheet.loc[0, "File ID"] / sheet.loc[0, "File Name"]
    raw = pd.read_csv(path, sep="\t", comment="#")
    counts = gdc.read_star_counts(path)
    assert "N_unmapped" not in counts.index and "LINC00115" not in counts.index  # summary rows, non-coding
    assert counts.index.is_unique
    cd99 = raw.loc[raw["gene_name"] == "CD99", "unstranded"].sum()  # the PAR_Y copy is summed in
    assert counts["CD99"] == cd99
    everything = gdc.read_star_counts(path, gene_types=None)
    assert everything["LINC00115"] == raw.loc[raw["gene_name"] == "LINC00115", "unstranded"].item()
    with pytest.raises(InputTableError, match="use one of"):
        gdc.read_star_counts(path, value="fpkm")


def test_expression_uses_primary_tumour_profiles_only(download):
    matrix, summary = gdc.build_expression(download["expression_sample_sheet"], download["counts_dir"])
    truth = pd.read_csv(download["truth"], sep="\t", index_col="patient")
    matrix = matrix.set_index("gene")
    assert sorted(matrix.columns) == sorted(truth.index)
    for patient in truth.index:  # the normal profile (x1000) of TCGA-A2-A04P and the 01B aliquot unused
        for gene in truth.columns:
            assert matrix.loc[gene, patient] == truth.loc[patient, gene], (patient, gene)
    assert summary["left out"]["not primary tumour"] == 1
    assert summary["left out"]["further samples of a patient"] == 1
    assert summary["expression.input"] == "counts"
    tpm, tpm_summary = gdc.build_expression(download["expression_sample_sheet"], download["counts_dir"],
                                            value="tpm_unstranded", patients=["TCGA-A1-A0SB"])
    assert list(tpm.columns) == ["gene", "TCGA-A1-A0SB"] and tpm_summary["expression.input"] == "log"
    assert tpm["TCGA-A1-A0SB"].max() < np.log2(1e6 + 1)


def test_clinical_survival_receptors_and_subtype(download):
    clinical, summary = gdc.build_clinical(download["clinical"], download["bcr_patient"], download["subtypes"])
    clinical = clinical.set_index("patient")
    raw = pd.read_csv(download["clinical"], sep="\t", dtype=str).drop_duplicates("case_submitter_id")
    assert clinical.index.is_unique and len(clinical) == len(raw)  # one row per case, not per treatment
    for row in raw.itertuples():
        dead = row.vital_status == "Dead"
        days = float(row.days_to_death if dead else row.days_to_last_follow_up)
        assert clinical.loc[row.case_submitter_id, "survival_event"] == int(dead)
        assert clinical.loc[row.case_submitter_id, "survival_time"] == pytest.approx(days / (365.25 / 12), abs=1e-3)
    bcr = pd.read_csv(download["bcr_patient"], sep="\t", dtype=str).iloc[2:].set_index("bcr_patient_barcode")
    expected = bcr["er_status_by_ihc"].str.lower().where(bcr["er_status_by_ihc"].isin(["Positive", "Negative"]))
    assert clinical["er"].equals(expected.reindex(clinical.index).rename("er"))
    assert set(clinical["histology"].dropna()) == {"ductal", "lobular", "other"}
    assert clinical.loc["TCGA-A1-A0SB", "pam50"] == "LumA" and clinical.loc["TCGA-A2-A04P", "pam50"] == "LumB"
    assert summary["events"] == int((raw["vital_status"] == "Dead").sum())


def test_clinical_conflicting_rows_of_a_case_are_refused(download, tmp_path):
    table = pd.read_csv(download["clinical"], sep="\t", dtype=str, keep_default_na=False)
    table.loc[1, "vital_status"] = "Alive"  # the case's second row disagrees with its first
    table.to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    with pytest.raises(InputTableError, match="TCGA-A1-A0SB have conflicting 'vital_status'"):
        gdc.build_clinical(tmp_path / "clinical.tsv")


def test_cli_writes_a_cohort_the_sheet_loader_accepts(download, tmp_path):
    out = tmp_path / "cohort"
    assert gdc.main(["--slide-manifest", str(download["slide_manifest"]), "--slides-dir", str(download["slides_dir"]),
                     "--expression-sample-sheet", str(download["expression_sample_sheet"]),
                     "--counts-dir", str(download["counts_dir"]), "--clinical", str(download["clinical"]),
                     "--bcr-patient", str(download["bcr_patient"]), "--subtypes", str(download["subtypes"]),
                     "--out-dir", str(out)]) == 0
    sheet = load_sample_sheet(out / "samples.tsv", ["TCGA"])
    assert "TCGA-E2-A14N" not in set(sheet["patient"])  # no expression profile
    expression = pd.read_csv(out / "expression_TCGA.tsv", sep="\t")
    clinical = pd.read_csv(out / "clinical.tsv", sep="\t")
    assert set(expression.columns[1:]) == set(sheet["patient"]) == set(clinical["patient"])
    assert "input: counts" in (out / "config.yaml").read_text()


def test_max_mpp_leaves_out_coarse_scans(download):
    # every fixture slide is CMU-1-Small-Region, scanned at 0.499 µm/px (20x)
    kept, summary = gdc.build_sample_sheet(download["slide_manifest"], download["slides_dir"], max_mpp=0.6)
    assert len(kept) == 4 + len(BH) and summary["left out"]["scanned coarser than 0.6 µm/px"] == 0
    with pytest.raises(InputTableError, match="no diagnostic primary-tumour slide.*'scanned coarser than 0.35 µm/px': 12"):
        gdc.build_sample_sheet(download["slide_manifest"], download["slides_dir"], max_mpp=0.35)
