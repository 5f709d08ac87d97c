"""The per-rule run functions: outputs exist with the documented columns, sidecars,
byte-identical reruns (tables and figures), clear errors on bad configuration."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from emo import figures
from emo.errors import ConfigError, InputTableError
from emo.stats import settings
from emo.stats.clinical import run_markers, run_proliferation
from emo.stats.clustering import run_pam50
from emo.stats.er_models import run_er_models
from emo.stats.validation import run_testing, run_validation
from statistics_fixtures import make_inputs

COLUMNS = {
    "validation.tsv": ["gene", "n", "spearman_r", "spearman_p", "padj_bh", "r2_pred", "selected"],
    "selected_genes.tsv": ["gene", "n", "spearman_r", "padj_bh", "r2_pred"],
    "test.tsv": ["gene", "n", "spearman_r", "spearman_p", "padj_bonferroni", "r2_pred", "validated"],
    "external.tsv": ["cohort", "gene", "n", "spearman_r", "spearman_p", "padj_bonferroni", "validated"],
    "proliferation_scores.tsv": ["patient", "split", "cohort", "pam50", "pscore_measured", "pscore_predicted"],
    "proliferation.tsv": ["split", "cohort", "group", "n", "spearman_r", "spearman_p", "mean_measured",
                          "mean_predicted"],
    "proliferation_genes.tsv": ["gene", "modelled", "selected"],
    "markers_summary.tsv": ["gene", "status_column", "split", "cohort", "source", "group", "n", "mean", "median",
                            "sd"],
    "markers_tests.tsv": ["gene", "status_column", "split", "cohort", "source", "test", "n_groups", "n",
                          "statistic", "p"],
    "pam50_clusters.tsv": ["patient", "split", "cohort", "pam50", "cluster_measured", "cluster_predicted"],
    "pam50_clustering.tsv": ["split", "cohort", "comparison", "n", "n_genes", "n_clusters", "ari", "ci_low",
                             "ci_high", "p_permutation"],
    "er_models.tsv": ["split", "cohort", "gene", "n", "beta_er_measured", "p_measured", "padj_measured",
                      "beta_er_predicted", "p_predicted", "padj_predicted", "significant_measured",
                      "significant_predicted", "concordant"],
    "er_summary.tsv": ["split", "cohort", "n_patients", "n_er_positive", "n_er_negative", "n_genes", "covariates",
                       "dropped_covariates", "n_significant_measured", "n_significant_predicted", "n_concordant"],
}
FIGURES = ["histograms", "top_validation", "top_test", "top_external", "proliferation_figure", "markers_figure",
           "pam50_figure"]


def run_all(s, out: Path, cfg: dict) -> None:
    i = (str(s.prepared), str(s.splits), str(s.predictions))
    o = {name: out / name for name in COLUMNS}
    run_validation(*i, o["validation.tsv"], o["selected_genes.tsv"], cfg, "v1")
    run_testing(*i, o["selected_genes.tsv"], o["test.tsv"], o["external.tsv"], cfg, "v1")
    run_proliferation(*i, s.clinical, o["validation.tsv"], o["proliferation_scores.tsv"], o["proliferation.tsv"],
                      o["proliferation_genes.tsv"], cfg, "v1")
    run_markers(*i, s.clinical, o["proliferation_scores.tsv"], o["markers_summary.tsv"], o["markers_tests.tsv"],
                cfg, "v1")
    run_pam50(*i, s.clinical, o["pam50_clusters.tsv"], o["pam50_clustering.tsv"], cfg, "v1")
    run_er_models(*i, s.clinical, o["selected_genes.tsv"], o["er_models.tsv"], o["er_summary.tsv"], cfg, "v1")
    inputs = {"prepared": i[0], "splits": i[1], "predictions": i[2], "validation": o["validation.tsv"],
              "test": o["test.tsv"], "clinical": s.clinical, "proliferation_scores": o["proliferation_scores.tsv"],
              "proliferation": o["proliferation.tsv"], "pam50_clusters": o["pam50_clusters.tsv"]}
    figures.run_figures(inputs, {k: out / f"{k}.png" for k in FIGURES}, cfg)


def digest(folder: Path) -> dict[str, str]:
    """sha256 per file; the output folder's own path is blanked in sidecars."""
    return {p.name: hashlib.sha256(p.read_bytes().replace(str(folder).encode(), b"OUT")).hexdigest()
            for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"), n_training=160, n_external=60)


@pytest.fixture(scope="module")
def cfg():
    return settings({"pam50": {"n_permutations": 50, "n_bootstrap": 50}, "figures": {"top_n": 6}})


@pytest.mark.slow
def test_outputs_columns_sidecars_and_determinism(synth, cfg, tmp_path):
    run_all(synth, tmp_path / "a", cfg)
    run_all(synth, tmp_path / "b", cfg)
    for name, columns in COLUMNS.items():
        table = pd.read_csv(tmp_path / "a" / name, sep="\t")
        assert list(table.columns) == columns, name
        assert len(table) > 0, name
        sidecar = json.loads((tmp_path / "a" / f"{name}.json").read_text())
        assert sidecar["code_version"] == "v1" and sidecar["inputs"]
    for key in FIGURES:
        assert (tmp_path / "a" / f"{key}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b                                   # byte-identical tables, sidecars and PNGs
    er = pd.read_csv(tmp_path / "a" / "er_summary.tsv", sep="\t")
    assert (er["n_concordant"] <= er[["n_significant_measured", "n_significant_predicted"]].min(axis=1)).all()


def test_threshold_change_changes_selection(synth, tmp_path):
    loose = settings({"selection": {"min_r2": -10, "max_padj": 1.0}})
    i = (synth.prepared, synth.splits, synth.predictions)
    run_validation(*i, tmp_path / "v.tsv", tmp_path / "s.tsv", loose, "v1")
    table = pd.read_csv(tmp_path / "v.tsv", sep="\t")
    assert table["selected"].sum() == table["padj_bh"].lt(1.0).sum()
    assert json.loads((tmp_path / "s.tsv.json").read_text())["params"]["selection"]["min_r2"] == -10


def test_errors_name_gene_and_column(synth, tmp_path):
    i = (synth.prepared, synth.splits, synth.predictions)
    bad = settings({"proliferation_genes": ["NOPE1", "NOPE2"]})
    run_validation(*i, tmp_path / "v.tsv", tmp_path / "s.tsv", bad, "v1")
    with pytest.raises(ConfigError, match=r"NOPE1, NOPE2.*statistics\.proliferation_genes"):
        run_proliferation(*i, synth.clinical, tmp_path / "v.tsv", tmp_path / "a.tsv", tmp_path / "b.tsv",
                          tmp_path / "c.tsv", bad, "v1")
    clinical = pd.read_csv(synth.clinical, sep="\t").drop(columns=["pam50"])
    clinical.to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    with pytest.raises(InputTableError, match="pam50"):
        run_pam50(*i, tmp_path / "clinical.tsv", tmp_path / "a.tsv", tmp_path / "b.tsv", settings({}), "v1")
    markers = settings({"markers": {"ESR1": "er_ihc"}})
    with pytest.raises(InputTableError, match="er_ihc"):
        run_markers(*i, synth.clinical, tmp_path / "a.tsv", tmp_path / "m.tsv", tmp_path / "t.tsv", markers, "v1")
    predictions = pd.read_csv(synth.predictions, sep="\t")
    predictions["NOTMEASURED"] = 1.0
    predictions.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    with pytest.raises(InputTableError, match="NOTMEASURED"):
        run_validation(synth.prepared, synth.splits, tmp_path / "pred.tsv", tmp_path / "v.tsv", tmp_path / "s.tsv",
                       settings({}), "v1")


def test_scatter_panel_statistics_are_the_validation_tables(synth, cfg, tmp_path):
    """The r and p printed on each top-gene panel are the validation table's (same
    patients, same test), so a reader can match figure and table."""
    from emo.stats.inputs import load_dataset

    out = tmp_path / "out"
    out.mkdir()
    run_validation(str(synth.prepared), str(synth.splits), str(synth.predictions), out / "validation.tsv",
                   out / "selected.tsv", cfg, "v1")
    validation = pd.read_csv(out / "validation.tsv", sep="\t").set_index("gene")
    data = load_dataset(str(synth.prepared), str(synth.splits), str(synth.predictions), genes=list(validation.index[:5]))
    patients = [p for split, _, members in data.subsets() if split == "validation" for p in members]
    for gene in validation.index[:5]:
        rho, p_value, n = figures.spearman_label(data.measured.loc[patients, gene], data.predicted.loc[patients, gene])
        assert n == validation.loc[gene, "n"]
        assert rho == pytest.approx(validation.loc[gene, "spearman_r"], abs=1e-9)
        assert p_value == pytest.approx(validation.loc[gene, "spearman_p"], rel=1e-6)
