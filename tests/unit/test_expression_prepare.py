"""Expression preparation: reading/validation errors, log transform, median
normalisation fitted on train + validation only, variance filter on training patients."""

import numpy as np
import pandas as pd
import pytest

from emo import expression
from emo.stores.expression import read_expression_frame, read_expression_store, write_training_store
from emo.errors import InputTableError


def write_matrix(path, matrix):
    matrix.reset_index().rename(columns={"index": "gene"}).to_csv(path, sep="\t", index=False)
    return path


def toy(rng, genes, patients, loc=5.0):
    return pd.DataFrame(rng.normal(loc, 1.0, size=(len(genes), len(patients))),
                        index=pd.Index(genes, name="gene"), columns=patients)


@pytest.fixture
def cohorts():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(30)]
    tcga = toy(rng, genes, [f"T{i:02d}" for i in range(24)])
    clin = toy(rng, genes, [f"C{i:02d}" for i in range(16)], loc=6.0)
    # a near-constant gene, filtered out by the variance filter
    tcga.loc["G0"] = 5.0 + rng.normal(0, 0.01, tcga.shape[1])
    clin.loc["G0"] = 5.0 + rng.normal(0, 0.01, clin.shape[1])
    splits_cycle = ["train", "train", "tune", "validation", "test"]
    rows = [{"patient": p, "cohort": "TCGA", "split": splits_cycle[i % 5]} for i, p in enumerate(tcga.columns)]
    rows += [{"patient": p, "cohort": "CLINSEQ", "split": splits_cycle[i % 5]} for i, p in enumerate(clin.columns)]
    return {"TCGA": tcga, "CLINSEQ": clin}, pd.DataFrame(rows)


def training_subset(matrices, table):
    keep = table[table["split"].isin(["train", "tune", "validation"])]
    return {c: m.loc[:, [p for p in m.columns if p in set(keep["patient"])]] for c, m in matrices.items()}


def test_offsets_are_median_differences_on_train_and_validation(cohorts):
    matrices, table = cohorts
    result = expression.prepare_training(training_subset(matrices, table), table, "TCGA", 0.01, 7)
    fit = table[table["split"].isin(["train", "validation"])]
    ref = matrices["TCGA"].loc[:, [p for p in matrices["TCGA"].columns if p in set(fit["patient"])]]
    other = matrices["CLINSEQ"].loc[:, [p for p in matrices["CLINSEQ"].columns if p in set(fit["patient"])]]
    expected = ref.median(axis=1) - other.median(axis=1)
    np.testing.assert_allclose(result["offsets"]["CLINSEQ"], expected.loc[result["genes_all"]].to_numpy())
    np.testing.assert_array_equal(result["offsets"]["TCGA"], 0.0)
    # after normalisation the CLINSEQ train+validation medians equal the reference's
    values = pd.DataFrame(result["values"], index=result["patients"], columns=result["genes"])
    clin_fit = [p for p in other.columns]
    ref_fit = [p for p in ref.columns]
    np.testing.assert_allclose(values.loc[clin_fit].median(), values.loc[ref_fit].median(), atol=1e-5)


def test_changing_test_or_tune_patients_does_not_change_offsets(cohorts):
    matrices, table = cohorts
    base = expression.prepare_training(training_subset(matrices, table), table, "TCGA", 0.01, 7)
    changed = {c: m.copy() for c, m in matrices.items()}
    for cohort, m in changed.items():
        for p in table.loc[(table["cohort"] == cohort) & table["split"].isin(["test", "tune"]), "patient"]:
            m[p] = m[p] + 100.0
    again = expression.prepare_training(training_subset(changed, table), table, "TCGA", 0.01, 7)
    for cohort in matrices:
        np.testing.assert_array_equal(base["offsets"][cohort], again["offsets"][cohort])
    # ... and the test patients get exactly the fitted offsets in the full preparation
    full = expression.apply_normalisation(changed, table, again, {"TCGA": "training", "CLINSEQ": "training"})
    values = pd.DataFrame(full["values"], index=full["patients"], columns=full["genes"])
    test_clin = table.loc[(table["cohort"] == "CLINSEQ") & (table["split"] == "test"), "patient"].iloc[0]
    kept = full["genes"]
    col = [again["genes_all"].index(g) for g in kept]
    np.testing.assert_allclose(values.loc[test_clin, kept].to_numpy(),
                               changed["CLINSEQ"].loc[kept, test_clin].to_numpy() + again["offsets"]["CLINSEQ"][col],
                               rtol=1e-6)


def test_changing_a_validation_patient_changes_offsets(cohorts):
    matrices, table = cohorts
    base = expression.prepare_training(training_subset(matrices, table), table, "TCGA", 0.01, 7)
    changed = {c: m.copy() for c, m in matrices.items()}
    for p in table.loc[(table["cohort"] == "CLINSEQ") & (table["split"] == "validation"), "patient"]:
        changed["CLINSEQ"][p] += 100.0
    again = expression.prepare_training(training_subset(changed, table), table, "TCGA", 0.01, 7)
    assert not np.allclose(base["offsets"]["CLINSEQ"], again["offsets"]["CLINSEQ"])


def test_external_cohort_is_normalised_to_reference_train_validation_medians(cohorts):
    matrices, table = cohorts
    rng = np.random.default_rng(3)
    ext = toy(rng, list(matrices["TCGA"].index), [f"A{i}" for i in range(9)], loc=9.0)
    training = expression.prepare_training(training_subset(matrices, table), table, "TCGA", 0.01, 7)
    table2 = pd.concat([table, pd.DataFrame({"patient": ext.columns, "cohort": "ABIM", "split": "external"})])
    full = expression.apply_normalisation({**matrices, "ABIM": ext}, table2, training,
                                          {"TCGA": "training", "CLINSEQ": "training", "ABIM": "external"})
    values = pd.DataFrame(full["values"], index=full["patients"], columns=full["genes"])
    ref_median = pd.Series(training["reference_median"], index=training["genes_all"])
    np.testing.assert_allclose(values.loc[list(ext.columns)].median().to_numpy(),
                               ref_median.loc[full["genes"]].to_numpy(), atol=1e-5)


def test_variance_filter_uses_training_patients_only(cohorts):
    matrices, table = cohorts
    result = expression.prepare_training(training_subset(matrices, table), table, "TCGA", 0.01, 7)
    gene_table = result["gene_table"].set_index("gene")
    assert not gene_table.loc["G0", "kept"]
    assert gene_table["kept"].sum() == len(result["genes"]) == 29
    values = pd.DataFrame(result["values"], index=result["patients"], columns=result["genes"])
    train = table.loc[table["split"] == "train", "patient"]
    np.testing.assert_allclose(gene_table.loc["G5", "variance"], values.loc[list(train), "G5"].var(ddof=1),
                               rtol=1e-5)
    # chunks: k-th slice of size 7 of the sorted gene list
    ordered = sorted(gene_table.index)
    assert [gene_table.loc[g, "chunk"] for g in ordered] == [i // 7 for i in range(len(ordered))]
    assert expression.chunk_ids(30, 7) == ["0000", "0001", "0002", "0003", "0004"]


def test_counts_become_log2_cpm(tmp_path):
    counts = pd.DataFrame({"P1": [10, 30, 60], "P2": [0, 5, 5]}, index=pd.Index(["A", "B", "C"], name="gene"))
    path = write_matrix(tmp_path / "counts.tsv", counts)
    out = expression.load_cohort(path, "X", ["P2", "P1"], "counts")
    expected = np.log2(counts / counts.sum() * 1e6 + 1)
    np.testing.assert_allclose(out.to_numpy(), expected[["P2", "P1"]].to_numpy())
    assert list(out.columns) == ["P2", "P1"]


@pytest.mark.parametrize("problem, match", [
    ("missing_patient", "ZZ9"),
    ("duplicate_gene", "'B'"),
    ("nan", "gene 'C', patient 'P1'"),
    ("negative", "negative count"),
    ("text", "not a number"),
])
def test_input_errors_name_the_culprit(tmp_path, problem, match):
    counts = pd.DataFrame({"P1": [10.0, 30, 60], "P2": [1.0, 5, 5]}, index=pd.Index(["A", "B", "C"], name="gene"))
    patients = ["P1", "P2"]
    if problem == "missing_patient":
        patients = ["P1", "ZZ9"]
    path = tmp_path / "m.tsv"
    write_matrix(path, counts)
    text = path.read_text()
    if problem == "duplicate_gene":
        text = text.replace("C\t", "B\t")
    elif problem == "nan":
        text = text.replace("60.0", "NA")
    elif problem == "negative":
        text = text.replace("30.0", "-3")
    elif problem == "text":
        text = text.replace("30.0", "abc")
    path.write_text(text)
    with pytest.raises(InputTableError, match=match) as info:
        expression.load_cohort(path, "X", patients, "counts")
    assert str(path) in str(info.value)


def test_gene_sets_must_match_across_cohorts():
    a = pd.DataFrame(np.zeros((2, 1)), index=["A", "B"], columns=["P"])
    b = pd.DataFrame(np.zeros((2, 1)), index=["A", "C"], columns=["Q"])
    with pytest.raises(InputTableError, match="only in 'X': \\['B'\\]"):
        expression.check_gene_sets({"X": a, "Y": b}, {"X": "x.tsv", "Y": "y.tsv"})


def test_stores_round_trip(tmp_path, cohorts):
    matrices, table = cohorts
    result = expression.prepare_training(training_subset(matrices, table), table, "TCGA", 0.01, 7)
    write_training_store(tmp_path / "t.h5", result, {"code_version": "x"})
    back = read_expression_store(tmp_path / "t.h5")
    np.testing.assert_array_equal(back.values, result["values"])
    assert back.genes == result["genes"] and back.patients == result["patients"]
    assert back.genes_all == result["genes_all"] and back["genes"] == back.genes
    np.testing.assert_array_equal(back.offsets["CLINSEQ"], result["offsets"]["CLINSEQ"])
    frame = read_expression_frame(tmp_path / "t.h5")
    assert frame.shape == result["values"].shape


def test_read_gene_column_sorts_the_first_column(tmp_path):
    matrix = pd.DataFrame({"P1": [1.0, 2.0, 3.0]}, index=pd.Index(["Z", "A", "M"], name="gene"))
    write_matrix(tmp_path / "ref.tsv", matrix)
    assert expression.read_gene_column(tmp_path / "ref.tsv") == ["A", "M", "Z"]


def test_reference_cohort_rules():
    from emo.errors import ConfigError

    assert expression.reference_cohort({"A": {"role": "training"}, "B": {"role": "external"}}) == "A"
    with pytest.raises(ConfigError, match="reference: true"):
        expression.reference_cohort({"A": {"role": "training"}, "B": {"role": "training"}})
    with pytest.raises(ConfigError, match="role: training"):
        expression.reference_cohort({"A": {"role": "external", "reference": True}, "B": {"role": "training"}})
