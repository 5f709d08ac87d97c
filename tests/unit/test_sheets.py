"""Sample-sheet validation: errors name the row and column and say what to do."""

from __future__ import annotations

import pytest

from emo.errors import SampleSheetError
from emo.sheets import load_sample_sheet

HEADER = "sample\tpatient\tcohort\tslide\tmpp\tsplit\n"


def _write(tmp_path, rows, header=HEADER):
    path = tmp_path / "samples.tsv"
    path.write_text(header + "".join("\t".join(r) + "\n" for r in rows))
    return path


def test_valid_sheet_is_indexed_by_sample(tmp_path):
    path = _write(tmp_path, [("S1", "P1", "A", "s1.svs", "", ""), ("S2", "P1", "A", "s2.svs", "0.25", "test")])
    with pytest.raises(SampleSheetError, match="patient 'P1' has slides in different splits"):
        load_sample_sheet(path, ["A"])
    path = _write(tmp_path, [("S1", "P1", "A", "s1.svs", "", "test"), ("S2", "P2", "A", "s2.svs", "0.25", "")])
    sheet = load_sample_sheet(path, ["A"])
    assert list(sheet.index) == ["S1", "S2"]
    assert sheet.loc["S2", "mpp"] == "0.25"


@pytest.mark.parametrize("row, message", [
    (("S 1", "P1", "A", "x.svs", "", ""), r"row 1, column 'sample'"),
    (("S1", "", "A", "x.svs", "", ""), r"row 1, column 'patient': empty"),
    (("S1", "P1", "B", "x.svs", "", ""), r"row 1, column 'cohort': 'B' is not a cohort"),
    (("S1", "P1", "A", "x.svs", "-1", ""), r"row 1, column 'mpp'"),
    (("S1", "P1", "A", "x.svs", "abc", ""), r"row 1, column 'mpp'"),
    (("S1", "P1", "A", "x.svs", "", "training"), r"row 1, column 'split'"),
])
def test_bad_rows_name_row_and_column(tmp_path, row, message):
    with pytest.raises(SampleSheetError, match=message):
        load_sample_sheet(_write(tmp_path, [row]), ["A"])


def test_duplicate_sample_names_rows(tmp_path):
    path = _write(tmp_path, [("S1", "P1", "A", "a.svs", "", ""), ("S1", "P2", "A", "b.svs", "", "")])
    with pytest.raises(SampleSheetError, match=r"'S1' appears in rows \[1, 2\]"):
        load_sample_sheet(path, ["A"])


def test_missing_and_unknown_columns(tmp_path):
    with pytest.raises(SampleSheetError, match="missing column"):
        load_sample_sheet(_write(tmp_path, [("S1", "P1", "A")], header="sample\tpatient\tcohort\n"), ["A"])
    with pytest.raises(SampleSheetError, match="unknown column"):
        load_sample_sheet(_write(tmp_path, [("S1", "P1", "A", "x", "y")],
                                 header="sample\tpatient\tcohort\tslide\tstain\n"), ["A"])


def test_patient_in_two_cohorts(tmp_path):
    path = _write(tmp_path, [("S1", "P1", "A", "a.svs", "", ""), ("S2", "P1", "B", "b.svs", "", "")])
    with pytest.raises(SampleSheetError, match="patient 'P1' has slides in several cohorts"):
        load_sample_sheet(path, ["A", "B"])


def test_missing_sheet_names_config_key(tmp_path):
    with pytest.raises(SampleSheetError, match="config key 'samples'"):
        load_sample_sheet(tmp_path / "nope.tsv", ["A"])


def test_relative_slide_paths_resolve_next_to_the_sheet_then_in_the_working_directory(tmp_path, monkeypatch):
    from emo.errors import SampleSheetError
    from emo.sheets import resolve_slide_paths

    workdir, cohort = tmp_path / "run", tmp_path / "cohort"
    (cohort / "slides").mkdir(parents=True)
    (workdir / "data").mkdir(parents=True)
    (cohort / "slides" / "S1.svs").write_bytes(b"x")
    (workdir / "data" / "S2.svs").write_bytes(b"x")
    sheet_path = cohort / "samples.tsv"
    sheet_path.write_text("sample\tpatient\tcohort\tslide\nS1\tP1\tA\tslides/S1.svs\nS2\tP2\tA\tdata/S2.svs\n")
    monkeypatch.chdir(workdir)
    sheet = resolve_slide_paths(load_sample_sheet(sheet_path, ["A"]), sheet_path, require_existing=True)
    # next to the sheet (outside the working directory: absolute); in the working directory: relative
    assert sheet.loc["S1", "slide"] == str(cohort / "slides" / "S1.svs")
    assert sheet.loc["S2", "slide"] == "data/S2.svs"
    sheet_path.write_text(sheet_path.read_text() + "S3\tP3\tA\tslides/S3.svs\n")
    with pytest.raises(SampleSheetError, match=r"1 slide file\(s\) not found[\s\S]*S3: .*cohort/slides/S3.svs or "
                                               r".*run/slides/S3.svs"):
        resolve_slide_paths(load_sample_sheet(sheet_path, ["A"]), sheet_path, require_existing=True)
    # slides a rule of this run generates (the demo's) may be missing: working-directory path
    generated = resolve_slide_paths(load_sample_sheet(sheet_path, ["A"]), sheet_path, require_existing=False)
    assert generated.loc["S3", "slide"] == "slides/S3.svs"


@pytest.mark.parametrize("mpp, guess", [("25", "0.25"), ("250", "0.25"), ("0.005", "0.5"), ("50", "0.5")])
def test_implausible_mpp_is_refused_with_the_likely_value(tmp_path, mpp, guess):
    """25 (meant 0.25) once passed and tiled the slide into hundreds of thousands of tiny tiles."""
    path = _write(tmp_path, [("S1", "P1", "A", "a.svs", "0.5", ""), ("TCGA-01", "P2", "A", "b.svs", mpp, "")])
    with pytest.raises(SampleSheetError) as error:
        load_sample_sheet(path, ["A"])
    message = str(error.value)
    print(message)
    assert "row 2 (sample 'TCGA-01'), column 'mpp'" in message
    assert "0.05–5 µm/px" in message and f"did you mean {guess}?" in message


@pytest.mark.parametrize("mpp", ["0.05", "0.11", "2", "5"])
def test_plausible_mpp_range_is_inclusive(tmp_path, mpp):
    sheet = load_sample_sheet(_write(tmp_path, [("S1", "P1", "A", "a.svs", mpp, "")]), ["A"])
    assert sheet.loc["S1", "mpp"] == mpp


@pytest.mark.parametrize("separator, name", [(",", "comma"), (";", "semicolon")])
def test_comma_separated_sheet_says_it_must_be_tab_separated(tmp_path, separator, name):
    path = tmp_path / "samples.tsv"
    path.write_text(separator.join(["sample", "patient", "cohort", "slide"]) + "\n"
                    + separator.join(["S1", "P1", "A", "a.svs"]) + "\n")
    with pytest.raises(SampleSheetError) as error:
        load_sample_sheet(path, ["A"])
    message = str(error.value)
    print(message)
    assert f"is {name}-separated" in message and "must be tab-separated" in message
    assert "config key 'samples'" in message and "missing column" not in message


def test_optional_site_column(tmp_path):
    header = HEADER.rstrip("\n") + "\tsite\n"
    path = _write(tmp_path, [("S1", "P1", "A", "s1.svs", "", "", "A2"), ("S2", "P1", "A", "s2.svs", "", "", "B6")],
                  header)
    with pytest.raises(SampleSheetError, match=r"column 'site': patient 'P1' has slides from different .*A2"):
        load_sample_sheet(path, ["A"])
    path = _write(tmp_path, [("S1", "P1", "A", "s1.svs", "", "", "A2"), ("S2", "P2", "A", "s2.svs", "", "", "")],
                  header)
    assert list(load_sample_sheet(path, ["A"])["site"]) == ["A2", ""]
    assert list(load_sample_sheet(_write(tmp_path, [("S1", "P1", "A", "s1.svs", "", "")]), ["A"])["site"]) == [""]
