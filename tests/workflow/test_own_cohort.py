"""The README's command for one's own cohort, run verbatim in folders outside the
repository: a cohort folder (sheet with slide paths relative to it, expression,
clinical table) and an empty run folder holding only the user's config."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from slurm_fixtures import finished_demo
from workflow_runner import REPO_ROOT

pytestmark = pytest.mark.slow

ENCODER = "efficientnet_lite0"


def readme_command() -> list[str]:
    """The fenced block after the own-cohort marker in README.md, as argv."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- own-cohort command:.*?-->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its own-cohort command block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    # the README's placeholders: the checkout and the number of cores
    return [word.replace("/path/to/emo", str(REPO_ROOT)) if word != "N" else "2"
            for word in shlex.split(lines[0])]


def user_cohort(small_demo_run: Path, dest: Path) -> Path:
    """A hospital-like cohort from the small demo's slides and tables, renamed: one
    training cohort (the demo's TCGA patients) and one external (its ABIM patients)."""
    demo = small_demo_run / "data" / "demo_test"
    sheet = pd.read_csv(small_demo_run / "config" / "test" / "samples.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    sheet = sheet[sheet["cohort"].isin(["TCGA", "ABIM"])].copy()
    (dest / "slides").mkdir(parents=True)
    for sample, slide in zip(sheet["sample"], sheet["slide"]):
        shutil.copy2(small_demo_run / slide, dest / "slides" / Path(slide).name)
    sheet["slide"] = ["slides/" + Path(s).name for s in sheet["slide"]]  # relative to the sheet
    sheet["cohort"] = sheet["cohort"].map({"TCGA": "HOSPITAL", "ABIM": "EXTERNAL"})
    sheet.to_csv(dest / "samples.tsv", sep="\t", index=False)
    shutil.copy2(demo / "expression_TCGA.tsv", dest / "expression.tsv")
    shutil.copy2(demo / "expression_ABIM.tsv", dest / "expression_external.tsv")
    clinical = pd.read_csv(demo / "clinical.tsv", sep="\t", dtype=str, keep_default_na=False)
    clinical[clinical["patient"].isin(sheet["patient"])].to_csv(dest / "clinical.tsv", sep="\t", index=False)
    return dest


def test_readme_command_runs_a_cohort_outside_the_repository(request, tmp_path):
    cohort = user_cohort(finished_demo(request), tmp_path / "my_cohort")
    run = tmp_path / "run"
    run.mkdir()
    # what a user writes: paths relative to the run folder, the training schedule of the
    # small test config (short, for CI), no heterogeneity traits, batched per-slide jobs
    small = yaml.safe_load((REPO_ROOT / "config" / "test" / "config.yaml").read_text())
    (run / "my_config.yaml").write_text(yaml.safe_dump({
        "samples": "../my_cohort/samples.tsv",
        "clinical": "../my_cohort/clinical.tsv",
        "cohorts": {"HOSPITAL": {"expression": "../my_cohort/expression.tsv", "role": "training",
                                 "reference": True},
                    "EXTERNAL": {"expression": "../my_cohort/expression_external.tsv", "role": "external"}},
        "heterogeneity": {"enabled": False},
        # small slides on one machine: several slides per job (docs/configuration.md)
        "slide_batches": 4,
        "gene_models": small["gene_models"],
        "statistics": small.get("statistics", {}),
    }, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["timeout", "-s", "KILL", "1500", *readme_command()], cwd=run, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    # the user's cohorts only (the demo config was replaced, not merged)
    splits = pd.read_csv(run / "results" / "splits" / "patients.tsv", sep="\t")
    assert set(splits["cohort"]) == {"HOSPITAL", "EXTERNAL"}
    sheet = pd.read_csv(cohort / "samples.tsv", sep="\t")
    for sample in sheet["sample"]:
        assert (run / "results" / "tiles" / f"{sample}.h5").is_file(), sample
    patients = pd.read_csv(run / "results" / "predictions" / ENCODER / "patients.tsv", sep="\t")
    assert set(sheet["patient"]) <= set(patients["patient"])
    validation = pd.read_csv(run / "results" / "statistics" / ENCODER / "validation.tsv", sep="\t")
    assert len(validation) > 0 and validation["selected"].any()
    assert not (run / "data").exists(), "the demo generator ran in a user's folder"
    # nothing left to do
    again = subprocess.run([*readme_command(), "-n"], cwd=run, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


def test_readme_command_names_a_missing_slide_before_any_job(tmp_path):
    cohort = tmp_path / "my_cohort"
    cohort.mkdir()
    pd.DataFrame({"sample": ["S1"], "patient": ["P1"], "cohort": ["HOSPITAL"], "slide": ["slides/S1.svs"]}).to_csv(
        cohort / "samples.tsv", sep="\t", index=False)
    pd.DataFrame({"gene": ["A"], "P1": [1.0]}).to_csv(cohort / "expression.tsv", sep="\t", index=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "my_config.yaml").write_text(yaml.safe_dump({
        "samples": "../my_cohort/samples.tsv",
        "cohorts": {"HOSPITAL": {"expression": "../my_cohort/expression.tsv", "role": "training", "reference": True}},
        "heterogeneity": {"enabled": False}}))
    result = subprocess.run(readme_command(), cwd=run, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "S1:" in out and str(cohort / "slides" / "S1.svs") in out, out[-3000:]
    assert not (run / "results").exists() and not (run / "logs").exists()
