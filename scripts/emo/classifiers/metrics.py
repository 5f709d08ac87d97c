"""Classifier metrics: AUC with DeLong's confidence interval (binary), one-vs-rest AUCs
(multi-class), top-k accuracy with a Wilson interval, confusion matrices and ROC points.
Plain numpy/scipy on label and score arrays, so every classifier of the pipeline (clinical
labels, heterogeneity traits, image+expression fusion) reports the same way."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def delong_auc(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """AUC with DeLong's variance (fast mid-rank form, Sun & Xu 2014).

    Returns (auc, variance, ci_lower, ci_upper); the CI is auc +- z * sqrt(variance)
    clipped to [0, 1] (as pROC). NaN where a class is missing; NaN CI with < 2 per class.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    pos, neg = score[y], score[~y]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return (math.nan,) * 4
    ranks_all = stats.rankdata(np.concatenate([pos, neg]))
    ranks_pos = stats.rankdata(pos)
    ranks_neg = stats.rankdata(neg)
    v10 = (ranks_all[:m] - ranks_pos) / n          # per positive: P(neg < pos) + 0.5 P(tie)
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m    # per negative
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, math.nan, math.nan, math.nan
    variance = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    z = stats.norm.ppf(0.5 + level / 2.0)
    half = z * math.sqrt(max(variance, 0.0))
    return auc, variance, max(0.0, auc - half), min(1.0, auc + half)


def one_vs_rest_auc(y: np.ndarray, proba: np.ndarray, level: float = 0.95) -> list[tuple[float, float, float, float]]:
    """Per class c (columns of ``proba``, (N, C)): DeLong AUC of "class c vs the rest"
    scored by p(c). ``y`` holds class indices 0..C-1."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    return [delong_auc(y == c, proba[:, c], level) for c in range(proba.shape[1])]


def top_k_accuracy(y: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` most probable (ties broken
    towards the lower class index, as a stable argsort of -p)."""
    y = np.asarray(y)
    if len(y) == 0:
        return math.nan
    order = np.argsort(-np.asarray(proba, dtype=np.float64), axis=1, kind="stable")[:, :k]
    return float((order == y[:, None]).any(axis=1).mean())


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN for n = 0)."""
    if n == 0:
        return math.nan, math.nan
    z = stats.norm.ppf(0.5 + level / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the interval always holds p (rounding would put 0 just outside at 0 successes)
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(y, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return out


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0, 0)
    to (1, 1); tied scores form one step."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    score, y = score[order], y[order]
    last = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1] if len(score) else np.zeros(0, int)
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def binary_rows(y: np.ndarray, score: np.ndarray, level: float) -> dict:
    """n, n_positive, auc, ci_lower, ci_upper of one evaluation set."""
    y = np.asarray(y).astype(bool)
    auc, _, lo, hi = delong_auc(y, score, level) if len(y) else (math.nan,) * 4
    return {"n": int(len(y)), "n_positive": int(y.sum()), "auc": auc, "ci_lower": lo, "ci_upper": hi}


def accuracy_row(y: np.ndarray, proba: np.ndarray, k: int, level: float) -> dict:
    """Top-k accuracy with its Wilson interval."""
    acc = top_k_accuracy(y, proba, k)
    n = int(len(y))
    lo, hi = wilson_interval(int(round(acc * n)) if n else 0, n, level)
    return {"n": n, "accuracy": acc, "ci_lower": lo, "ci_upper": hi}


def mean_finite(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return float(np.mean(finite)) if finite else math.nan
