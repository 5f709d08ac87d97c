"""emo.classifiers: the shared head (fit / predict_proba / group_mean), patient- and
site-disjoint folds, and the site-leakage demonstration: with a site stain shift and a
site-correlated label, patient-hash splits over-estimate the AUC, site splits do not."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from emo import splits
from emo.classifiers import ClassifierConfig, delong_auc, fit, group_mean, patient_folds
from emo.errors import SampleSheetError

torch.set_num_threads(1)

CFG = ClassifierConfig(hidden=0, dropout=0.0, lr=0.05, weight_decay=0.0, batch_size=256, max_epochs=40,
                       patience=5, balance_classes=True, seed=3)


def test_group_mean_is_the_per_group_mean():
    values = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    names, mean = group_mean(values, np.array(["b", "a", "b", "a"]))
    assert list(names) == ["a", "b"]
    assert np.allclose(mean, [[0.1, 0.9], [0.75, 0.25]])


def test_fit_learns_a_multiclass_problem_deterministically_and_stops_early():
    rng = np.random.default_rng(0)
    n, d, c = 1200, 6, 3
    y = rng.integers(0, c, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, :c] += 2.0 * np.eye(c)[y]
    groups = np.repeat(np.arange(n // 10), 10).astype(str)
    tune = (x[:300], y[:300], groups[:300])
    model = fit(x[300:], y[300:], c, CFG, tune=tune)
    again = fit(x[300:], y[300:], c, CFG, tune=tune)
    proba = model.predict_proba(x[:300])
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(proba, again.predict_proba(x[:300]))
    assert (proba.argmax(axis=1) == y[:300]).mean() > 0.8
    assert 1 <= model.best_epoch <= model.epochs_run <= CFG.max_epochs
    losses = [h["tune_loss"] for h in model.history]
    assert model.best_tune_loss == pytest.approx(min(losses))
    with pytest.raises(ValueError, match="two classes"):
        fit(x[:10], np.zeros(10, int), c, CFG)


def test_patient_folds_are_patient_and_site_disjoint_and_balanced():
    patients = [f"P{i:03d}" for i in range(100)]
    folds = patient_folds(patients, 5, seed=1)
    assert list(folds["patient"]) == patients
    assert folds["fold"].value_counts().tolist() == [20] * 5
    assert patient_folds(reversed(patients), 5, seed=1).equals(folds)
    sites = {p: f"S{i % 13}" for i, p in enumerate(patients)}
    by_site = patient_folds(patients, 5, seed=1, groups=sites)
    assert (by_site.groupby("group")["fold"].nunique() == 1).all()
    sizes = by_site["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 8  # whole sites of 7-8 patients
    with pytest.raises(ValueError, match="groups cannot fill"):
        patient_folds(patients[:3], 5, seed=0)


def _site_cohort(n_sites, per_site, seed, prefix="S"):
    """Patients of ``n_sites`` tissue source sites. Biology: one feature shifted by 1 in
    label-positive patients (a biology-only classifier's AUC is Phi(1 / sqrt 2) = 0.760).
    Stain: each site adds its own random shift to 16 stain features (the planted site
    stain; the patients' own stain varies around it). The label's prevalence depends on
    the site (0.15 or 0.85): a site-correlated label, so a site's stain carries a label
    prior that holds only at that site."""
    rng = np.random.default_rng(seed)
    shift = rng.normal(0, 1.0, size=(n_sites, 16))
    prevalence = np.where(rng.random(n_sites) < 0.5, 0.15, 0.85)
    site = np.repeat(np.arange(n_sites), per_site)
    label = (rng.random(len(site)) < prevalence[site]).astype(int)
    x = np.c_[rng.normal(size=len(site)) + label, shift[site] + rng.normal(0, 0.5, (len(site), 16))]
    names = [f"{prefix}{s:02d}-{i:03d}" for s in range(n_sites) for i in range(per_site)]
    sheet = pd.DataFrame({"sample": names, "patient": names, "cohort": "TCGA", "split": "",
                          "site": [f"{prefix}{s:02d}" for s in site], "label": label})
    return sheet, x.astype(np.float32)


def _estimate(sheet, x, by):
    """Held-out AUC (DeLong) of a model trained on the train split of ``by`` splits."""
    table = splits.assign_splits(sheet, {"TCGA": "training"}, seed=5,
                                 proportions={"train": 0.6, "tune": 0.0, "validation": 0.0, "test": 0.4}, by=by)
    split = sheet["patient"].map(dict(zip(table["patient"], table["split"]))).to_numpy()
    train, test = split == "train", split == "test"
    y = sheet["label"].to_numpy()
    model = fit(x[train], y[train], 2, CFG)
    score = model.predict_proba(x[test])[:, 1]
    auc = delong_auc(y[test], score)
    assert abs(auc[0] - roc_auc_score(y[test], score)) < 1e-12
    return model, auc, table


def test_site_correlated_label_is_overestimated_by_patient_splits_not_by_site_splits():
    """What a split's AUC promises is the AUC on patients of new sites (a new hospital,
    an independent cohort): measured here on 3,000 patients of 100 fresh sites."""
    sheet, x = _site_cohort(60, 40, seed=11)
    fresh, x_fresh = _site_cohort(100, 30, seed=99, prefix="N")
    biological = stats.norm.cdf(1 / math.sqrt(2))
    out = {}
    for by in ("patient", "site"):
        model, (auc, _, lo, hi), table = _estimate(sheet, x, by)
        new_sites = roc_auc_score(fresh["label"], model.predict_proba(x_fresh)[:, 1])
        out[by] = (auc, lo, hi, new_sites, table)
    print(f"\nbiology-only AUC {biological:.3f}; " + "; ".join(
        f"{by} splits: held-out AUC {a:.3f} ({lo:.3f}-{hi:.3f}), on new sites {n:.3f}"
        for by, (a, lo, hi, n, _) in out.items()))
    merged = out["patient"][4].merge(sheet[["patient", "site"]], on="patient")
    assert (merged.groupby("site")["split"].nunique() > 1).all()      # patient hash: sites in train and test
    assert (out["site"][4].groupby("site")["split"].nunique() == 1).all()
    auc_p, _, _, new_p, _ = out["patient"]
    auc_s, lo_s, hi_s, new_s, _ = out["site"]
    assert auc_p > auc_s + 0.05                   # the sites' stain inflates the patient-split AUC ...
    assert auc_p > new_p + 0.05 and auc_p > biological + 0.05   # ... above what holds at new sites
    assert abs(auc_s - biological) < 0.05         # site splits: about the biology's AUC
    assert auc_p - new_p > (auc_s - new_s) + 0.03   # patient splits are the more optimistic
    assert max(new_p, new_s) <= biological + 0.03
