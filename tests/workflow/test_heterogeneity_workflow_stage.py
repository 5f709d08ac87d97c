"""Runs the heterogeneity rules alone (Snakemake, local) on synthetic upstream outputs:
feature stores, prepared expression, tile predictions and a clinical table with a
planted HTI-survival link. Checks the outputs exist, are consistent and that the
HTI and survival tables are byte-identical on a forced rerun."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from emo import heterogeneity as het
from heterogeneity_fixtures import simulate_survival, synthetic_cohort
from workflow_runner import snakemake, stage_snakefile

REPO = Path(__file__).resolve().parents[2]

ENCODER = "efficientnet_lite0"


def build_inputs(wd: Path):
    sheet, paths, expr, truth = synthetic_cohort(wd / "tmp", n_patients=60, seed=5, signal=3.0)
    feature_dir = wd / "results" / "features" / ENCODER
    feature_dir.mkdir(parents=True)
    pred_dir = wd / "results" / "predictions" / ENCODER / "slides"
    pred_dir.mkdir(parents=True)
    for sample, path in paths.items():
        shutil.move(path, feature_dir / f"{sample}.h5")
        with h5py.File(feature_dir / f"{sample}.h5", "r") as f:
            coords = f["coords"][...]
            feats = f["features"][...]
        with h5py.File(pred_dir / f"{sample}.h5", "w") as p:
            p.create_dataset("tiles/values", data=feats[:, [0, 1, 2]].astype(np.float32))
            p.create_dataset("tiles/genes", data=np.array(["A", "B", "C"], dtype=object), dtype=h5py.string_dtype())
            p.create_dataset("coords", data=coords)
    patients = sorted(expr.index)
    (wd / "results" / "expression").mkdir(parents=True)
    with h5py.File(wd / "results" / "expression" / "prepared.h5", "w") as h:
        h.create_dataset("values", data=expr.loc[patients, ["A", "B"]].to_numpy(np.float32))
        h.create_dataset("patients", data=np.array(patients, dtype=object), dtype=h5py.string_dtype())
        h.create_dataset("genes", data=np.array(["A", "B"], dtype=object), dtype=h5py.string_dtype())
    sheet = sheet.assign(cohort="TCGA", slide=[f"slides/{s}.svs" for s in sheet["sample"]])
    # slides must exist when the DAG is built; this stage reads only their feature stores
    (wd / "slides").mkdir(exist_ok=True)
    for slide in sheet["slide"]:
        (wd / slide).touch()
    sheet.to_csv(wd / "samples.tsv", sep="\t", index=False)
    first = sheet.drop_duplicates("patient").set_index("patient")["sample"]
    true_hti = np.array([het.hti(truth[first[p]]) for p in patients])
    time, event = simulate_survival(true_hti, 3.0, seed=1)
    rng = np.random.default_rng(0)
    pd.DataFrame({"patient": patients, "age": rng.normal(60, 10, len(patients)).round(),
                  "er": rng.choice(["positive", "negative"], len(patients)), "her2": "negative",
                  "survival_time": time, "survival_event": event}).to_csv(wd / "clinical.tsv", sep="\t", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update({
        "samples": "samples.tsv", "clinical": "clinical.tsv",
        "cohorts": {"TCGA": {"expression": "unused.tsv", "role": "training", "reference": True}},
        "demo": {"enabled": False},
    })
    config["heterogeneity"] = {**config.get("heterogeneity", {}), "traits": ["A", "B"], "test_fraction": 0.2,
                               "classifier": {"hidden": 0, "max_epochs": 5, "evals_per_epoch": 2},
                               "figure_slides": 4}
    # this stage alone: no tumour-regions stage, so no composition entropy to relate to survival
    config["tumour_regions"] = {**config["tumour_regions"], "enabled": False}
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    # common.smk + heterogeneity.smk only, so the upstream files are plain inputs
    stage_snakefile(wd, "heterogeneity.smk", targets="heterogeneity_targets()")


def run_stage(wd: Path, *extra):
    return snakemake(wd, "--configfile", str(wd / "config.yaml"), "--cores", "2", "--quiet", "progress", *extra,
                     snakefile=wd / "Snakefile", timeout=900, check=False)


@pytest.mark.slow
def test_heterogeneity_rules_run(tmp_path):
    build_inputs(tmp_path)
    result = run_stage(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "results" / "heterogeneity" / ENCODER
    hti = pd.read_csv(out / "hti.tsv", sep="\t")
    assert len(hti) == len(pd.read_csv(tmp_path / "samples.tsv", sep="\t"))
    assert hti["hti"].between(0, 1).all() and hti["hti_continuous"].between(0, 1).all()
    for trait in ("A", "B"):
        auc = pd.read_csv(out / "traits" / trait / "auc.tsv", sep="\t")
        assert set(auc["set"]) == {"test", "ood_near", "ood_all"}
    lr = pd.read_csv(out / "survival" / "logrank.tsv", sep="\t").iloc[0]
    patients = pd.read_csv(out / "survival" / "patients.tsv", sep="\t")
    assert lr["n_high"] + lr["n_low"] == len(patients) == hti.loc[hti["survival_eligible"], "patient"].nunique()
    cox = pd.read_csv(out / "survival" / "cox.tsv", sep="\t")
    assert cox["covariate"].iloc[0] == "hti" and "her2: constant" in cox["dropped_covariates"].iloc[0]
    for figure in (out / "heterogeneity_maps.png", out / "survival" / "km.png"):
        assert figure.stat().st_size > 1000
    for log in ("heterogeneity_hti/heterogeneity_hti.log", "heterogeneity_train/A.log"):
        assert (tmp_path / "logs" / log).is_file()
    tables = [out / "hti.tsv", *sorted((out / "survival").glob("*.tsv"))]
    before = {p: p.read_bytes() for p in tables}
    rerun = run_stage(tmp_path, "--forcerun", "heterogeneity_hti")  # trait tables: see unit tests
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {p: p.read_bytes() for p in tables} == before
