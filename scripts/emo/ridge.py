"""Ridge-regression baseline on slide-mean features, all genes in one vectorised fit.

For every gene the penalty ``alpha`` is chosen from a grid by inner cross-validation
with folds grouped by patient (sklearn ``GroupKFold``); the score is the mean over
folds of the fold's mean squared error, as ``GridSearchCV(Ridge(), ...,
scoring="neg_mean_squared_error")``; ties go to the first alpha of the grid. Each fit
is ``sklearn.linear_model.Ridge(alpha, fit_intercept=True)``: X and Y are centred
on the fitting rows and the ridge solution is taken from one SVD of the centred X,
shared by every gene and every alpha:

    coef(alpha) = V diag(s / (s^2 + alpha)) U^T Y_c
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import InputTableError
from .stores.features import open_feature_store

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))

# The ridge baselines every model is reported beside: name -> the feature-store dataset
# whose slide means they are fitted on (the encoder's features; 40 colour/texture
# descriptors of the same tiles, emo.colour_texture).
BASELINE_INPUTS = {"ridge": "features", "colour_texture": "colour_texture"}


def _svd(x: np.ndarray):
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > s.max(initial=0.0) * 1e-12
    return u[:, keep], s[keep], vt[keep]


def cv_scores(x: np.ndarray, y: np.ndarray, groups: Sequence, alphas: Sequence[float],
              n_folds: int = 5) -> np.ndarray:
    """Mean over GroupKFold folds of the per-gene test MSE: (len(alphas), genes)."""
    from sklearn.model_selection import GroupKFold  # lazy: prediction jobs need no sklearn

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    folds = min(int(n_folds), n_groups)
    if folds < 2:
        raise InputTableError(f"the ridge baseline needs slides of at least 2 patients for its inner cross-"
                              f"validation, got {n_groups}")
    scores = np.zeros((len(alphas), y.shape[1]))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        x_mean = x[train].mean(0)
        y_mean = y[train].mean(0)
        u, s, vt = _svd(x[train] - x_mean)
        uty = u.T @ (y[train] - y_mean)                    # (k, G)
        xv = (x[test] - x_mean) @ vt.T                      # (n_test, k)
        for a, alpha in enumerate(alphas):
            pred = (xv * (s / (s * s + alpha))) @ uty + y_mean
            scores[a] += ((pred - y[test]) ** 2).mean(0)
    return scores / folds


def fit(x: np.ndarray, y: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with one alpha per gene: coef (G, D), intercept (G,)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_mean = x.mean(0)
    y_mean = y.mean(0)
    u, s, vt = _svd(x - x_mean)
    uty = u.T @ (y - y_mean)                                # (k, G)
    shrink = s[:, None] / (s[:, None] ** 2 + np.asarray(alpha, dtype=np.float64)[None, :])
    coef = (vt.T @ (shrink * uty)).T                        # (G, D)
    return coef, y_mean - coef @ x_mean


def fit_cv(x: np.ndarray, y: np.ndarray, groups: Sequence, alphas: Sequence[float] = DEFAULT_ALPHAS,
           n_folds: int = 5) -> dict:
    """Per-gene alpha by grouped inner CV, then a refit on all rows."""
    alphas = [float(a) for a in alphas]
    scores = cv_scores(x, y, groups, alphas, n_folds)
    best = np.argmin(scores, axis=0)                        # first minimum = first alpha on ties
    alpha = np.asarray(alphas)[best]
    coef, intercept = fit(x, y, alpha)
    return {"coef": coef, "intercept": intercept, "alpha": alpha,
            "cv_mse": scores[best, np.arange(scores.shape[1])], "alphas": np.asarray(alphas), "cv_scores": scores}


def slide_mean_features(path: str | Path, dataset: str = "features") -> np.ndarray:
    """Mean row of a slide's ``/features`` (or ``/colour_texture``) (float64), streamed
    from its feature store."""
    with open_feature_store(path) as store:
        if store.n_tiles == 0:
            raise InputTableError(f"feature store {path} has no tiles")
        total = None
        for block in store.iter_blocks(16384, dataset):
            part = block.astype(np.float64).sum(0)
            total = part if total is None else total + part
        return total / store.n_tiles


def train_baseline(genes: Sequence[str], expression: Mapping, features: Mapping[str, str],
                   sample_patient: Mapping[str, str], alphas: Sequence[float], n_folds: int,
                   dataset: str = "features") -> dict:
    """Fit the baseline on the given slides (train + tune): one row per slide (the slide
    mean of the feature store's ``dataset``), target = its patient's expression, groups
    = patients. Inputs are standardised with the fitting slides' mean/sd (stored) so one
    penalty suits all dimensions."""
    samples = sorted(features)
    if not samples:
        raise InputTableError("the ridge baseline has no training slides")
    x = np.stack([slide_mean_features(features[s], dataset) for s in samples])
    f_mean = x.mean(0)
    f_sd = x.std(0)
    f_sd[f_sd < 1e-8] = 1.0
    row = {p: i for i, p in enumerate(expression["patients"])}
    col = {g: i for i, g in enumerate(expression["genes"])}
    patients = [sample_patient[s] for s in samples]
    y = np.asarray(expression["values"], dtype=np.float64)[[row[p] for p in patients]][:, [col[g] for g in genes]]
    fitted = fit_cv((x - f_mean) / f_sd, y, patients, alphas, n_folds)
    fitted.update({"genes": list(genes), "feature_mean": f_mean, "feature_sd": f_sd, "samples": samples})
    return fitted


def predict(model: Mapping, mean_features: np.ndarray) -> np.ndarray:
    """Slide-mean features (D,) or (N, D) -> predictions (G,) or (N, G)."""
    x = (np.asarray(mean_features, dtype=np.float64) - model["feature_mean"]) / model["feature_sd"]
    return x @ np.asarray(model["coef"]).T + model["intercept"]
