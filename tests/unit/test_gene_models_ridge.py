"""Ridge baseline: vectorised per-gene alpha selection equals sklearn's GridSearchCV
with GroupKFold by patient; the refit equals sklearn Ridge."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold

from emo import ridge
from emo.stores.models import read_ridge_store, write_ridge_store


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n_patients, dim, n_genes = 30, 40, 6
    patient_of_row = np.repeat(np.arange(n_patients), rng.integers(1, 3, n_patients))
    z = rng.normal(size=(n_patients, dim))
    x = z[patient_of_row] + 0.3 * rng.normal(size=(len(patient_of_row), dim))
    beta = rng.normal(size=(dim, n_genes)) * np.array([0, 0.05, 0.2, 0.5, 1, 3])
    y = x @ beta + rng.normal(size=(len(patient_of_row), n_genes)) * np.array([1, 1, 1, 2, 0.5, 0.2])
    groups = np.array([f"P{p:03d}" for p in patient_of_row])
    return x, y, groups


def test_alpha_selection_and_fit_match_sklearn(data):
    x, y, groups = data
    alphas = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 1e4]
    fitted = ridge.fit_cv(x, y, groups, alphas, n_folds=5)
    chosen = set()
    for g in range(y.shape[1]):
        search = GridSearchCV(Ridge(), {"alpha": alphas}, cv=GroupKFold(n_splits=5),
                              scoring="neg_mean_squared_error")
        search.fit(x, y[:, g], groups=groups)
        assert fitted["alpha"][g] == search.best_params_["alpha"]
        np.testing.assert_allclose(fitted["cv_mse"][g], -search.best_score_, rtol=1e-7)
        np.testing.assert_allclose(fitted["cv_scores"][:, g], -search.cv_results_["mean_test_score"], rtol=1e-7)
        model = search.best_estimator_
        np.testing.assert_allclose(fitted["coef"][g], model.coef_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(fitted["intercept"][g], model.intercept_, rtol=1e-6, atol=1e-9)
        chosen.add(fitted["alpha"][g])
    assert len(chosen) > 1  # genes really get different penalties


def test_predict_and_store_round_trip(tmp_path, data):
    x, y, groups = data
    fitted = ridge.fit_cv(x, y, groups, [0.1, 10.0], n_folds=3)
    fitted.update({"genes": [f"G{i}" for i in range(y.shape[1])], "feature_mean": np.zeros(x.shape[1]),
                   "feature_sd": np.ones(x.shape[1]), "samples": [f"S{i}" for i in range(len(x))]})
    write_ridge_store(tmp_path / "r.h5", fitted, {"code_version": "t"})
    model = read_ridge_store(tmp_path / "r.h5")
    assert model.genes == fitted["genes"] and model.samples == fitted["samples"]
    assert model.attrs["code_version"] == "t"
    expected = np.stack([Ridge(alpha=a).fit(x, y[:, g]).predict(x[:4]) for g, a in enumerate(fitted["alpha"])], 1)
    np.testing.assert_allclose(ridge.predict(model, x[:4]), expected, rtol=1e-6, atol=1e-9)


def test_needs_two_patients():
    with pytest.raises(Exception, match="at least 2 patients"):
        ridge.cv_scores(np.ones((3, 2)), np.ones((3, 1)), ["a", "a", "a"], [1.0])
