"""Image + expression fusion (emo.classifiers.fusion): metrics against sklearn, folds
shared by every model and patient-disjoint, expression preprocessing fitted on the
training folds only, the missing-modality error, the attention store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from emo.classifiers import fusion
from emo.classifiers.metrics import (average_precision, bootstrap_metrics, classification_metrics, f1_binary,
                                     macro_f1, rank_auc)
from emo.errors import InputTableError
from fusion_fixtures import fusion_cohort, fusion_config

FAST = {"targets": ["pam50:Basal", "her2", "pam50"], "bootstrap": 50, "patches_per_patient": 8,
        "head": {"hidden": 0, "dropout": 0.25, "lr": 0.05, "weight_decay": 0.01, "batch_size": 64, "max_epochs": 30},
        "cross_attention": {"dim": 8, "heads": 2, "dropout": 0.1, "lr": 0.02, "weight_decay": 0.001, "epochs": 25}}


# ----------------------------------------------------------------------------- metrics

@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_match_sklearn(ties):
    rng = np.random.default_rng(1)
    for n in (7, 40, 301):
        y = rng.random(n) < 0.3
        y[:2] = [True, False]
        score = rng.random(n)
        if ties:
            score = np.round(score, 1)
        assert abs(average_precision(y, score) - average_precision_score(y, score)) <= 1e-9
        assert abs(rank_auc(y, score) - roc_auc_score(y, score)) <= 1e-9
        assert abs(f1_binary(y, score > 0.5) - f1_score(y, score > 0.5)) <= 1e-9
        m = classification_metrics(y.astype(int), np.c_[1 - score, score])
        assert abs(m["pr_auc"] - average_precision_score(y, score)) <= 1e-9
        assert abs(m["f1"] - f1_score(y, np.c_[1 - score, score].argmax(1) == 1)) <= 1e-9
    assert f1_binary(np.zeros(5, bool), np.zeros(5, bool)) == 0.0  # sklearn zero_division=0
    assert np.isnan(average_precision(np.zeros(5, bool), np.arange(5.0)))


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 120)
    proba = rng.dirichlet(np.ones(4), 120)
    proba[np.arange(120), y] += 0.3
    proba /= proba.sum(axis=1, keepdims=True)
    m = classification_metrics(y, proba)
    assert abs(m["f1"] - f1_score(y, proba.argmax(1), average="macro", labels=range(4))) <= 1e-9
    assert abs(m["pr_auc"] - average_precision_score(np.eye(4)[y], proba, average="macro")) <= 1e-9
    assert abs(m["roc_auc"] - roc_auc_score(y, proba, multi_class="ovr", average="macro")) <= 1e-9
    assert abs(macro_f1(y, proba.argmax(1), 4) - m["f1"]) <= 1e-12


def test_bootstrap_rows_are_the_point_metrics_of_resamples():
    rng = np.random.default_rng(3)
    y = (rng.random(60) < 0.4).astype(int)
    p1 = np.clip(0.3 * y + rng.random(60) * 0.7, 0, 1)
    proba = np.c_[1 - p1, p1]
    a = bootstrap_metrics(y, proba, 200, seed=5)
    assert a == bootstrap_metrics(y, proba, 200, seed=5)  # seeded
    rows = np.random.default_rng(5).integers(0, 60, size=(200, 60))
    ap = [average_precision_score(y[r], p1[r]) for r in rows if y[r].any()]
    assert abs(a["pr_auc"][1] - np.quantile(ap, 0.025)) <= 1e-9
    assert abs(a["pr_auc"][0] - average_precision_score(y, p1)) <= 1e-9
    for value, lo, hi in a.values():
        assert lo <= value <= hi


# ----------------------------------------------------------------------------- preprocessing

def test_expression_scaler_iqr_clip_then_zscore():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3))
    x[0, 0] = 40.0  # an outlier
    s = fusion.ExpressionScaler.fit(x, 1.5)
    q1, q3 = np.percentile(x, [25, 75], axis=0)
    np.testing.assert_allclose(s.upper, q3 + 1.5 * (q3 - q1))
    clipped = np.clip(x, q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    z = s.transform(x)
    np.testing.assert_allclose(z, (clipped - clipped.mean(0)) / clipped.std(0), atol=1e-5)
    assert z[0, 0] == pytest.approx(z[:, 0].max())
    assert abs(z[0, 0]) < 5  # the outlier is clipped to the fence


# ----------------------------------------------------------------------------- the stage

@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fusion")
    return fusion_cohort(tmp, n_patients=48, tiles=10, dim=6, genes=8, image_signal=1.5, expression_signal=2.0)


@pytest.fixture(scope="module")
def result(cohort):
    import torch

    torch.set_num_threads(1)
    sheet, paths, expression, clinical, splits = cohort
    return fusion.run(sheet, paths, expression, clinical, "clinical.tsv", splits, fusion_config(**FAST))


def test_folds_shared_by_every_model_and_patient_disjoint(result, cohort):
    _, _, _, _, splits = cohort
    folds = result["folds"]
    assert sorted(folds["patient"]) == sorted(splits.loc[splits["split"] != "external", "patient"])
    assert folds["patient"].is_unique  # one fold per patient: the folds are patient-disjoint
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    p = result["predictions"]
    cv = p[p["set"] == "cv"].drop_duplicates(["target", "model", "patient"])
    fold_of = dict(zip(folds["patient"], folds["fold"]))
    assert (cv["fold"] == cv["patient"].map(fold_of)).all()
    per_model = cv.groupby(["target", "model"])["patient"].apply(lambda s: tuple(sorted(s)))
    for target, table in per_model.groupby(level=0):
        assert len(set(table)) == 1, target  # every model scores the same cv patients
    assert set(p["model"]) == set(fusion.MODELS)
    ext = p[p["set"] == "external"]
    assert (ext["fold"] == -1).all() and not set(ext["patient"]) & set(folds["patient"])


def test_metrics_recomputed_from_predictions_with_sklearn(result):
    p, m = result["predictions"], result["metrics"]
    for row in m[m["n"] > 0].to_dict("records"):
        t = p[(p["target"] == row["target"]) & (p["model"] == row["model"]) & (p["set"] == row["set"])]
        wide = t.pivot(index="patient", columns="class", values="probability")
        classes = list(dict.fromkeys(t["class"]))
        wide = wide[classes]
        truth = t.drop_duplicates("patient").set_index("patient").loc[wide.index, "truth"]
        y = np.array([classes.index(v) for v in truth])
        if len(classes) == 2:
            if len(set(y)) < 2:
                continue
            assert abs(row["pr_auc"] - average_precision_score(y, wide.iloc[:, 1])) <= 1e-9
            assert abs(row["f1"] - f1_score(y, wide.to_numpy().argmax(1))) <= 1e-9
            assert abs(row["roc_auc"] - roc_auc_score(y, wide.iloc[:, 1])) <= 1e-9
        else:
            assert abs(row["f1"] - f1_score(y, wide.to_numpy().argmax(1), average="macro",
                                            labels=range(len(classes)))) <= 1e-9


def test_planted_signal_and_negative_control(result):
    """Basal is planted in both modalities, HER2 in expression only: image-only is near
    chance on HER2 and fusion is at least the best unimodal model on Basal."""
    m = result["metrics"].set_index(["target", "model", "set"])
    assert m.loc[("her2", "expression", "cv"), "roc_auc"] > 0.75
    assert abs(m.loc[("her2", "image", "cv"), "roc_auc"] - 0.5) < 0.25
    assert m.loc[("pam50:Basal", "image", "cv"), "roc_auc"] > 0.8
    summary = result["summary"]
    basal = summary[(summary["target"] == "pam50:Basal") & (summary["set"] == "cv") & (summary["metric"] == "pr_auc")]
    assert basal["best_fusion_value"].iloc[0] >= basal["best_unimodal_value"].iloc[0] - 0.05


def test_zscore_of_a_fold_ignores_its_test_patients(cohort, monkeypatch):
    import torch

    torch.set_num_threads(1)
    sheet, paths, expression, clinical, splits = cohort
    seen = []
    original = fusion.ExpressionScaler.fit.__func__

    def spy(cls, x, k):
        seen.append(np.asarray(x).copy())
        return original(cls, x, k)

    monkeypatch.setattr(fusion.ExpressionScaler, "fit", classmethod(spy))
    cfg = fusion_config(**{**FAST, "targets": ["her2"], "models": ["expression"]})
    out = fusion.run(sheet, paths, expression, clinical, "clinical.tsv", splits, cfg)
    folds = out["folds"]
    assert len(seen) == 5
    for fold, x in enumerate(seen):
        train = sorted(folds.loc[folds["fold"] != fold, "patient"])
        np.testing.assert_array_equal(np.sort(x, axis=0), np.sort(expression.loc[train].to_numpy(), axis=0))
    # an extreme change of fold 0's test patients leaves fold 0's fences and z-score as they were
    test0 = folds.loc[folds["fold"] == 0, "patient"]
    changed = expression.copy()
    changed.loc[test0] += 50.0
    first = list(seen)
    seen.clear()
    fusion.run(sheet, paths, changed, clinical, "clinical.tsv", splits, cfg)
    a, b = (fusion.ExpressionScaler.fit(x[0], 1.5) for x in ((first[0],), (seen[0],)))
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.upper, b.upper)
    assert not np.array_equal(first[1], seen[1])  # fold 1 trains on those patients


def test_missing_modality_refused_naming_the_patient(cohort, tmp_path):
    sheet, paths, expression, clinical, splits = cohort
    gap = expression.copy()
    gap.loc["P003", "G002"] = np.nan
    sheet = pd.concat([sheet, pd.DataFrame({"sample": ["P777-A"], "patient": ["P777"]})], ignore_index=True)
    from classifiers_fixtures import write_store

    write_store(tmp_path / "P777-A.h5", np.zeros((0, 6)), np.zeros(0), "P777-A")  # a slide without tiles
    paths = {**paths, "P777-A": str(tmp_path / "P777-A.h5")}
    clinical = pd.concat([clinical, pd.DataFrame({"patient": ["P777"], "pam50": ["LumA"], "her2": ["negative"],
                                                  "er": ["positive"]})], ignore_index=True)
    gap.loc["P777"] = 6.0
    splits = pd.concat([splits, pd.DataFrame({"patient": ["P777"], "split": ["train"]})], ignore_index=True)
    cfg = fusion_config(**{**FAST, "targets": ["her2"], "models": ["expression"]})
    with pytest.raises(InputTableError, match=r"P003 \(no expression\).*P777 \(no image\).*missing_modality: drop"):
        fusion.run(sheet, paths, gap, clinical, "clinical.tsv", splits, cfg)
    out = fusion.run(sheet, paths, gap, clinical, "clinical.tsv", splits, {**cfg, "missing_modality": "drop"})
    assert out["missing"].to_dict("records") == [{"patient": "P003", "modality": "expression"},
                                                 {"patient": "P777", "modality": "image"}]
    assert not {"P003", "P777"} & set(out["predictions"]["patient"])


def test_targets_coding_and_unknown_column():
    clinical = pd.DataFrame({"patient": ["a", "b", "c", "d"], "pam50": ["Basal", "LumA", "", "Normal"],
                             "her2": ["positive", "negative", "negative", None]})
    cfg = fusion_config()
    basal = fusion.target_labels(clinical, fusion.target_spec("pam50:Basal", cfg))
    assert basal.to_dict() == {"a": 1, "b": 0, "d": 0}  # one vs every other PAM50 call
    multi = fusion.target_labels(clinical, fusion.target_spec("pam50", cfg))
    assert multi.to_dict() == {"a": 3, "b": 0}  # Normal is not one of the four classes
    with pytest.raises(InputTableError, match=r"\['er'\].*fusion.targets"):
        fusion.check_targets({**cfg, "targets": ["er"]}, clinical.columns, "clinical table x")


def test_attention_store_round_trip(result, tmp_path):
    from emo.stores.fusion import read_fusion_attention, write_fusion_attention

    store = fusion.attention_store(result, fusion_config(**FAST), "v1")
    write_fusion_attention(tmp_path / "attention.h5", store)
    back = read_fusion_attention(tmp_path / "attention.h5")
    assert back.attrs["code_version"] == "v1" and "created" not in back.attrs
    t = back.targets["pam50:Basal"]
    assert t.weights.shape == (len(t.patients), len(back.genes), 8)
    real = t.samples != ""
    sums = np.where(real[:, None, :], t.weights.astype(np.float64), 0).sum(axis=2)
    np.testing.assert_allclose(sums, 1.0, atol=5e-3)  # each gene's attention over the patient's patches
    assert set(t.set) == {"cv", "external"}


# ----------------------------------------------------------------------------- stacked late fusion

def _two_modalities(n, image_signal, expression_signal, image_dims, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    image = rng.normal(size=(n, image_dims)).astype(np.float32)
    image[:, 0] += image_signal * y
    expression = rng.normal(size=(n, 6)) + 5.0
    expression[:, 0] += expression_signal * y
    return y, image, expression


def _stacked_vs_unimodal(y, image, expression, n_train, cfg):
    head = fusion.head_config(cfg)
    train = np.arange(len(y)) < n_train
    score = ~train
    xe = fusion.ExpressionScaler.fit(expression[train], 1.5).transform(expression)
    p_image = fusion.fit(image[train], y[train], 2, head).predict_proba(image[score])
    p_expr = fusion.fit(xe[train], y[train], 2, head).predict_proba(xe[score])
    stacked = fusion.stacked_late_fusion(image, expression, y, train, score, (p_image, p_expr), 2, head, 1.5, 0, "cpu")
    mean = 0.5 * p_image + 0.5 * p_expr
    truth = y[score]
    return {name: roc_auc_score(truth, p[:, 1]) for name, p in
            (("image", p_image), ("expression", p_expr), ("stacked", stacked), ("mean", mean))}


def test_stacked_late_fusion_trusts_the_informative_modality_and_combines_independent_ones():
    """Stacking learns how far to trust each modality: with a noise-only, over-fitted image
    model it keeps the expression model's ranking (where a plain mean of probabilities
    loses it); with two independent informative modalities it beats both."""
    cfg = fusion_config(head={"hidden": 0, "dropout": 0.25, "lr": 0.05, "weight_decay": 0.0, "batch_size": 64,
                              "max_epochs": 60})
    noise = _stacked_vs_unimodal(*_two_modalities(400, 0.0, 1.5, 150, seed=3), n_train=250, cfg=cfg)
    print(noise)
    assert noise["image"] < 0.62 and noise["expression"] > 0.8
    assert noise["stacked"] >= noise["expression"] - 0.02 and noise["stacked"] > noise["mean"] + 0.02
    both = _stacked_vs_unimodal(*_two_modalities(600, 1.0, 1.0, 4, seed=4), n_train=300, cfg=cfg)
    print(both)
    assert both["stacked"] > max(both["image"], both["expression"]) + 0.02
