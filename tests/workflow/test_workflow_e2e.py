"""End-to-end: the small demo (config/test/config.yaml) through every rule."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import pytest
import yaml

from workflow_runner import REPO_ROOT, make_workspace, snakemake

# Rules that only collect targets and run no code (no log by design).
TARGET_ONLY_RULES = {"all", "demo_cohort"}
# Rules the demo (efficientnet_lite0, tiling geometry) never runs: tiling at another
# encoder geometry runs in tests/workflow/test_features_geometry.py.
OTHER_ENCODER_RULES = {"geometry_tile_slide"}
# Off in the demo config (slide_models.transfer.enabled: false); tests/unit/test_slide_models.py
# runs its library, and a run with it enabled is measured in docs/models.md.
# optional stages off in the demo configs (each has its own workflow test)
OFF_IN_DEMO_RULES = {"slide_model_transfer", "cnn_finetune_gene", "cnn_finetune_predictions"}


def _all_rules(workdir: Path, config: Path) -> list[str]:
    result = snakemake(workdir, "--configfile", str(config), "--list-rules")
    return sorted(line.split()[0] for line in result.stdout.splitlines() if line.strip())


@pytest.mark.slow
def test_every_rule_runs_and_logs(small_demo_run):
    config = small_demo_run / "config" / "test" / "config.yaml"
    rules = [r for r in _all_rules(small_demo_run, config)
             if r not in TARGET_ONLY_RULES | OTHER_ENCODER_RULES | OFF_IN_DEMO_RULES]
    assert len(rules) >= 8, rules
    missing = [r for r in rules if not any((small_demo_run / "logs" / r).glob("*"))]
    assert not missing, f"rules that never ran (no log): {missing}"
    bench_missing = [r for r in rules if not any((small_demo_run / "benchmarks" / r).glob("*.tsv"))]
    assert not bench_missing, f"rules without benchmark files: {bench_missing}"


@pytest.mark.slow
def test_stores_for_every_sample(small_demo_run):
    sheet = pd.read_csv(small_demo_run / "config" / "test" / "samples.tsv", sep="\t", dtype=str)
    encoder = "efficientnet_lite0"
    for sample in sheet["sample"]:
        tile_store = small_demo_run / "results" / "tiles" / f"{sample}.h5"
        feature_store = small_demo_run / "results" / "features" / encoder / f"{sample}.h5"
        with h5py.File(tile_store, "r") as tiles, h5py.File(feature_store, "r") as feats:
            coords = tiles["coords"][:]
            assert coords.shape[0] > 0, f"{sample}: no accepted tiles"
            np.testing.assert_array_equal(coords, feats["coords"][:])
            assert feats["features"].shape == (coords.shape[0], 1280)
            assert np.isfinite(feats["features"][:]).all()
            assert feats.attrs["encoder"] == encoder
            assert len(feats.attrs["weights_sha256"]) == 64
            # the peer layouts (config export.formats) hold the same tiles and features
            export = small_demo_run / "results" / "export"
            with h5py.File(export / "stamp" / encoder / f"{sample}.h5", "r") as stamp:
                np.testing.assert_array_equal(stamp["feats"][:], feats["features"][:])
            bag = torch.load(export / "clam" / encoder / "pt_files" / f"{sample}.pt", weights_only=True)
            np.testing.assert_array_equal(bag.numpy(), feats["features"][:])
            with h5py.File(export / "trident" / encoder / "patches" / f"{sample}_patches.h5", "r") as trident:
                np.testing.assert_array_equal(trident["coords"][:], coords)
    leftovers = [p for p in (small_demo_run / "results").rglob("*") if ".tmp" in p.name]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.mark.slow
def test_report_builds(small_demo_report):
    html = small_demo_report.read_text(errors="replace")
    assert len(html) > 10_000
    assert "<html" in html.lower()
    # the landing page (workflow/report/workflow.rst, then the run's headline numbers) and
    # one category per stage; in a browser: tests/workflow/test_report_browser.py
    assert "validates the predictions statistically" in html
    assert "Headline numbers of this run" in html
    for category in ("Tumour regions", "Gene models", "Gene statistics", "Spatial validation", "Heterogeneity"):
        assert category in html, category


def test_lint_is_clean(tmp_path):
    config = make_workspace(tmp_path)
    result = snakemake(tmp_path, "--configfile", str(config), "--lint", check=False)
    lints = re.findall(r"Lints for (rule \w+|snakefile .*)", result.stdout + result.stderr)
    assert result.returncode == 0 and not lints, result.stdout[-5000:] + result.stderr[-5000:]


def test_list_rules_lists_each_rule_once(tmp_path):
    """One rule per stage step: per-slide stages are one wildcard rule each (copies per
    slide batch exist only with slide_batches > 0, a local-only option)."""
    config = make_workspace(tmp_path)
    assert yaml.safe_load(config.read_text())["slide_batches"] == 0
    rules = _all_rules(tmp_path, config)
    assert len(rules) == len(set(rules)) >= 30, rules
    for stage in ("demo_slide", "tile_slide", "extract_features", "predict_slide"):
        assert [r for r in rules if r.startswith(stage)] == [stage], rules
