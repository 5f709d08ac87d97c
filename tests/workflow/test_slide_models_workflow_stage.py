"""Runs the slide_models rules alone (Snakemake, local) on synthetic upstream outputs:
feature stores with a planted tile state, training and prepared expression stores and
the split table. Checks each model's tables and tile store, that the planted gene is
recovered on the validation patients, and that a setting of one model reruns only that
model."""

import os
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

from emo.workflow.plan import plan
from slide_models_fixtures import synthetic_slides, write_expression
from workflow_runner import snakemake, stage_snakefile

REPO = Path(__file__).resolve().parents[2]
ENCODER = "efficientnet_lite0"


def build_inputs(wd: Path) -> dict:
    feature_dir = wd / "results" / "features" / ENCODER
    slides, expression, _ = synthetic_slides(feature_dir.parent / "tmp", n_patients=48, seed=2)
    rows = []
    for i, (sample, patient, path) in enumerate(slides):
        feature_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, feature_dir / f"{sample}.h5")
        rows.append({"sample": sample, "patient": patient, "cohort": "TCGA", "slide": f"slides/{sample}.svs",
                     "split": ["train", "train", "tune", "validation", "validation", "test"][int(patient[1:]) % 6]})
    sheet = pd.DataFrame(rows)
    (wd / "slides").mkdir()
    for slide in sheet["slide"]:
        (wd / slide).touch()   # slides must exist when the DAG is built; this stage reads only feature stores
    sheet.to_csv(wd / "samples.tsv", sep="\t", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update({"samples": "samples.tsv", "demo": {"enabled": False},
                   "cohorts": {"TCGA": {"expression": "unused.tsv", "role": "training", "reference": True}}})
    config["slide_models"].update({"folds": 3, "tile_genes": ["A"]})
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    cwd = os.getcwd()
    os.chdir(wd)
    try:
        splits = plan(config).patient_splits[["patient", "cohort", "split"]]
    finally:
        os.chdir(cwd)
    (wd / "results" / "splits").mkdir(parents=True)
    splits.to_csv(wd / "results" / "splits" / "patients.tsv", sep="\t", index=False)
    fit = splits[splits["split"].isin(["train", "tune", "validation"])]
    write_expression(wd / "results" / "expression" / "training.h5", expression.loc[fit["patient"]], fit)
    write_expression(wd / "results" / "expression" / "prepared.h5", expression, splits)
    stage_snakefile(wd, "slide_models.smk", targets="slide_models_targets()")
    return config


def run_stage(wd: Path, *extra):
    return snakemake(wd, "--configfile", str(wd / "config.yaml"), "--cores", "2", "--quiet", "progress", *extra,
                     snakefile=wd / "Snakefile", timeout=600, check=False)


@pytest.mark.slow
def test_slide_model_rules_run(tmp_path):
    config = build_inputs(tmp_path)
    result = run_stage(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sheet = pd.read_csv(tmp_path / "samples.tsv", sep="\t")
    for model in ("he2rna", "attention_mil"):
        out = tmp_path / "results" / "slide_models" / ENCODER / model
        patients = pd.read_csv(out / "patients.tsv", sep="\t")
        assert list(patients.columns) == ["patient", "A", "B", "C"]
        assert sorted(patients["patient"]) == sorted(sheet["patient"].unique())
        folds = pd.read_csv(out / "folds.tsv", sep="\t")
        assert set(folds["patient"]) == set(sheet.loc[sheet["split"].isin(["train", "tune"]), "patient"])
        pearson = pd.read_csv(out / "pearson.tsv", sep="\t").set_index(["set", "gene"])
        r_a = pearson.loc[("validation", "A"), "pearson_r"]
        assert r_a > 0.6, f"{model}: validation Pearson of the planted gene A is {r_a:.2f}"
        with h5py.File(out / "tiles.h5", "r") as h:
            assert [g.decode() if isinstance(g, bytes) else g for g in h["genes"][:]] == ["A"]
            assert len(h["slides"]) == len(sheet)
        assert (tmp_path / "benchmarks" / "slide_model_train" / f"{ENCODER}_{model}.tsv").is_file()
    # retuning attention MIL reruns its job only
    config["slide_models"]["attention_mil"]["hidden"] = 32
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    dry = run_stage(tmp_path, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    text = dry.stdout + dry.stderr
    assert "attention_mil" in text and "wildcards: encoder=efficientnet_lite0, model=he2rna" not in text
