"""Trait-classifier protocol (paper 002): percentile labelling, patient-level splits,
DeLong AUC, top-3 majority vote, and one trait trained end to end on synthetic features."""

import math

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from emo import heterogeneity as het
from emo import trait_classifiers as tc
from heterogeneity_fixtures import synthetic_cohort


def test_percentile_labels_follow_numpy_percentiles():
    rng = np.random.default_rng(0)
    values = pd.Series(rng.normal(size=500), index=[f"p{i}" for i in range(500)])
    table = tc.percentile_labels(values, 20, 80, 10).set_index("patient")
    v = values.loc[table.index]
    q20, q30, q50, q70, q80 = np.percentile(values, [20, 30, 50, 70, 80])
    assert (table["label"] == "low").equals(v < q20)
    assert (table["label"] == "high").equals(v > q80)
    assert table["ood"].equals((v >= q20) & (v <= q80))
    assert table["ood_near"].equals(((v >= q20) & (v < q30)) | ((v > q70) & (v <= q80)))
    assert table["ood_label"].equals((v > q50).astype(int))
    assert (table["label"] == "low").mean() == pytest.approx(0.2, abs=0.01)
    assert table["ood"].mean() == pytest.approx(0.6, abs=0.01)
    assert table["ood_near"].mean() == pytest.approx(0.2, abs=0.01)
    assert table["percentile"].between(0, 100).all()
    # Configurable cut-offs.
    wide = tc.percentile_labels(values, 30, 70, 5)
    assert (wide["label"] != "").mean() == pytest.approx(0.6, abs=0.01)


def test_split_patients_protocol():
    patients = [f"p{i:03d}" for i in range(200)]
    table = tc.split_patients(patients, seed=7, rounds=5, test_fraction=0.1, validation_fraction=0.1)
    assert (table["heldout"] == "test").sum() == 20
    test = set(table.loc[table["heldout"] == "test", "patient"])
    validation_sets = []
    for r in range(1, 6):
        col = table[f"round_{r}"]
        assert set(table.loc[col == "test", "patient"]) == test      # test never trains or validates
        assert (col == "validation").sum() == 20 and (col == "train").sum() == 160
        validation_sets.append(frozenset(table.loc[col == "validation", "patient"]))
    assert len(set(validation_sets)) == 5                                 # five different random splits
    again = tc.split_patients(reversed(patients), seed=7)
    assert again.equals(table)                                            # deterministic, order-free
    assert not tc.split_patients(patients, seed=8)["heldout"].equals(table["heldout"])
    given = tc.split_patients(patients, seed=7, test_patients=["p001", "p002", "zzz"])
    assert set(given.loc[given["heldout"] == "test", "patient"]) == {"p001", "p002"}


def test_slide_groups_keep_patients_together():
    sheet = pd.DataFrame({"sample": ["a1", "a2", "b1", "c1", "d1"], "patient": ["A", "A", "B", "C", "D"]})
    labels = tc.percentile_labels(pd.Series({"A": 0.0, "B": 5.0, "C": 10.0, "D": 2.5}), 30, 70, 10)
    splits = pd.DataFrame({"patient": ["A", "B", "C", "D"], "heldout": ["test", "development", "development",
                                                                        "development"]})
    groups = tc.slide_groups(sheet, labels, splits).set_index("sample")
    assert groups.loc["a1", "group"] == groups.loc["a2", "group"] == "test"
    assert groups.loc["c1", "group"] == "development" and groups.loc["c1", "label"] == "high"
    assert groups.loc["b1", "group"] == "ood"


def _delong_reference(y, s):
    """DeLong et al. (1988) structural components, written out with explicit pairs."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


def test_delong_auc_against_references():
    rng = np.random.default_rng(4)
    y = rng.random(80) < 0.4
    s = np.round(rng.normal(size=80) + y, 1)  # rounding creates ties
    auc, var, lo, hi = tc.delong_auc(y, s)
    ref_auc, ref_var = _delong_reference(y.astype(int), s)
    assert auc == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert auc == pytest.approx(ref_auc, rel=1e-12)
    assert var == pytest.approx(ref_var, rel=1e-12)
    assert lo == pytest.approx(auc - 1.959963984540054 * math.sqrt(var))
    assert hi == pytest.approx(min(1.0, auc + 1.959963984540054 * math.sqrt(var)))
    assert math.isnan(tc.delong_auc(np.ones(5), np.arange(5.0))[0])


def test_ensemble_is_majority_of_best_three():
    assert tc.select_ensemble([0.7, 0.9, 0.8, 0.6, 0.85], 3) == [1, 2, 4]
    assert tc.select_ensemble([0.9, float("nan"), 0.9, 0.5, 0.9], 3) == [0, 2, 4]       # ties -> earlier
    assert tc.select_ensemble([(1.0, -0.7), (1.0, -0.5), (0.9, -0.1)], 1) == [1]        # AUC, then loss
    votes = np.array([[0, 0, 1], [1, 1, 0], [1, 1, 1], [0, 0, 0]])
    assert tc.majority_vote(votes).tolist() == [False, True, True, False]               # paper: 0,0,1 -> 0
    assert tc.slide_score(np.array([True, False, True, True])) == 0.75


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trait")
    sheet, paths, expr, truth = synthetic_cohort(tmp, n_patients=100, seed=2, signal=3.0)
    splits = tc.split_patients(sheet["patient"], seed=3, test_fraction=0.2)
    cfg = {"seed": 3, "classifier": {"max_epochs": 10, "evals_per_epoch": 2, "hidden": 0}}
    outs = {}
    for trait in ("A", "B"):
        out = {k: str(tmp / trait / f"{k}.{ext}") for k, ext in
               (("auc", "tsv"), ("slides", "tsv"), ("rounds", "tsv"), ("tiles", "h5"), ("models", "pt"))}
        tc.run_trait(trait, sheet, paths, expr[trait], splits, cfg, out, "test")
        outs[trait] = out
    return tmp, sheet, paths, expr, truth, splits, cfg, outs


def test_trait_training_protocol(trained):
    tmp, sheet, paths, expr, truth, splits, cfg, outs = trained
    out = outs["A"]
    rounds = pd.read_csv(out["rounds"], sep="\t")
    slides = pd.read_csv(out["slides"], sep="\t", dtype={"patient": str})
    auc = pd.read_csv(out["auc"], sep="\t")
    assert rounds["in_ensemble"].sum() == 3
    # Ensemble = the three rounds with the best validation metric.
    metric = list(zip(rounds["validation_auc"], -rounds["validation_loss"]))
    assert rounds.loc[rounds["in_ensemble"], "round"].tolist() == [i + 1 for i in tc.select_ensemble(metric, 3)]
    # Training + validation use only labelled development slides.
    dev = slides[slides["group"] == "development"]
    assert (rounds["n_train_slides"] + rounds["n_validation_slides"] == len(dev)).all()
    test_patients = set(splits.loc[splits["heldout"] == "test", "patient"])
    assert not set(dev["patient"]) & test_patients
    assert set(slides.loc[slides["group"] == "test", "patient"]) <= test_patients
    assert (slides.loc[slides["group"].isin(["test", "development"]), "label"].isin(["low", "high"])).all()
    assert not slides.loc[slides["ood"], "label"].isin(["low", "high"]).any()
    # AUC table: test / OOD-near / OOD-all x (5 rounds, mean, ensemble); planted signal is learnt.
    assert set(auc["set"]) == {"test", "ood_near", "ood_all"}
    assert len(auc) == 3 * 7
    ens = auc[auc["model"] == "ensemble"].set_index("set")
    assert ens.loc["ood_all", "auc"] > 0.75
    assert ens.loc["ood_all", "ci_lower"] < ens.loc["ood_all", "auc"] < ens.loc["ood_all", "ci_upper"]
    ood = slides[slides["ood"]]
    assert ens.loc["ood_all", "n_slides"] == len(ood)
    assert ens.loc["ood_all", "auc"] == pytest.approx(roc_auc_score(ood["ood_label"], ood["score_ensemble"]))


def test_tile_store_matches_features_and_majority(trained):
    import torch

    tmp, sheet, paths, expr, truth, splits, cfg, outs = trained
    slides = pd.read_csv(outs["A"]["slides"], sep="\t").set_index("sample")
    saved = torch.load(outs["A"]["models"], weights_only=False)
    head = tc.HeadConfig(**saved["head"])
    results = [tc.RoundResult(state=r["state"], mean=r["mean"], std=r["std"], validation_auc=r["validation_auc"],
                              validation_loss=math.nan, best_step=r["best_step"], steps_run=0)
               for r in saved["rounds"]]
    with h5py.File(outs["A"]["tiles"], "r") as handle:
        assert sorted(handle["slides"]) == sorted(sheet["sample"])
        ensemble = [r - 1 for r in handle.attrs["ensemble_rounds"]]
        assert ensemble == [r - 1 for r in saved["ensemble_rounds"]] and len(ensemble) == 3
        for sample in sheet["sample"][:10]:
            with h5py.File(paths[sample], "r") as feats:
                np.testing.assert_array_equal(handle[f"slides/{sample}/coords"][...], feats["coords"][...])
                features = feats["features"][...]
            positive = handle[f"slides/{sample}/positive"][...].astype(bool)
            assert positive.mean() == pytest.approx(slides.loc[sample, "score_ensemble"])
            # Recompute: each round's tile calls, then the majority of the three selected rounds.
            calls = tc.predict_probabilities(results, features, head) > 0.5
            expected = calls[:, ensemble].sum(axis=1) >= 2
            np.testing.assert_array_equal(positive, expected)
            for r in range(5):
                assert calls[:, r].mean() == pytest.approx(slides.loc[sample, f"score_round_{r + 1}"])
        # Predicted tiles track the planted tile trait.
        agree = [np.mean(handle[f"slides/{s}/positive"][...].astype(bool) == truth[s][:, 0]) for s in sheet["sample"]]
    assert np.mean(agree) > 0.65  # chance: about 0.5


def test_trait_outputs_are_deterministic(trained, tmp_path):
    tmp, sheet, paths, expr, truth, splits, cfg, outs = trained
    out = {k: str(tmp_path / f"{k}.{ext}") for k, ext in
           (("auc", "tsv"), ("slides", "tsv"), ("rounds", "tsv"), ("tiles", "h5"), ("models", "pt"))}
    tc.run_trait("A", sheet, paths, expr["A"], splits, cfg, out, "test")
    for key in ("auc", "slides", "rounds"):
        assert open(out[key], "rb").read() == open(outs["A"][key], "rb").read()


def test_hti_table_from_trait_outputs(trained, tmp_path):
    tmp, sheet, paths, expr, truth, splits, cfg, outs = trained
    out = {"table": str(tmp_path / "hti.tsv"), "cartographies": str(tmp_path / "carto.h5"),
           "figure": str(tmp_path / "maps.png")}
    het.run_hti(["A", "B"], {t: outs[t]["tiles"] for t in "AB"}, {t: outs[t]["slides"] for t in "AB"},
                {"continuous": {"source": "classifier"}, "figure_slides": 6}, out, "test")
    table = pd.read_csv(out["table"], sep="\t", dtype={"patient": str}).set_index("sample")
    assert sorted(table.index) == sorted(sheet["sample"])
    assert table["hti"].between(0, 1).all() and table["hti_continuous"].between(0, 1).all()
    prop = table[["p_A", "p_B", "p_A+B"]]
    assert np.allclose(prop.sum(axis=1)[table["n_tiles_positive"] > 0], 1.0)
    with h5py.File(outs["A"]["tiles"], "r") as a, h5py.File(outs["B"]["tiles"], "r") as b:
        sample = sheet["sample"].iloc[0]
        positive = np.stack([a[f"slides/{sample}/positive"][...], b[f"slides/{sample}/positive"][...]], 1)
    assert table.loc[sample, "hti"] == pytest.approx(het.hti(positive.astype(bool)))
    # Eligible for survival: patients none of whose slides trained/validated any trait.
    dev_patients = set(table.loc[(table[["group_A", "group_B"]] == "development").any(axis=1), "patient"])
    assert set(table.loc[table["survival_eligible"], "patient"]).isdisjoint(dev_patients)
    assert set(table.loc[~table["survival_eligible"], "patient"]) == dev_patients
    with h5py.File(out["cartographies"], "r") as carto:
        tensor = carto[f"slides/{sample}/tensor"][...]
        assert tensor.shape[0] == 2 and set(np.unique(tensor)) <= {-1, 0, 1}
        assert (tensor[0] >= 0).sum() == table.loc[sample, "n_tiles"]
    assert (tmp_path / "maps.png").stat().st_size > 1000
