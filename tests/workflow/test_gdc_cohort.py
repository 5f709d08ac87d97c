"""A TCGA cohort built from a download in the GDC's layouts (`python -m emo.gdc`) is
accepted by the pipeline: the DAG of the whole workflow builds on it (dry run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from gdc_fixtures import write_gdc_download
from workflow_runner import REPO_ROOT, snakemake


def test_built_cohort_passes_the_dry_run(tmp_path):
    download = write_gdc_download(tmp_path / "gdc")
    out = tmp_path / "cohort"
    args = []
    for key in ("slide_manifest", "slides_dir", "expression_sample_sheet", "counts_dir", "clinical",
                "bcr_patient", "subtypes"):
        args += [f"--{key.replace('_', '-')}", str(download[key])]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "scripts")}
    built = subprocess.run([sys.executable, "-m", "emo.gdc", *args, "--out-dir", str(out)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    run = tmp_path / "run"
    run.mkdir()
    result = snakemake(run, "--configfile", str(out / "config.yaml"), "-n", timeout=300)
    sheet = pd.read_csv(out / "samples.tsv", sep="\t")
    log = result.stdout + result.stderr
    # one tiling, feature and prediction job per built slide; nothing of the demo
    for rule in ("tile_slide", "extract_features", "predict_slide"):
        counts = [line.split() for line in log.splitlines() if line.split()[:1] == [rule]]
        assert counts and int(counts[0][1]) == len(sheet), (rule, log[-3000:])
    assert "demo_cohort" not in log
