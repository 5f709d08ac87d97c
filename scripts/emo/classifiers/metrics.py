"""Classifier metrics: AUC with DeLong's confidence interval (binary), one-vs-rest AUCs
(multi-class), top-k accuracy with a Wilson interval, confusion matrices and ROC points.
Plain numpy/scipy on label and score arrays, so every classifier of the pipeline (clinical
labels, heterogeneity traits, image+expression fusion) reports the same way."""

from __future__ import annotations

import math
import warnings
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


# ----------------------------------------------------------------- F1, PR-AUC, bootstrap
# Vectorised over rows: ``y`` and ``score`` may be (N,) or (B, N) (B bootstrap resamples),
# so the point estimate and every resample go through the same code.

def average_precision(y: np.ndarray, score: np.ndarray) -> np.ndarray | float:
    """Area under the precision-recall curve as sklearn's ``average_precision_score``:
    sum over distinct thresholds of (R_k - R_{k-1}) P_k; tied scores form one threshold.
    NaN for a row without positives."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    single = y.ndim == 1
    y, score = np.atleast_2d(y), np.atleast_2d(score)
    n = y.shape[1]
    if n == 0:
        return math.nan if single else np.full(len(y), math.nan)
    order = np.argsort(-score, axis=1, kind="stable")
    s = np.take_along_axis(score, order, axis=1)
    t = np.take_along_axis(y, order, axis=1)
    tp = np.cumsum(t, axis=1)
    precision = tp / np.arange(1, n + 1)
    # each position takes the precision at the end of its tie group
    end = np.ones_like(t)
    end[:, :-1] = s[:, 1:] != s[:, :-1]
    end_index = np.where(end, np.arange(n), n)
    end_index = np.minimum.accumulate(end_index[:, ::-1], axis=1)[:, ::-1]
    at_end = np.take_along_axis(precision, end_index, axis=1)
    positives = t.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(positives > 0, (t * at_end).sum(axis=1) / positives, np.nan)
    return float(ap[0]) if single else ap


def f1_binary(y: np.ndarray, predicted: np.ndarray) -> np.ndarray | float:
    """F1 of the positive class (sklearn ``f1_score``, zero_division=0): 2TP / (2TP + FP + FN)."""
    y = np.asarray(y).astype(bool)
    predicted = np.asarray(predicted).astype(bool)
    tp = (y & predicted).sum(axis=-1)
    wrong = (y ^ predicted).sum(axis=-1)
    denominator = 2 * tp + wrong
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return float(out) if np.ndim(out) == 0 else out


def macro_f1(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray | float:
    """Mean over classes 0..C-1 of the one-vs-rest F1 (sklearn ``f1_score(average="macro",
    labels=range(C), zero_division=0)``)."""
    y, predicted = np.asarray(y), np.asarray(predicted)
    return np.mean([f1_binary(y == c, predicted == c) for c in range(n_classes)], axis=0)


def rank_auc(y: np.ndarray, score: np.ndarray) -> np.ndarray | float:
    """ROC AUC from mid-ranks (Mann-Whitney), vectorised over rows; NaN without both classes."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    single = y.ndim == 1
    y, score = np.atleast_2d(y), np.atleast_2d(score)
    ranks = stats.rankdata(score, axis=1)
    m = y.sum(axis=1)
    n = y.shape[1] - m
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((m > 0) & (n > 0), ((ranks * y).sum(axis=1) - m * (m + 1) / 2) / (m * n), np.nan)
    return float(auc[0]) if single else auc


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray | float]:
    """f1, pr_auc and roc_auc of class indices ``y`` scored by probabilities ``proba``
    ((N, C) or, for resamples, (B, N) and (B, N, C)). Prediction = the most probable class
    (binary: p(positive) > 0.5). Binary (C = 2): the positive class's F1, average
    precision and AUC; multi-class: macro averages over the classes (one vs rest; PR-AUC
    and AUC over the classes present)."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[-1]
    predicted = proba.argmax(axis=-1)
    if n_classes == 2:
        return {"f1": f1_binary(y == 1, predicted == 1), "pr_auc": average_precision(y == 1, proba[..., 1]),
                "roc_auc": rank_auc(y == 1, proba[..., 1])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of a resample without any class present
        pr = np.nanmean([np.asarray(average_precision(y == c, proba[..., c])) for c in range(n_classes)], axis=0)
        roc = np.nanmean([np.asarray(rank_auc(y == c, proba[..., c])) for c in range(n_classes)], axis=0)
    return {"f1": macro_f1(y, predicted, n_classes), "pr_auc": pr[()] if np.ndim(pr) == 0 else pr,
            "roc_auc": roc[()] if np.ndim(roc) == 0 else roc}


def bootstrap_metrics(y: np.ndarray, proba: np.ndarray, n_boot: int, seed: int,
                      level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """Per metric of :func:`classification_metrics`: (value, ci_lower, ci_upper), the CI
    the percentile interval of ``n_boot`` patient resamples (seeded). Resamples lacking a
    class give NaN for the rank metrics and are left out of their interval."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    point = classification_metrics(y, proba)
    if len(y) == 0 or n_boot <= 0:
        return {k: (float(v), math.nan, math.nan) for k, v in point.items()}
    rows = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    resampled = classification_metrics(y[rows], proba[rows])
    alpha = (1.0 - level) / 2.0
    out = {}
    for key, value in point.items():
        values = np.asarray(resampled[key], dtype=np.float64)
        values = values[np.isfinite(values)]
        lo, hi = (np.quantile(values, [alpha, 1.0 - alpha]) if len(values) >= 2 else (math.nan, math.nan))
        out[key] = (float(value), float(lo), float(hi))
    return out
