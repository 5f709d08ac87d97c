"""emo.stats.comparison: the comparison of every model on the same patients, on
hand-made validation/test tables, benchmark files and measured costs; and the heads'
statistics recomputed for a model's patient table equal emo.stats.validation's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from emo.stats.comparison import (comparison_table, cost_table, long_statistics, model_statistics,
                                  per_gene_spearman)


def _validation(r, padj, selected, genes=("a", "b", "c")):
    return pd.DataFrame({"gene": list(genes), "n": 10, "spearman_r": r, "spearman_p": padj, "padj_bh": padj,
                         "r2_pred": 0.1, "selected": selected})


def _test(genes, validated, r):
    return pd.DataFrame({"gene": genes, "n": 10, "spearman_r": r, "spearman_p": 0.01, "padj_bonferroni": 0.02,
                         "r2_pred": 0.1, "validated": validated})


def test_comparison_counts_shared_genes_and_replication():
    tables = {
        "emo": {"validation": _validation([0.9, 0.5, 0.1], [0.001, 0.04, 0.6], [True, False, False]),
                "test": _test(["a"], [True], [0.8]),
                "external": pd.DataFrame({"cohort": ["X", "Y"], **_test(["a", "a"], [True, False], [0.7, 0.2])})},
        # a model with an extra gene: counted over the shared genes only
        "he2rna": {"validation": _validation([0.2, 0.6, 0.7, 0.9], [0.3, 0.01, 0.02, 1e-5], [False, True, True, True],
                                             genes=("a", "b", "c", "d")),
                   "test": _test(["b", "c", "d"], [True, False, False], [0.6, 0.1, 0.3]),
                   "external": _test([], [], []).assign(cohort=[])},
    }
    t = comparison_table(tables).set_index("model")
    assert list(t.index) == ["emo", "he2rna"] and (t["n_genes"] == 3).all()
    assert t.loc["emo", "validation_n_bh_below_0.05"] == 2 and t.loc["he2rna", "validation_n_bh_below_0.05"] == 2
    assert t.loc["emo", "validation_median_spearman"] == pytest.approx(0.5)
    assert t.loc["he2rna", "validation_mean_spearman"] == pytest.approx(0.5)
    assert t.loc["he2rna", "n_selected"] == 3            # its own selection, all genes
    assert t.loc["he2rna", "test_replication_rate"] == pytest.approx(1 / 3)
    assert t.loc["emo", "external_replication_rate"] == pytest.approx(0.5)
    assert np.isnan(t.loc["he2rna", "external_replication_rate"])
    pg = per_gene_spearman({m: v["validation"] for m, v in tables.items()})
    assert list(pg["gene"]) == ["a", "b", "c"] and list(pg["he2rna"]) == [0.2, 0.6, 0.7]
    long = long_statistics("he2rna", tables["he2rna"])
    assert set(long["set"]) == {"validation", "test"} and len(long) == 7
    assert set(long.loc[long["set"] == "test", "padj_method"]) == {"bonferroni"}


def test_cost_table_sums_benchmarks_and_reads_measured_rows(tmp_path):
    for i, (s, cpu) in enumerate([(10.0, 7.5), (20.0, 12.5)]):
        pd.DataFrame({"s": [s], "h:m:s": ["0:00:10"], "max_rss": [1.0], "cpu_time": [cpu]}).to_csv(
            tmp_path / f"b{i}.tsv", sep="\t", index=False)
    pd.DataFrame({"model": "he2rna", "fold": [0, 1, -1], "cpu_seconds": [1.0, 2.0, 4.5],
                  "wall_seconds": [1.0, 1.0, 3.0], "device": "cpu"}).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    t = cost_table({"emo": ("benchmark", [str(tmp_path / "b0.tsv"), str(tmp_path / "b1.tsv")]),
                    "he2rna": ("measured", [str(tmp_path / "c.tsv")])}).set_index("model")
    assert t.loc["emo", "cpu_seconds"] == pytest.approx(20.0) and t.loc["emo", "wall_seconds"] == pytest.approx(30)
    assert t.loc["emo", "jobs"] == 2
    assert t.loc["he2rna", "cpu_seconds"] == pytest.approx(4.5)   # the whole-job row, not the folds again
    # a deleted benchmark file: NaN and said so, not an error (benchmarks are not job inputs)
    gone = cost_table({"emo": ("benchmark", [str(tmp_path / "b0.tsv"), str(tmp_path / "absent.tsv")])}).iloc[0]
    assert np.isnan(gone["cpu_seconds"]) and "1 of 2 files missing" in gone["source"]


def test_model_statistics_match_scipy_and_the_selection_rule(tmp_path):
    import h5py

    rng = np.random.default_rng(0)
    patients = [f"P{i:02d}" for i in range(40)]
    split = ["train"] * 10 + ["validation"] * 15 + ["test"] * 15
    measured = rng.normal(size=(40, 3))
    predicted = measured * [1.0, 0.4, 0.0] + rng.normal(scale=0.3, size=(40, 3))
    with h5py.File(tmp_path / "prepared.h5", "w") as h:
        h.create_dataset("values", data=measured.astype(np.float32))
        for key, values in (("patients", patients), ("genes", ["g1", "g2", "g3"]), ("cohort", ["T"] * 40)):
            h.create_dataset(key, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
    pd.DataFrame({"patient": patients, "cohort": "T", "split": split}).to_csv(tmp_path / "s.tsv", sep="\t",
                                                                             index=False)
    pd.DataFrame(predicted, columns=["g1", "g2", "g3"]).assign(patient=patients)[["patient", "g1", "g2", "g3"]] \
        .to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    cfg = {"selection": {"min_r2": 0.2, "max_padj": 0.001}, "test_alpha": 0.05}
    out = model_statistics(tmp_path / "prepared.h5", tmp_path / "s.tsv", tmp_path / "p.tsv", cfg)
    val = out["validation"].set_index("gene")
    m32 = measured.astype(np.float32).astype(np.float64)
    for j, gene in enumerate(["g1", "g2", "g3"]):
        ref = stats.spearmanr(m32[10:25, j], predicted[10:25, j])
        assert val.loc[gene, "spearman_r"] == pytest.approx(ref.statistic, rel=1e-9)
    assert list(out["test"]["gene"]) == list(val.index[val["selected"]])
    assert "g1" in set(out["test"]["gene"]) and "g3" not in set(out["test"]["gene"])
