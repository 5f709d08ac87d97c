"""The gene_statistics rules run under Snakemake on synthetic upstream tables, and a
statistics-only config change reruns only statistics rules (slow: ~1-2 min)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from statistics_fixtures import make_inputs
from workflow_runner import snakemake

STAT_RULES = ["gene_statistics_validation", "gene_statistics_validation_ridge",
              "gene_statistics_validation_colour_texture", "gene_statistics_model_comparison",
              "gene_statistics_testing", "gene_statistics_proliferation", "gene_statistics_markers",
              "gene_statistics_pam50", "gene_statistics_er_models", "gene_statistics_figures"]
ENCODER = "efficientnet_lite0"


def _write_workdir(wd: Path, statistics_yaml: str) -> list[str]:
    synth = make_inputs(wd, n_training=160, n_external=60)
    # Predictions live under the encoder's folder; damped copies stand in for the two baselines.
    pred_dir = wd / "results/predictions" / ENCODER
    pred_dir.mkdir(parents=True, exist_ok=True)
    synth.predictions.rename(pred_dir / "patients.tsv")
    ridge = pd.read_csv(pred_dir / "patients.tsv", sep="\t")
    ridge.iloc[:, 1:] = ridge.iloc[:, 1:] * 0.5 + 3.0
    ridge.to_csv(pred_dir / "patients_ridge.tsv", sep="\t", index=False)
    ridge.iloc[:, 1:] = ridge.iloc[:, 1:] * 0.5 + 1.0
    ridge.to_csv(pred_dir / "patients_colour_texture.tsv", sep="\t", index=False)
    t = synth.split_table
    pd.DataFrame({"sample": t["patient"] + "-01", "patient": t["patient"], "cohort": t["cohort"],
                  "slide": "slides/" + t["patient"] + ".svs"}).to_csv(wd / "samples.tsv", sep="\t", index=False)
    # slides must exist when the DAG is built; these rules read only the predictions
    (wd / "slides").mkdir(exist_ok=True)
    for patient in t["patient"]:
        (wd / "slides" / f"{patient}.svs").touch()
    for cohort in ("TCGA", "ABIM"):   # other stages read the matrices when the DAG is built
        m = synth.measured[t.set_index("patient").loc[synth.measured.index, "cohort"] == cohort].T
        m.index.name = "gene"
        m.reset_index().to_csv(wd / f"data/expr_{cohort}.tsv", sep="\t", index=False)
    (wd / "config.yaml").write_text(f"""
samples: samples.tsv
clinical: data/clinical.tsv
cohorts:
  TCGA: {{expression: data/expr_TCGA.tsv, role: training, reference: true}}
  ABIM: {{expression: data/expr_ABIM.tsv, role: external}}
demo: {{enabled: false}}
tiling: {{}}
expression: {{}}
splits: {{seed: 1}}
features: {{encoder: {ENCODER}}}
heterogeneity: {{enabled: false}}
spatial: {{enabled: false}}
{statistics_yaml}
""")
    return [f"results/statistics/{ENCODER}/{name}" for name in (
        "model_comparison.tsv", "test.tsv", "external.tsv", "markers_tests.tsv", "pam50_clustering.tsv",
        "er_summary.tsv", "proliferation.tsv", "figures/validation_histograms.png")]


def _snakemake(wd, targets, *extra):
    return snakemake(wd, "--configfile", str(wd / "config.yaml"), "--cores", "2", "--allowed-rules", *STAT_RULES,
                     *extra, "--", *targets, check=False)


def _jobs(stdout: str) -> set[str]:
    """Rule names of the first 'Job stats' table of a dry run."""
    lines = stdout.split("Job stats:", 1)[1].splitlines() if "Job stats:" in stdout else []
    rules = set()
    for line in lines[3:]:
        name = line.split()[0] if line.split() else ""
        if name in ("", "total"):
            break
        rules.add(name)
    return rules


@pytest.mark.slow
def test_statistics_rules_run_and_rerun_minimally(tmp_path):
    statistics = "statistics:\n  pam50: {n_permutations: 50, n_bootstrap: 50}\n  figures: {top_n: 6}\n"
    targets = _write_workdir(tmp_path, statistics)
    run = _snakemake(tmp_path, targets)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0, target
    validation = pd.read_csv(tmp_path / f"results/statistics/{ENCODER}/validation.tsv", sep="\t")
    assert validation["selected"].any()
    comparison = pd.read_csv(tmp_path / f"results/statistics/{ENCODER}/model_comparison.tsv", sep="\t")
    assert list(comparison["model"]) == ["emo", "ridge", "colour_texture"]
    assert comparison["n_genes"].nunique() == 1 and comparison["n_genes"].iloc[0] == len(validation)
    # A figure-only key reruns only the figures rule; a selection key reruns selection
    # and what depends on it, never an upstream stage.
    (tmp_path / "config.yaml").write_text((tmp_path / "config.yaml").read_text().replace("top_n: 6", "top_n: 5"))
    dry = _snakemake(tmp_path, targets, "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert _jobs(dry.stdout) == {"gene_statistics_figures"}
    (tmp_path / "config.yaml").write_text((tmp_path / "config.yaml").read_text().replace(
        "statistics:\n", "statistics:\n  selection: {min_r2: 0.3}\n"))
    dry = _snakemake(tmp_path, targets, "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    rerun = _jobs(dry.stdout)
    assert {"gene_statistics_validation", "gene_statistics_validation_ridge", "gene_statistics_testing",
            "gene_statistics_er_models", "gene_statistics_figures"} <= rerun
    assert "gene_statistics_pam50" not in rerun and rerun <= set(STAT_RULES)
