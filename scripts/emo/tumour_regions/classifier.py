"""The tumour/normal tile classifier: L2-penalised logistic regression on the frozen
tile features of the annotated slides' labelled tiles (sklearn ``LogisticRegression``,
lbfgs, deterministic), features standardised with the training tiles' mean and sd.

EMO (paper 001) segments invasive cancer with a separate CNN trained on annotated
regions; Ektefaie et al. (paper 000) fine-tune a tumour/normal tile classifier. Here
the encoder is frozen, as for the gene heads, so a linear classifier on its features
suffices and costs seconds. The reported AUC is cross-validated with folds grouped by
slide (a slide's tiles never sit in both the fitting and the scored fold).
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import InputTableError


def select_rows(n: int, cap: int, seed: int, sample: str) -> np.ndarray:
    """Sorted row indices of at most ``cap`` of ``n`` rows, seeded by the sample name only
    (the draw of emo.gene_models.select_tiles, without importing torch: this stage runs
    in the stats environment)."""
    if n <= cap:
        return np.arange(n)
    digest = int.from_bytes(hashlib.sha256(sample.encode()).digest()[:8], "big")
    rng = np.random.default_rng([int(seed), digest])
    return np.sort(rng.choice(n, size=int(cap), replace=False))


def training_set(slides: Mapping[str, tuple[np.ndarray, np.ndarray]], cap: int, seed: int):
    """Labelled tiles of the annotated slides: ``slides`` maps sample -> (features (N, D),
    labels (N,) 1 tumour / 0 normal / -1 unlabelled). Returns x, y, groups (sample per
    row), in sorted-sample order, at most ``cap`` labelled tiles per slide (seeded)."""
    xs, ys, groups = [], [], []
    for sample in sorted(slides):
        features, labels = slides[sample]
        labelled = np.flatnonzero(np.asarray(labels) >= 0)
        rows = labelled[select_rows(len(labelled), cap, seed, sample)]
        xs.append(np.asarray(features, dtype=np.float64)[rows])
        ys.append(np.asarray(labels)[rows].astype(np.int64))
        groups += [sample] * len(rows)
    x = np.concatenate(xs) if xs else np.zeros((0, 0))
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    return x, y, np.asarray(groups, dtype=object)


def _logistic(c: float, balance: bool):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=float(c), class_weight="balanced" if balance else None, max_iter=5000,
                              solver="lbfgs")


def fit(slides: Mapping[str, tuple[np.ndarray, np.ndarray]], settings: Mapping) -> dict:
    """Fit the classifier (``settings``: the tumour_regions section). Returns ``coef``
    (D,), ``intercept``, ``feature_mean``/``feature_sd`` (D,), ``samples``, the
    per-slide table ``slides`` and the cross-validated ``cv_auc``."""
    x, y, groups = training_set(slides, int(settings["max_tiles_per_slide"]), int(settings["seed"]))
    n_tumour, n_normal = int((y == 1).sum()), int((y == 0).sum())
    if n_tumour == 0 or n_normal == 0:
        raise InputTableError(
            f"the annotated slides {sorted(slides)} give {n_tumour} tumour and {n_normal} normal labelled tiles; "
            "the tumour classifier needs both: annotate tumour (tumour_regions.tumour_classes) and normal tissue, "
            "or lower tumour_regions.min_overlap")
    mean = x.mean(0)
    sd = x.std(0)
    sd[sd < 1e-8] = 1.0
    z = (x - mean) / sd
    model = _logistic(settings["C"], settings["balance_classes"]).fit(z, y)
    oof = cross_validated(z, y, groups, settings)
    rows = []
    for sample in sorted(slides):
        labels = np.asarray(slides[sample][1])
        mask = groups == sample
        rows.append({"sample": sample, "n_tiles": int(len(labels)), "n_tumour": int((labels == 1).sum()),
                     "n_normal": int((labels == 0).sum()), "n_unlabelled": int((labels < 0).sum()),
                     "n_used": int(mask.sum()), "cv_auc": auc(y[mask], oof[mask]) if oof is not None else np.nan})
    return {"coef": model.coef_[0].astype(np.float64), "intercept": float(model.intercept_[0]),
            "feature_mean": mean, "feature_sd": sd, "samples": sorted(slides),
            "n_tumour": n_tumour, "n_normal": n_normal,
            "cv_auc": auc(y, oof) if oof is not None else np.nan, "slides": pd.DataFrame(rows)}


def cross_validated(z: np.ndarray, y: np.ndarray, groups: np.ndarray, settings: Mapping) -> np.ndarray | None:
    """Out-of-fold tumour probabilities (GroupKFold by slide); None with one slide."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(set(groups))
    folds = min(int(settings["cv_folds"]), n_groups)
    if folds < 2:
        return None
    oof = np.full(len(y), np.nan)
    for train, test in GroupKFold(n_splits=folds).split(z, y, groups):
        if len(set(y[train])) < 2:
            continue
        fitted = _logistic(settings["C"], settings["balance_classes"]).fit(z[train], y[train])
        oof[test] = fitted.predict_proba(z[test])[:, 1]
    return oof


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC (sklearn), NaN without both classes or with unscored rows."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    keep = np.isfinite(score)
    if keep.sum() == 0 or len(set(y[keep])) < 2:
        return float("nan")
    return float(roc_auc_score(y[keep], score[keep]))


def _checked(features: np.ndarray, dim: int, what: str, fix: str) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != dim:
        raise InputTableError(f"features of shape {features.shape} do not match the {what}'s {dim} dimensions; {fix}")
    return features


def _logit_blocks(model: Mapping, features: np.ndarray, coef: np.ndarray, block: int):
    """(start, logits) of consecutive row blocks of the standardised ``features`` (checked
    to be (N, D)) times ``coef`` (D,) or (D, K), plus the model's intercept."""
    mean = np.asarray(model["feature_mean"], dtype=np.float64)
    sd = np.asarray(model["feature_sd"], dtype=np.float64)
    for start in range(0, features.shape[0], block):
        yield start, ((features[start:start + block].astype(np.float64) - mean) / sd) @ coef + model["intercept"]


def probability(model: Mapping, features: np.ndarray, block: int = 16384) -> np.ndarray:
    """(N, D) raw tile features -> (N,) tumour probability (float32), blockwise."""
    coef = np.asarray(model["coef"], dtype=np.float64)
    features = _checked(features, coef.shape[0], "tumour classifier",
                        "the classifier and the features must come from the same encoder (rerun tumour_classifier)")
    out = np.empty(features.shape[0], dtype=np.float32)
    for start, logit in _logit_blocks(model, features, coef, block):
        out[start:start + len(logit)] = 1.0 / (1.0 + np.exp(-logit))
    return out


def tumour_mask(model: Mapping, features: np.ndarray, threshold: float) -> np.ndarray:
    return probability(model, features) >= float(threshold)


# ------------------------------------------------------------------ tissue composition
def fit_composition(slides: Mapping[str, tuple[np.ndarray, np.ndarray]], classes, settings: Mapping) -> dict:
    """Multinomial logistic regression over the annotation classes (``slides``: sample ->
    (features, class index into ``classes`` or -1)); classes without a labelled tile are
    left out (listed in ``classes`` of the result: those modelled, in config order)."""
    x, y, _ = training_set(slides, int(settings["max_tiles_per_slide"]), int(settings["seed"]))
    present = [k for k in range(len(classes)) if (y == k).any()]
    if len(present) < 2:
        raise InputTableError(f"the annotated slides {sorted(slides)} label tiles of {len(present)} class(es) only; "
                              "the tissue-composition classifier needs at least two (tumour_regions.composition)")
    mean = x.mean(0)
    sd = x.std(0)
    sd[sd < 1e-8] = 1.0
    index = {k: i for i, k in enumerate(present)}
    target = np.array([index[k] for k in y])
    model = _logistic(settings["C"], settings["balance_classes"]).fit((x - mean) / sd, target)
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # sklearn's binary form: one row for the second class
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return {"coef": coef.astype(np.float64), "intercept": intercept.astype(np.float64), "feature_mean": mean,
            "feature_sd": sd, "classes": [classes[k] for k in present],
            "n_tiles": {classes[k]: int((y == k).sum()) for k in present}}


def composition_probabilities(model: Mapping, features: np.ndarray, block: int = 16384) -> np.ndarray:
    """(N, D) raw features -> (N, K) class probabilities (softmax; float32)."""
    coef = np.asarray(model["coef"], dtype=np.float64)   # (K, D)
    features = _checked(features, coef.shape[1], "composition classifier",
                        "rerun tumour_classifier on this encoder's features")
    out = np.empty((features.shape[0], coef.shape[0]), dtype=np.float32)
    for start, logits in _logit_blocks(model, features, coef.T, block):
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        out[start:start + len(logits)] = p / p.sum(1, keepdims=True)
    return out


def composition_entropy(fractions: np.ndarray) -> float:
    """Shannon entropy of class fractions, in units of log(K) (0 = one class, 1 = even)."""
    p = np.asarray(fractions, dtype=np.float64)
    k = p.size
    p = p[p > 0]
    if k < 2 or p.size == 0:
        return 0.0
    return float(max(0.0, -(p * np.log(p)).sum() / np.log(k)))
