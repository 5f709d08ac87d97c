"""Runs the fusion_classifiers rule alone (Snakemake, local) on synthetic upstream outputs
(feature stores, prepared expression, split table, a clinical table in its own column
names mapped by clinical_mapping) and checks its tables, store, figures and the job's
benchmark (the stage's cost)."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from fusion_fixtures import fusion_cohort
from workflow_runner import snakemake, stage_snakefile

REPO = Path(__file__).resolve().parents[2]
ENCODER = "efficientnet_lite0"


def build_inputs(wd: Path) -> None:
    from emo.stores.expression import write_prepared_store

    features = wd / "results" / "features" / ENCODER
    sheet, _, expression, clinical, splits = fusion_cohort(features, n_patients=48, tiles=12, dim=6, genes=8,
                                                           image_signal=1.5, expression_signal=2.0)
    sheet = sheet.assign(cohort=[("EXT" if splits.set_index("patient").loc[p, "split"] == "external" else "TCGA")
                                 for p in sheet["patient"]],
                         slide=[f"slides/{s}.svs" for s in sheet["sample"]])
    (wd / "slides").mkdir()
    for slide in sheet["slide"]:
        (wd / slide).touch()  # slides must exist when the DAG is built; the stage reads features only
    sheet.to_csv(wd / "samples.tsv", sep="\t", index=False)
    (wd / "results" / "splits").mkdir(parents=True)
    cohort_of = dict(zip(sheet["patient"], sheet["cohort"]))
    splits.assign(cohort=splits["patient"].map(cohort_of), split_source="sample_sheet", n_slides=1).to_csv(
        wd / "results" / "splits" / "patients.tsv", sep="\t", index=False)
    patients = list(expression.index)
    (wd / "results" / "expression").mkdir(parents=True)
    write_prepared_store(wd / "results" / "expression" / "prepared.h5",
                         {"values": expression.to_numpy(), "patients": patients, "genes": list(expression.columns),
                          "cohort": [cohort_of[p] for p in patients],
                          "split": list(splits.set_index("patient").loc[patients, "split"]),
                          "offsets": {}, "reference": "TCGA"}, {"code_version": "test"})
    clinical.rename(columns={"her2": "her2_status"}).to_csv(wd / "clinical.tsv", sep="\t", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update({
        "samples": "samples.tsv", "clinical": "clinical.tsv",
        "clinical_mapping": {"columns": {"her2": "her2_status"}},
        "cohorts": {"TCGA": {"expression": "unused.tsv", "role": "training", "reference": True},
                    "EXT": {"expression": "unused2.tsv", "role": "external"}},
        "demo": {"enabled": False},
    })
    config["fusion"] = {**config["fusion"], "patches_per_patient": 8, "device": "cpu", "bootstrap": 200}
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    stage_snakefile(wd, "fusion_classifiers.smk", targets="fusion_classifiers_targets()")


@pytest.mark.slow
def test_fusion_rule_runs(tmp_path):
    build_inputs(tmp_path)
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "--quiet",
                       "progress", snakefile=tmp_path / "Snakefile", timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "results" / "statistics" / ENCODER / "fusion"
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert sorted(set(metrics["target"])) == ["her2", "pam50", "pam50:Basal", "pam50:LumB"]
    assert set(metrics["set"]) == {"cv", "external"} and metrics["model"].nunique() == 5
    targets = pd.read_csv(out / "targets.tsv", sep="\t")
    assert (targets["status"] == "trained").all()
    for name in ("summary.tsv", "predictions.tsv", "confusion.tsv", "folds.tsv", "attention.h5", "metrics.png",
                 "confusion.png", "attention.png", "metrics.tsv.json", "missing.tsv.json"):
        assert (out / name).stat().st_size > 0, name
    benchmark = pd.read_csv(tmp_path / "benchmarks" / "fusion_classifiers" / "fusion_classifiers.tsv", sep="\t")
    print(f"\nfusion_classifiers job: {benchmark['s'].iloc[0]:.1f} s wall, "
          f"{benchmark['cpu_time'].iloc[0]:.1f} s CPU (48 patients, 4 targets x 5 models x 5 folds)")
