"""Probe processing: negative-probe normalisation, variance filter, multi-gene and
renamed probes, probes without predictions, BH adjustment, per-slide Spearman."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from statsmodels.stats.multitest import multipletests

from emo import lme, spatial
from emo.errors import ConfigError, InputTableError


def _counts():
    return pd.DataFrame({"sample": ["A", "A", "B"], "roi": ["1", "2", "1"],
                         "Neg1": [10, 20, 4], "Neg2": [30, 20, 4], "CD8A": [80, 10, 64], "KRT": [5, 5, 2]})


def test_normalisation_divides_by_negative_mean_and_logs():
    out = spatial.normalise_counts(_counts(), ["Neg1", "Neg2"])
    assert list(out.columns) == ["sample", "roi", "CD8A", "KRT"]
    np.testing.assert_allclose(out["CD8A"], [np.log2(80 / 20), np.log2(10 / 20), np.log2(64 / 4)])
    np.testing.assert_allclose(out["KRT"], [np.log2(5 / 20), np.log2(5 / 20), np.log2(2 / 4)])
    with_pc = spatial.normalise_counts(_counts(), ["Neg1", "Neg2"], pseudocount=1)
    np.testing.assert_allclose(with_pc["CD8A"], np.log2(np.array([81, 11, 65]) / np.array([21, 21, 5])))


def test_normalisation_errors():
    with pytest.raises(ConfigError, match="negative_probes"):
        spatial.normalise_counts(_counts(), [])
    with pytest.raises(ConfigError, match="Neg9"):
        spatial.normalise_counts(_counts(), ["Neg9"])
    zero = _counts()
    zero.loc[1, "CD8A"] = 0
    with pytest.raises(InputTableError, match=r"ROI '2', probe 'CD8A'.*pseudocount"):
        spatial.normalise_counts(zero, ["Neg1", "Neg2"])
    assert np.isfinite(spatial.normalise_counts(zero, ["Neg1", "Neg2"], pseudocount=1)["CD8A"]).all()


def test_variance_filter_uses_sample_variance():
    table = pd.DataFrame({"sample": list("AABB"), "roi": list("1212"), "flat": [1.0, 1.01, 1.0, 1.01],
                          "varied": [0.0, 1.0, 2.0, 3.0]})
    kept, dropped = spatial.variance_filter(table, 0.001)
    assert kept == ["varied"]
    assert list(dropped["probe"]) == ["flat"]
    assert dropped.loc[0, "variance"] == pytest.approx(np.var([1.0, 1.01, 1.0, 1.01], ddof=1))


def test_multi_gene_and_mapped_probes_sum_member_predictions():
    settings = spatial.spatial_settings({"multi_gene_probes": {"multi-krt": ["KRT18", "KRT19", "KRT7"]},
                                         "probe_gene_map": {"PD-L1": "CD274"}})
    roi_preds = pd.DataFrame({"sample": ["A", "B"], "roi": ["1", "1"], "KRT18": [1.0, 2.0], "KRT19": [0.5, 0.25],
                              "KRT7": [3.0, -1.0], "CD274": [7.0, 8.0], "CD8A": [0.1, 0.2]})
    preds, skipped = spatial.probe_predictions(roi_preds, ["multi-krt", "PD-L1", "CD8A", "FOXP3"], settings)
    np.testing.assert_allclose(preds["multi-krt"], [4.5, 1.25])
    np.testing.assert_allclose(preds["PD-L1"], [7.0, 8.0])
    np.testing.assert_allclose(preds["CD8A"], [0.1, 0.2])
    assert list(skipped["probe"]) == ["FOXP3"] and "FOXP3" in skipped.loc[0, "reason"]
    assert spatial.required_genes(settings, ["CD8A"]) == ["CD274", "CD8A", "KRT18", "KRT19", "KRT7"]
    with_ki67 = spatial.required_genes(dict(settings, ki67="k.tsv"))
    assert set(spatial.PROLIFERATION_GENES) <= set(with_ki67)


def test_benjamini_hochberg_matches_statsmodels():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 1e-3, size=10)])
    np.testing.assert_allclose(lme.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    with_nan = p.copy()
    with_nan[[3, 7]] = np.nan
    adjusted = lme.benjamini_hochberg(with_nan)
    assert np.isnan(adjusted[[3, 7]]).all()
    finite = np.isfinite(with_nan)
    np.testing.assert_allclose(adjusted[finite], multipletests(with_nan[finite], method="fdr_bh")[1])


def test_spearman_per_slide_and_exclusions():
    data = pd.DataFrame({"sample": ["A"] * 5 + ["B"] + ["C"] * 3, "roi": list("123451123"),
                         "prediction": [1, 2, 3, 4, 5, 1, 1, 1, 1], "observed": [2, 1, 4, 3, 6, 0, 1, 2, 3]})
    rows = pd.DataFrame(spatial.spearman_per_slide(data, "X")).set_index("sample")
    assert rows.loc["A", "spearman_r"] == pytest.approx(spearmanr([1, 2, 3, 4, 5], [2, 1, 4, 3, 6]).statistic)
    assert rows.loc["B", "status"].startswith("excluded: fewer than")
    assert rows.loc["C", "status"] == "excluded: constant values" and np.isnan(rows.loc["C", "spearman_r"])


def test_numeric_tables_reject_bad_values(tmp_path):
    path = tmp_path / "counts.tsv"
    pd.DataFrame({"sample": ["A"], "roi": ["1"], "CD8A": ["-3"]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputTableError, match=r"slide 'A', ROI '1'\), column 'CD8A'"):
        spatial.load_probe_counts(path)
    pd.DataFrame({"sample": ["A"], "roi": ["1"], "score": [0.2]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputTableError, match="needs a column 'ki67'"):
        spatial.load_ki67(path)
