"""Statistics tables on synthetic inputs, each number recomputed independently with
scipy / sklearn / statsmodels from the fixture's own frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.metrics import adjusted_rand_score, r2_score
from statsmodels.stats.multitest import multipletests

from emo.errors import ConfigError, InputTableError
from emo.stats import PROLIFERATION_GENES, PAM50_GENES, clinical as clin, clustering, er_models, inputs, validation
from statistics_fixtures import make_inputs


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("stats"))


@pytest.fixture(scope="module")
def data(synth):
    return inputs.load_dataset(synth.prepared, synth.splits, synth.predictions)


@pytest.fixture(scope="module")
def clinical(synth):
    return inputs.load_clinical(synth.clinical)


@pytest.fixture(scope="module")
def val(data):
    return validation.validation_table(data, min_r2=0.2, max_padj=0.001)


def _patients(synth, split, cohort=None):
    t = synth.split_table
    rows = t[(t["split"] == split) & ((t["cohort"] == cohort) if cohort else True)]
    return sorted(rows["patient"])


def test_validation_table_matches_references(synth, val):
    pts = _patients(synth, "validation")
    assert list(val.columns) == ["gene", "n", "spearman_r", "spearman_p", "padj_bh", "r2_pred", "selected"]
    assert list(val["gene"]) == list(synth.predicted.columns)
    m, p = synth.measured.loc[pts], synth.predicted.loc[pts]
    ref_p = []
    for row in val.itertuples():
        ref = stats.spearmanr(m[row.gene], p[row.gene])
        assert row.n == len(pts)
        assert row.spearman_r == pytest.approx(ref.statistic, abs=1e-9)
        assert row.spearman_p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)
        assert row.r2_pred == pytest.approx(r2_score(m[row.gene], p[row.gene]), abs=1e-6)
        ref_p.append(ref.pvalue)
    np.testing.assert_allclose(val["padj_bh"], multipletests(ref_p, method="fdr_bh")[1], rtol=1e-6)


def test_selection_logic(synth, val):
    expected = (val["r2_pred"] > 0.2) & (val["padj_bh"] < 0.001)
    assert (val["selected"] == expected).all()
    chosen = set(val.loc[val["selected"], "gene"])
    assert set(synth.planted) <= chosen            # planted signal is found
    assert not chosen & set(synth.noise)           # noise is not
    strict = validation.validation_table(_data_again(synth), 0.99, 0.001)
    assert not strict["selected"].any()
    sel = validation.selected_genes(val)
    assert list(sel["gene"]) == list(val.loc[val["selected"], "gene"])


def _data_again(synth):
    return inputs.load_dataset(synth.prepared, synth.splits, synth.predictions)


def test_internal_and_external_tests(synth, data, val):
    genes = list(val.loc[val["selected"], "gene"])
    internal, external = validation.testing_tables(data, genes, alpha=0.05)
    pts = _patients(synth, "test")
    ref_p = [stats.spearmanr(synth.measured.loc[pts, g], synth.predicted.loc[pts, g]).pvalue for g in genes]
    np.testing.assert_allclose(internal["padj_bonferroni"], multipletests(ref_p, method="bonferroni")[1],
                               rtol=1e-6)
    np.testing.assert_allclose(internal["r2_pred"], [r2_score(synth.measured.loc[pts, g],
                                                              synth.predicted.loc[pts, g]) for g in genes], atol=1e-6)
    assert (internal["validated"] == (internal["padj_bonferroni"] < 0.05)).all()
    # External: no R², unmeasured gene left out of the table and of Bonferroni's m.
    assert "r2_pred" not in external.columns
    assert set(external["cohort"]) == {"ABIM"}
    assert synth.unmeasured_external not in set(external["gene"])
    ext_genes = [g for g in genes if g != synth.unmeasured_external]
    ept = _patients(synth, "external", "ABIM")
    ref_p = [stats.spearmanr(synth.measured.loc[ept, g], synth.predicted.loc[ept, g]).pvalue for g in ext_genes]
    np.testing.assert_allclose(external["padj_bonferroni"], np.minimum(np.array(ref_p) * len(ext_genes), 1),
                               rtol=1e-6)
    assert external["validated"].mean() > 0.8


def test_proliferation(synth, clinical):
    genes = list(PROLIFERATION_GENES)
    d = inputs.load_dataset(synth.prepared, synth.splits, synth.predictions, genes=genes)
    scores = clin.proliferation_scores(d, genes, clinical)
    table = clin.proliferation_table(scores)
    pts = _patients(synth, "validation")
    row = scores.set_index("patient").loc[pts]
    np.testing.assert_allclose(row["pscore_measured"], synth.measured.loc[pts, genes].mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(row["pscore_predicted"], synth.predicted.loc[pts, genes].mean(axis=1), rtol=1e-9)
    overall = table[(table["split"] == "validation") & (table["group"] == "all")].iloc[0]
    ref = stats.spearmanr(row["pscore_measured"], row["pscore_predicted"])
    assert overall["spearman_r"] == pytest.approx(ref.statistic) and overall["n"] == len(pts)
    basal = table[(table["split"] == "validation") & (table["group"] == "Basal")].iloc[0]
    sub = row[row["pam50"] == "Basal"]
    assert basal["n"] == len(sub)
    assert basal["spearman_r"] == pytest.approx(stats.spearmanr(sub["pscore_measured"], sub["pscore_predicted"]).statistic)
    assert set(table[table["split"] == "external"]["cohort"]) == {"ABIM"}
    means = table[(table["split"] == "validation")].set_index("group")["mean_measured"]
    assert means["Basal"] > means["LumA"]


def test_markers_match_scipy(synth, clinical):
    markers = {"ESR1": "er", "ERBB2": "her2", "MKI67": "proliferation"}
    genes = sorted(set(markers) | set(PROLIFERATION_GENES))
    d = inputs.load_dataset(synth.prepared, synth.splits, synth.predictions, genes=genes)
    scores = clin.proliferation_scores(d, list(PROLIFERATION_GENES), clinical)
    summary, tests = clin.marker_tables(d, markers, clinical, scores)
    pts = _patients(synth, "test")
    er = synth.clinical_table.set_index("patient").loc[pts, "er"]
    for source, frame in (("measured", synth.measured), ("predicted", synth.predicted)):
        pos, neg = frame.loc[er.index[er == "positive"], "ESR1"], frame.loc[er.index[er == "negative"], "ESR1"]
        row = tests[(tests["gene"] == "ESR1") & (tests["split"] == "test") & (tests["source"] == source)].iloc[0]
        ref = stats.mannwhitneyu(neg, pos, alternative="two-sided")
        assert row["test"] == "mannwhitney" and row["n"] == len(pos) + len(neg)
        assert row["statistic"] == pytest.approx(ref.statistic) and row["p"] == pytest.approx(ref.pvalue)
        s = summary[(summary["gene"] == "ESR1") & (summary["split"] == "test") & (summary["source"] == source)]
        assert s.set_index("group").loc["positive", "mean"] == pytest.approx(pos.mean())
    k = tests[(tests["gene"] == "MKI67") & (tests["split"] == "validation") & (tests["source"] == "predicted")].iloc[0]
    vp = _patients(synth, "validation")
    ps = synth.measured.loc[vp, list(PROLIFERATION_GENES)].mean(axis=1)
    tert = pd.qcut(ps.rank(method="first"), 3, labels=["low", "medium", "high"])
    groups = [synth.predicted.loc[tert.index[tert == g], "MKI67"] for g in ("low", "medium", "high")]
    assert k["test"] == "kruskal" and k["p"] == pytest.approx(stats.kruskal(*groups).pvalue)


def test_pam50_clustering(synth, clinical):
    genes = list(PAM50_GENES)
    d = inputs.load_dataset(synth.prepared, synth.splits, synth.predictions, genes=genes)
    clusters, ari = clustering.pam50_clustering(d, genes, clinical, n_clusters=4, method="ward",
                                                n_permutations=200, n_bootstrap=200, seed=1)
    val_rows = clusters[clusters["split"] == "validation"]
    row = ari[(ari["split"] == "validation") & (ari["comparison"] == "measured_vs_predicted")].iloc[0]
    assert row["ari"] == pytest.approx(adjusted_rand_score(val_rows["cluster_measured"], val_rows["cluster_predicted"]))
    assert row["p_permutation"] < 0.01 and row["ci_low"] <= row["ari"] <= row["ci_high"]
    known = val_rows[val_rows["pam50"].notna()]
    sub = ari[(ari["split"] == "validation") & (ari["comparison"] == "measured_vs_subtype")].iloc[0]
    assert sub["n"] == len(known)
    assert sub["ari"] == pytest.approx(adjusted_rand_score(known["pam50"], known["cluster_measured"]))
    assert set(val_rows["cluster_measured"]) == {1, 2, 3, 4}
    # Deterministic.
    again = clustering.pam50_clustering(d, genes, clinical, 4, "ward", 200, 200, 1)
    pd.testing.assert_frame_equal(again[1], ari)


def test_er_models_match_statsmodels(synth, data, clinical):
    genes = synth.planted[:4] + synth.noise[:3]
    models, summary = er_models.er_models(data, genes, clinical, ["age", "her2", "tumour_size_mm",
                                                                  "nodes_positive", "grade"], 0.05, 0.5)
    s = summary[summary["split"] == "test"].iloc[0]
    assert s["covariates"] == "age,her2,tumour_size_mm,nodes_positive" and s["dropped_covariates"] == "grade: absent from the clinical table"
    c = synth.clinical_table.set_index("patient").loc[_patients(synth, "test")]
    c = c[c["er"].isin(["positive", "negative"])]
    X = pd.DataFrame({"er": (c["er"] == "positive").astype(float), "age": c["age"],
                      "her2": (c["her2"] == "positive").astype(float), "tumour_size_mm": c["tumour_size_mm"],
                      "nodes": (c["nodes_positive"] > 0).astype(float)})
    X = sm.add_constant(X)
    table = models[models["split"] == "test"].set_index("gene")
    pvals = {}
    for source, frame in (("measured", synth.measured), ("predicted", synth.predicted)):
        pvals[source] = []
        for g in genes:
            fit = sm.OLS(frame.loc[X.index, g], X).fit()
            assert table.loc[g, f"beta_er_{source}"] == pytest.approx(fit.params["er"], rel=1e-4)
            assert table.loc[g, f"p_{source}"] == pytest.approx(fit.pvalues["er"], rel=1e-3, abs=1e-12)
            pvals[source].append(fit.pvalues["er"])
        np.testing.assert_allclose(table.loc[genes, f"padj_{source}"],
                                   multipletests(pvals[source], method="fdr_bh")[1], rtol=1e-3)
    assert table.loc[synth.er_genes[:4], "concordant"].all()
    assert s["n_concordant"] == int(table["concordant"].sum())
    # External cohort: unmeasured gene is fitted on no rows -> NaN, others present.
    ext = models[models["split"] == "external"].set_index("gene")
    assert ext.loc[synth.planted[0], "significant_measured"]


def test_er_constant_covariate_dropped(synth, data, clinical):
    c = clinical.copy()
    c["her2"] = "negative"
    _, summary = er_models.er_models(data, synth.planted[:2], c, ["age", "her2"], 0.05, 0.5)
    assert (summary["dropped_covariates"] == "her2: constant").all()


def test_missing_gene_and_clinical_column_errors(synth):
    with pytest.raises(ConfigError, match="NOTAGENE.*statistics.proliferation_genes"):
        inputs.check_genes(["NOTAGENE"], ["MKI67"], "statistics.proliferation_genes")
    assert inputs.check_genes(["MKI67", "NOTAGENE"], ["MKI67"], "statistics.proliferation_genes") == ["MKI67"]
    with pytest.raises(InputTableError, match="grade"):
        inputs.load_clinical(synth.clinical, required=["pam50", "grade"])


def test_model_comparison_counts(val):
    other = val.copy()
    other["r2_pred"] = other["r2_pred"] - 1.0
    other["selected"] = False
    other = other[other["gene"] != other["gene"].iloc[0]]          # one gene fewer
    table = validation.model_comparison({"emo": val, "ridge": other}, min_r2=0.2).set_index("model")
    shared = val[val["gene"].isin(other["gene"])]
    assert (table["n_genes"] == len(shared)).all()
    assert table.loc["emo", "n_selected"] == shared["selected"].sum()
    assert table.loc["emo", "n_padj_below_0.05"] == (shared["padj_bh"] < 0.05).sum()
    assert table.loc["ridge", "n_selected"] == 0
    assert table.loc["ridge", "median_r2_pred"] == pytest.approx(shared["r2_pred"].median() - 1.0)


def test_constant_prediction_is_a_test_without_evidence(synth):
    """A gene predicted as one value for every patient (a head kept at its untrained
    epoch) gets r 0 and p 1 and stays in the BH correction (m unchanged), where scipy's
    Spearman is undefined; last-bit float noise around the value counts as constant."""
    pts = _patients(synth, "validation")
    measured, predicted = synth.measured.loc[pts], synth.predicted.loc[pts].copy()
    genes = list(predicted.columns)
    predicted[genes[0]] = 7.25
    predicted[genes[1]] = np.float32(3.1) + np.arange(len(pts)) % 2 * np.spacing(np.float32(3.1))
    table = validation.gene_statistics(measured, predicted)
    assert np.isnan(stats.spearmanr(measured[genes[0]], predicted[genes[0]]).statistic)
    assert (table.loc[:1, "spearman_r"] == 0.0).all() and (table.loc[:1, "spearman_p"] == 1.0).all()
    ref = stats.spearmanr(measured[genes[2]], predicted[genes[2]])
    assert table.loc[2, "spearman_r"] == pytest.approx(ref.statistic, abs=1e-9)
    padj = validation.core.bh_adjust(table["spearman_p"].to_numpy())
    np.testing.assert_allclose(padj, multipletests(table["spearman_p"], method="fdr_bh")[1], rtol=1e-9)
