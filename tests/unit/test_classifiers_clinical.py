"""The clinical-label classifiers end to end on a synthetic cohort (emo.classifiers.clinical):
tile selection by density, label coding, patient score = mean of tile probabilities,
metrics recomputed from the written patient table with sklearn, errors."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score, top_k_accuracy_score

from classifiers_fixtures import PAM50, clinical_cohort
from emo import settings
from emo.classifiers import ClassifierConfig, FittedClassifier, clinical
from emo.errors import InputTableError

torch.set_num_threads(1)


def stage_config(**overrides):
    cfg = settings.load({"samples": "x.tsv", "cohorts": {"A": {"expression": "x.tsv", "role": "training",
                                                               "reference": True}}})["clinical_classifiers"]
    return {**cfg, "tiles_per_slide": 15, "max_epochs": 15, "lr": 0.01, **overrides}


def test_select_tiles_takes_the_densest_or_a_seeded_random_choice():
    density = np.array([0.1, 0.9, 0.5, 0.9, 0.2])
    assert list(clinical.select_tiles(density, 2, "density", 0)) == [1, 3]
    assert list(clinical.select_tiles(density, 3, "density", 0)) == [1, 2, 3]
    assert list(clinical.select_tiles(density, 9, "density", 0)) == [0, 1, 2, 3, 4]
    pick = clinical.select_tiles(density, 3, "random", 4)
    assert len(set(pick)) == 3 and list(pick) == sorted(pick)
    assert np.array_equal(pick, clinical.select_tiles(density, 3, "random", 4))


def test_labels_resolve_from_the_table_and_missing_columns_are_refused():
    cfg = stage_config()
    assert clinical.resolve_labels(cfg, ["patient", "er", "pam50", "tp53"], "t") == ["er", "pam50", "tp53"]
    with pytest.raises(InputTableError, match=r"label\(s\) \['histology'\]"):
        clinical.resolve_labels({**cfg, "labels": ["er", "histology"]}, ["patient", "er"], "t")
    table = pd.DataFrame({"patient": ["a", "b", "c", "d"], "pam50": ["LumA", "Normal", None, " Basal "]})
    assert clinical.patient_labels(table, "pam50", PAM50).to_dict() == {"a": 0, "d": 3}


def test_clinical_run_recovers_planted_labels_and_its_tables_are_consistent(tmp_path):
    sheet, paths, table, splits = clinical_cohort(tmp_path)
    cfg = stage_config(labels=["er", "pam50"])
    out = clinical.run(sheet, paths, table, "clinical.tsv", splits, cfg)
    again = clinical.run(sheet, paths, table, "clinical.tsv", splits, cfg)
    assert out["metrics"].equals(again["metrics"])           # deterministic
    patients, metrics = out["patients"], out["metrics"]
    assert set(patients["n_tiles"]) == {15}
    # PAM50 Normal and ER-unknown patients are scored but carry no truth
    er = patients[patients["label"] == "er"]
    assert set(er.loc[er["truth"] == "", "patient"]) == {f"P{i:03d}" for i in range(80) if i % 7 == 0}
    # the patient's probabilities sum to 1 and equal the mean of its tiles' (model re-applied)
    wide = er.pivot(index="patient", columns="class", values="probability")
    assert np.allclose(wide.sum(axis=1), 1.0)
    saved = dict(out["models"]["er"])
    assert saved.pop("classes") == ["negative", "positive"]
    model = FittedClassifier(**{**saved, "config": ClassifierConfig(**saved["config"])})
    tiles = clinical.read_selected_tiles(list(sheet["sample"]), list(sheet["patient"]), paths, cfg)
    proba = model.predict_proba(tiles.features)[:, 1]
    for patient in ("P001", "P040"):
        assert abs(wide.loc[patient, "positive"] - proba[tiles.patients == patient].mean()) <= 1e-9
    # metrics recomputed from the patient table with sklearn
    info = er.drop_duplicates("patient").set_index("patient")
    for set_name, wanted in (("test", ["test"]), ("heldout", ["validation", "test", "external"])):
        chosen = info.index[info["split"].isin(wanted) & (info["truth"] != "")]
        row = metrics[(metrics["label"] == "er") & (metrics["set"] == set_name) & (metrics["level"] == "patient")]
        assert len(row) == 1
        ref = roc_auc_score(info.loc[chosen, "truth"] == "positive", wide.loc[chosen, "positive"])
        assert abs(row["value"].iloc[0] - ref) <= 1e-9
        assert row["n"].iloc[0] == len(chosen)
        assert row["ci_lower"].iloc[0] <= row["value"].iloc[0] <= row["ci_upper"].iloc[0]
    pooled = metrics[(metrics["set"] == "heldout") & (metrics["level"] == "patient")]
    assert pooled.loc[pooled["label"] == "er", "value"].iloc[0] > 0.85
    pam = patients[(patients["label"] == "pam50") & (patients["truth"] != "")]
    pam = pam[pam["split"].isin(["validation", "test", "external"])]
    wide = pam.pivot(index="patient", columns="class", values="probability")[list(PAM50)]
    truth = pam.drop_duplicates("patient").set_index("patient").loc[wide.index, "truth"].map(PAM50.index)
    for k in (1, 2):
        row = pooled[(pooled["label"] == "pam50") & (pooled["metric"] == f"top{k}_accuracy")]
        assert abs(row["value"].iloc[0] - top_k_accuracy_score(truth, wide.to_numpy(), k=k, labels=range(4))) <= 1e-9
    assert pooled[(pooled["label"] == "pam50") & (pooled["metric"] == "top1_accuracy")]["value"].iloc[0] > 0.6
    ovr = pooled[(pooled["label"] == "pam50") & (pooled["metric"] == "auc_ovr")]
    assert list(ovr["class"]) == list(PAM50)
    for c, value in zip(PAM50, ovr["value"]):
        assert abs(value - roc_auc_score(truth == PAM50.index(c), wide[c])) <= 1e-9
    conf = out["confusion"]
    held = conf[(conf["label"] == "pam50") & (conf["set"] == "heldout")]
    assert held["count"].sum() == len(wide)
    tiles = metrics[(metrics["label"] == "er") & (metrics["level"] == "tile") & (metrics["set"] == "heldout")]
    assert tiles["n"].iloc[0] == 15 * pooled.loc[pooled["label"] == "er", "n"].iloc[0]


def test_density_selection_beats_random_on_signal_in_dense_tiles(tmp_path):
    sheet, paths, table, splits = clinical_cohort(tmp_path)
    auc = {}
    for how in ("density", "random"):
        out = clinical.run(sheet, paths, table, "clinical.tsv", splits,
                           stage_config(labels=["er"], tile_selection=how, tiles_per_slide=8))
        m = out["metrics"]
        auc[how] = m[(m["set"] == "heldout") & (m["level"] == "tile")]["value"].iloc[0]
    assert auc["density"] > auc["random"] + 0.05, auc


def test_a_label_without_two_classes_in_train_is_refused_when_listed_and_skipped_when_auto(tmp_path):
    sheet, paths, table, splits = clinical_cohort(tmp_path, n_patients=24)
    table["er"] = "positive"
    with pytest.raises(InputTableError, match="label 'er': the train patients' tiles hold only"):
        clinical.run(sheet, paths, table, "clinical.tsv", splits, stage_config(labels=["er"]))
    out = clinical.run(sheet, paths, table, "clinical.tsv", splits, stage_config(labels=None))
    status = out["status"].set_index("label")
    assert list(status.index) == ["er", "pam50"] and out["labels"] == ["pam50"]
    assert status.loc["er", "status"] == "skipped" and "hold only" in status.loc["er", "reason"]
    assert status.loc["pam50", "status"] == "trained" and status.loc["pam50", "epochs_run"] >= 1
    train = dict(item.split(":") for item in status.loc["er", "train_patients"].split(","))
    assert train["negative"] == "0" and int(train["positive"]) > 0
    assert set(out["metrics"]["label"]) == {"pam50"}
    table["pam50"] = "LumA"
    none = clinical.run(sheet, paths, table, "clinical.tsv", splits, stage_config(labels=None))
    assert none["labels"] == [] and list(none["status"]["status"]) == ["skipped", "skipped"]
    assert none["metrics"].empty and list(none["metrics"].columns) == clinical.METRIC_COLUMNS
    from emo.classifiers.figures import confusion_figure, roc_figure

    roc_figure(none["patients"], none["metrics"], [], {}, tmp_path / "roc.png")
    confusion_figure(none["confusion"], [], {}, tmp_path / "confusion.png")
    assert (tmp_path / "roc.png").stat().st_size > 0 and (tmp_path / "confusion.png").stat().st_size > 0


def test_head_reported_beside_colour_texture_and_ridge_baselines_on_the_same_patients(tmp_path):
    """comparison.tsv: the head's patient metrics, the same head on the tiles' colour/texture
    descriptors, and L2 logistic regression on patient-mean features, per set, on the same
    patients. The fixture's signal is in the encoder features only, so the colour/texture
    baseline stays near chance while the head and the ridge baseline find ER."""
    from sklearn.linear_model import LogisticRegression

    sheet, paths, table, splits = clinical_cohort(tmp_path)
    cfg = stage_config(labels=["er", "pam50"])
    out = clinical.run(sheet, paths, table, "clinical.tsv", splits, cfg)
    comparison = out["comparison"]
    assert set(comparison["model"]) == {"head", "colour_texture", "ridge_logistic"}
    head = out["metrics"][out["metrics"]["level"] == "patient"]
    keys = ["label", "set", "metric", "class"]
    for model, part in comparison.groupby("model"):
        merged = part.merge(head, on=keys, suffixes=("", "_head"))
        assert len(merged) == len(part) == len(head), model
        assert (merged["n"] == merged["n_head"]).all(), model  # the same evaluation patients
        if model == "head":
            assert np.allclose(merged["value"], merged["value_head"], equal_nan=True)
    er = comparison[(comparison["label"] == "er") & (comparison["set"] == "heldout")].set_index("model")["value"]
    print(er.to_dict())
    assert er["head"] > 0.85 and er["ridge_logistic"] > 0.85 and er["colour_texture"] < 0.75
    # the ridge baseline against sklearn fitted by hand on the train + tune patients' mean features
    tiles = clinical.read_selected_tiles(list(sheet["sample"]), list(sheet["patient"]), paths, cfg)
    names, mean = clinical.group_mean(tiles.features, tiles.patients)
    y = clinical.patient_labels(table, "er", ("negative", "positive"))
    split_of = dict(zip(splits["patient"], splits["split"]))
    labelled = np.asarray([p in y.index for p in names])
    fit_rows = labelled & np.isin([split_of[p] for p in names], ["train", "tune"])
    centre, scale = mean[fit_rows].mean(0), mean[fit_rows].std(0) + 1e-6
    reference = LogisticRegression(C=1.0, max_iter=2000).fit((mean[fit_rows] - centre) / scale,
                                                             y.loc[names[fit_rows]].to_numpy())
    held = labelled & np.isin([split_of[p] for p in names], ["validation", "test", "external"])
    score = reference.predict_proba((mean[held] - centre) / scale)[:, 1]
    assert abs(er["ridge_logistic"] - roc_auc_score(y.loc[names[held]].to_numpy(), score)) <= 1e-9
    assert clinical.run(sheet, paths, table, "clinical.tsv", splits, {**cfg, "baselines": False})["comparison"].empty
