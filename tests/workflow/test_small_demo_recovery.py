"""Recovery on the small end-to-end demo (the session's ``small_demo_run``, via
``finished_demo``): the CI-sized
version of the full demo's acceptance check (tests/workflow/test_demo_acceptance.py).

The small demo has 46 patients, of whom about 11 are validation patients, so the
thresholds here are set for that size and asserted on the strong stratum only (a planted
gene of oracle R² 0.9 reaches BH < 0.05 in 11 patients about half the time); moderate and
weak strata are printed. Every model is
reported beside the two ridge baselines (encoder features; 40 colour/texture
descriptors) on the same validation patients, with the planted oracle R².
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from demo_recovery import MODELS, planted_and_validated, recovery_by, report_lines, slide_model_tables
from slurm_fixtures import finished_demo

pytestmark = pytest.mark.slow

ENCODER = "efficientnet_lite0"


@pytest.fixture(scope="module")
def recovery(request):
    workdir = finished_demo(request)
    genes, tables = planted_and_validated(workdir, "data/demo_test", ENCODER)
    assert len(genes) >= 50, len(genes)
    return genes, tables, workdir


def _report(capsys, lines):
    with capsys.disabled():
        print("\n" + "\n".join(f"    {line}" for line in lines))


def test_planted_genes_recovered_beside_both_baselines(recovery, capsys):
    genes, tables, _ = recovery
    summaries = {model: recovery_by(genes, table, "stratum") for model, table in tables.items()}
    _report(capsys, [f"validation patients: {int(tables['emo']['n'].max())}; genes: {len(genes)}",
                     *report_lines(summaries)])
    emo = summaries["emo"]
    # strong planted genes are found and ranked; nulls are not
    assert emo.loc["strong", "n"] >= 15
    assert emo.loc["strong", "sensitivity"] >= 0.35
    assert emo.loc["strong", "mean_spearman"] >= 0.45
    assert emo.loc["strong", "mean_spearman"] > emo.loc["null", "mean_spearman"] + 0.3
    for model, summary in summaries.items():
        assert summary.loc["null", "sensitivity"] <= 0.2, model
    # the baselines were computed on the same patients and genes, and differ from the models
    for model in ("ridge", "colour_texture"):
        assert (tables[model]["n"] == tables["emo"]["n"]).all(), model
        assert not np.allclose(tables[model]["spearman_r"], tables["emo"]["spearman_r"]), model


def test_model_comparison_lists_models_and_baselines(recovery):
    genes, tables, workdir = recovery
    comparison = pd.read_csv(workdir / "results/statistics" / ENCODER / "model_comparison.tsv", sep="\t")
    assert list(comparison["model"]) == list(MODELS)
    for model, table in tables.items():
        row = comparison.set_index("model").loc[model]
        assert row["n_padj_below_0.05"] == int((table["padj_bh"] < 0.05).sum()), model
        assert row["median_spearman_r"] == pytest.approx(table["spearman_r"].median()), model


def test_heads_train_past_the_first_epochs(recovery, capsys):
    """Genes with a planted image signal train past the first epochs; genes with none
    keep the untrained head (the training mean, epoch 0) more often."""
    genes, _, workdir = recovery
    summary = pd.read_csv(workdir / "results/models" / ENCODER / "training_summary.tsv", sep="\t").set_index("gene")
    best = summary["best_epoch"]
    strong = best[best.index.intersection(genes.index[genes["stratum"] == "strong"])]
    null = best[best.index.intersection(genes.index[genes["stratum"] == "null"])]
    _report(capsys, [f"best epochs over {len(best)} genes: median {best.median():.0f}, "
                     f"share <= 2: {(best <= 2).mean():.2f}, max {best.max()}",
                     f"strong planted genes ({len(strong)}): median {strong.median():.0f}, share <= 2 "
                     f"{(strong <= 2).mean():.2f}; null genes ({len(null)}): share at epoch 0 {(null == 0).mean():.2f}"])
    assert len(strong) >= 5 and len(null) >= 5
    assert strong.median() > 2
    assert (strong <= 2).mean() < 0.5
    assert (null == 0).mean() > (strong == 0).mean()


def test_slide_models_recover_planted_genes(recovery, capsys):
    """HE2RNA and attention MIL (config slide_models.models) on the same validation
    patients: strong planted genes found, nulls not; the comparison lists every model."""
    genes, tables, workdir = recovery
    slide = slide_model_tables(workdir, ENCODER, genes.index)
    assert sorted(slide) == ["attention_mil", "he2rna"]
    summaries = {model: recovery_by(genes, table, "stratum") for model, table in slide.items()}
    _report(capsys, report_lines(summaries))
    for model, summary in summaries.items():
        assert summary.loc["strong", "sensitivity"] >= 0.35, model
        assert summary.loc["strong", "mean_spearman"] >= 0.45, model
        assert summary.loc["null", "sensitivity"] <= 0.2, model
        assert (slide[model]["n"] == tables["emo"]["n"]).all(), model
    comparison = pd.read_csv(workdir / "results/statistics" / ENCODER / "models" / "comparison.tsv", sep="\t")
    assert list(comparison["model"]) == [*MODELS, "he2rna", "attention_mil"]
