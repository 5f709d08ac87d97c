"""DAG-level checks of workflow/rules/heterogeneity.smk (dry runs of the small e2e config)."""

from pathlib import Path

import pytest
import yaml

from workflow_runner import snakemake

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "test" / "config.yaml"


def dry_run(tmp_path, overrides=None, targets=()):
    (tmp_path / "config").symlink_to(REPO / "config")
    configs = [str(CONFIG)]
    if overrides:
        (tmp_path / "override.yaml").write_text(yaml.safe_dump(overrides))
        configs.append(str(tmp_path / "override.yaml"))
    return snakemake(tmp_path, "--configfile", *configs, "-n", "--quiet", "rules", *targets, timeout=300,
                     check=False)


@pytest.mark.slow
def test_dag_has_one_training_job_per_trait(tmp_path):
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip().startswith("heterogeneity_")}
    assert lines.get("heterogeneity_train") == "2"
    for rule in ("heterogeneity_splits", "heterogeneity_hti", "heterogeneity_survival"):
        assert lines.get(rule) == "1", out[-2000:]


@pytest.mark.slow
def test_trait_without_tile_predictions_fails_at_dag_build(tmp_path):
    result = dry_run(tmp_path, {"predictions": {"tile_genes": ["ESR1"]}, "spatial": {"enabled": False},
                                "heterogeneity": {"traits": ["MKI67", "PTPRC"]}})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "predictions.tile_genes" in out and "heterogeneity.continuous.source" in out, out[-2000:]
