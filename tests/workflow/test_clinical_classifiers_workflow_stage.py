"""Runs the clinical_classifiers rule alone (Snakemake, local) on synthetic upstream
outputs (feature stores with colour/texture descriptors, the split table, a clinical
table in its own column names mapped by clinical_mapping) and checks its tables,
figures and the job's benchmark (the stage's cost)."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from classifiers_fixtures import clinical_cohort
from workflow_runner import snakemake, stage_snakefile

REPO = Path(__file__).resolve().parents[2]
ENCODER = "efficientnet_lite0"


def build_inputs(wd: Path) -> None:
    features = wd / "results" / "features" / ENCODER
    sheet, _, clinical, splits = clinical_cohort(features, n_patients=60, tiles=40)
    sheet = sheet.assign(cohort="TCGA", slide=[f"slides/{s}.svs" for s in sheet["sample"]])
    (wd / "slides").mkdir()
    for slide in sheet["slide"]:
        (wd / slide).touch()  # slides must exist when the DAG is built; the stage reads features only
    sheet.to_csv(wd / "samples.tsv", sep="\t", index=False)
    (wd / "results" / "splits").mkdir(parents=True)
    splits.assign(cohort="TCGA", split_source="sample_sheet", n_slides=1).to_csv(
        wd / "results" / "splits" / "patients.tsv", sep="\t", index=False)
    clinical.rename(columns={"er": "er_status"}).replace({"positive": "Pos", "negative": "Neg"}).to_csv(
        wd / "clinical.tsv", sep="\t", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update({
        "samples": "samples.tsv", "clinical": "clinical.tsv",
        "clinical_mapping": {"columns": {"er": "er_status"}, "values": {"er": {"Pos": "positive", "Neg": "negative"}}},
        "cohorts": {"TCGA": {"expression": "unused.tsv", "role": "training", "reference": True}},
        "demo": {"enabled": False},
    })
    config["clinical_classifiers"] = {**config["clinical_classifiers"], "tiles_per_slide": 20, "device": "cpu"}
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    stage_snakefile(wd, "clinical_classifiers.smk", targets="clinical_classifiers_targets()")


@pytest.mark.slow
def test_clinical_classifiers_rule_runs(tmp_path):
    build_inputs(tmp_path)
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "--quiet",
                       "progress", snakefile=tmp_path / "Snakefile", timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "results" / "clinical_classifiers" / ENCODER
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t", keep_default_na=False)
    assert sorted(set(metrics["label"])) == ["er", "pam50"]  # labels: null = the table's label columns
    pooled = metrics[(metrics["set"] == "heldout") & (metrics["level"] == "patient")]
    assert pooled.loc[pooled["label"] == "er", "value"].astype(float).iloc[0] > 0.7  # planted signal
    assert (pooled["metric"] == "top2_accuracy").sum() == 1
    status = pd.read_csv(out / "labels.tsv", sep="\t")
    assert list(status["status"]) == ["trained", "trained"]
    for name in ("patients.tsv", "confusion.tsv", "models.pt", "roc.png", "confusion.png", "metrics.tsv.json"):
        assert (out / name).stat().st_size > 0, name
    benchmark = pd.read_csv(tmp_path / "benchmarks" / "clinical_classifiers" / "clinical_classifiers.tsv", sep="\t")
    print(f"\nclinical_classifiers job: {benchmark['s'].iloc[0]:.1f} s wall, "
          f"{benchmark['cpu_time'].iloc[0]:.1f} s CPU (60 patients x 20 tiles)")
