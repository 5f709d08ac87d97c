"""Demo rules in the workflow: DAG of `demo_cohort` and DAG-build-time errors."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from workflow_runner import make_workspace, snakemake


def _job_counts(stdout: str) -> dict[str, int]:
    block = stdout.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


@pytest.mark.slow
def test_demo_cohort_dag(tmp_path):
    config = make_workspace(tmp_path)
    result = snakemake(tmp_path, "--configfile", str(config), "-n", "demo_cohort")
    sheet = pd.read_csv(tmp_path / "config" / "test" / "samples.tsv", sep="\t")
    counts = _job_counts(result.stdout)
    assert counts["demo_slide"] == len(sheet)
    assert counts["demo_tables"] == 1 and counts["demo_cohort"] == 1


def test_foreign_sample_in_demo_folder_fails_at_dag_build(tmp_path):
    config = make_workspace(tmp_path)
    sheet_path = tmp_path / "config" / "test" / "samples.tsv"
    sheet = pd.read_csv(sheet_path, sep="\t", dtype=str, keep_default_na=False)
    row = sheet.iloc[0].copy()
    row["sample"], row["slide"] = "TCGA-999-A", "data/demo_test/slides/TCGA-999-A.svs"
    pd.concat([sheet, row.to_frame().T]).to_csv(sheet_path, sep="\t", index=False)
    result = snakemake(tmp_path, "--configfile", str(config), "-n", "demo_cohort", check=False)
    assert result.returncode != 0
    assert "TCGA-999-A" in result.stdout + result.stderr and "python -m emo.demo sheet" in result.stdout + result.stderr


def test_demo_cohort_not_in_cohorts_fails(tmp_path):
    config = make_workspace(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["demo"]["patients"]["EXTRA"] = 3
    config.write_text(yaml.safe_dump(data))
    result = snakemake(tmp_path, "--configfile", str(config), "-n", "demo_cohort", check=False)
    assert result.returncode != 0
    assert "EXTRA" in result.stdout + result.stderr and "demo.patients" in result.stdout + result.stderr


def _workspace_with_clinical(tmp_path, rows: str):
    """A small-demo workspace whose clinical table (normally written by the demo) is ``rows``."""
    config = make_workspace(tmp_path)
    clinical = tmp_path / "data" / "demo_test" / "clinical.tsv"
    clinical.parent.mkdir(parents=True)
    clinical.write_text(rows)
    return config


def test_text_survival_event_fails_at_dag_build(tmp_path):
    """The survival columns are checked when the DAG is built (PLAN.check_survival_clinical in
    heterogeneity.smk), so text codes fail before any job instead of a survival run on no patient."""
    config = _workspace_with_clinical(tmp_path, "patient\tsurvival_time\tsurvival_event\tpam50\ter\tpr\ther2\n"
                                      "P1\t10\tdeceased\tLumA\tpositive\tpositive\tnegative\n"
                                      "P2\t20\tliving\tBasal\tnegative\tnegative\tnegative\n")
    result = snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "column 'survival_event'" in output and "recode 'deceased' as 1, 'living' as 0" in output
    assert "Job stats" not in output


def test_clinical_mapping_at_dag_build(tmp_path):
    """A clinical table in its own names and codings is accepted at DAG build through config key
    clinical_mapping; a mapping naming one table column twice is refused before any job."""
    # ki67: the demo config's statistics.ki67_column, which an existing table must have
    config = _workspace_with_clinical(tmp_path, "patient\tos_time\tos_event\tpam50\ter_status\tpr\ther2\tki67\n"
                                      "P1\t10\tdead\tLumA\tPositive\tpositive\tnegative\t12.5\n"
                                      "P2\t20\talive\tBasal\tNegative\tnegative\tnegative\t40\n")
    data = yaml.safe_load(config.read_text())
    data["clinical_mapping"] = {
        "columns": {"survival_time": "os_time", "survival_event": "os_event", "er": "er_status"},
        "values": {"survival_event": {"dead": 1, "alive": 0}, "er": {"Positive": "positive", "Negative": "negative"}}}
    config.write_text(yaml.safe_dump(data))
    result = snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job stats" in result.stdout
    data["clinical_mapping"]["columns"]["pr"] = "er_status"
    config.write_text(yaml.safe_dump(data))
    result = snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "'er_status' is mapped to more than one pipeline column" in output and "clinical_mapping.columns.pr" in output
    assert "Job stats" not in output
