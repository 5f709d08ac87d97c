"""Vectorised per-gene statistics.

Every function works column-wise on (patients x genes) arrays so that 17,695 genes
cost one pass; missing values (NaN, e.g. a gene not measured in an external cohort)
are dropped pairwise per gene. Results match scipy.stats.spearmanr,
sklearn.metrics.r2_score, statsmodels multipletests and sklearn's
adjusted_rand_score (checked in tests/unit/test_statistics_core.py).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _paired(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    missing = np.isnan(x) | np.isnan(y)
    x = np.where(missing, np.nan, x)
    y = np.where(missing, np.nan, y)
    n = (~missing).sum(axis=0)
    return x, y, n


def _pearson_nan(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx = x - np.nanmean(x, axis=0)
    dy = y - np.nanmean(y, axis=0)
    sxy = np.nansum(dx * dy, axis=0)
    sxx = np.nansum(dx * dx, axis=0)
    syy = np.nansum(dy * dy, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    return np.clip(r, -1.0, 1.0)


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise Spearman r, two-sided p (t distribution, n-2 df, as scipy) and n.

    Columns with fewer than 3 complete pairs or a constant side give NaN.
    """
    x, y, n = _paired(x, y)
    with np.errstate(all="ignore"):
        # Fully-NaN columns make nanmean warn; they get NaN below anyway.
        rx = stats.rankdata(x, axis=0, nan_policy="omit") if x.size else x
        ry = stats.rankdata(y, axis=0, nan_policy="omit") if y.size else y
        r = _pearson_nan(rx, ry)
        dof = n - 2.0
        t = r * np.sqrt((dof / ((r + 1.0) * (1.0 - r))).clip(0))
        p = 2.0 * stats.t.sf(np.abs(t), dof)
    bad = n < 3
    r = np.where(bad, np.nan, r)
    p = np.where(bad | np.isnan(r), np.nan, np.minimum(p, 1.0))
    return r, p, n


def r2_score_columns(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Column-wise coefficient of determination, sklearn's definition
    1 - SS_res / SS_tot with y_true = measured, y_pred = predicted (can be < 0).
    NaN where SS_tot = 0 or fewer than 2 complete pairs."""
    t, p, n = _paired(y_true, y_pred)
    with np.errstate(all="ignore"):
        ss_res = np.nansum((t - p) ** 2, axis=0)
        ss_tot = np.nansum((t - np.nanmean(t, axis=0)) ** 2, axis=0)
        r2 = 1.0 - ss_res / ss_tot
    return np.where((n < 2) | (ss_tot == 0), np.nan, r2)


def _step_adjust(p: np.ndarray, adjust_sorted) -> np.ndarray:
    """A step-wise adjustment over the non-NaN entries of ``p`` (NaN kept):
    ``adjust_sorted(ascending p values, m)`` gives the adjusted values in that order."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    values = p[ok]
    order = np.argsort(values, kind="mergesort")
    result = np.empty(m)
    result[order] = adjust_sorted(values[order], m)
    out[ok] = result
    return out


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values over the non-NaN entries (NaN kept)."""
    def step_up(sorted_p, m):
        ranked = sorted_p * m / np.arange(1, m + 1)
        return np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)

    return _step_adjust(p, step_up)


def holm_sidak_adjust(p: np.ndarray) -> np.ndarray:
    """Holm-Šidák step-down adjusted p-values over the non-NaN entries (NaN kept):
    p_(i) -> max_{j<=i} 1 - (1 - p_(j))^(m - j + 1)."""
    def step_down(sorted_p, m):
        step = -np.expm1((m - np.arange(m)) * np.log1p(-sorted_p))  # 1 - (1 - p)^(m-j+1), accurately
        return np.minimum(np.maximum.accumulate(step), 1.0)

    return _step_adjust(p, step_down)


def bonferroni_adjust(p: np.ndarray) -> np.ndarray:
    """Bonferroni: p x m (capped at 1), m = number of non-NaN tests."""
    p = np.asarray(p, dtype=np.float64)
    m = int((~np.isnan(p)).sum())
    return np.minimum(p * m, 1.0)


def _codes(labels) -> tuple[np.ndarray, int]:
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1 if codes.size else 0


def _ari_codes(a: np.ndarray, ka: int, b: np.ndarray, kb: int) -> float:
    """ARI from integer codes via the pair-confusion matrix (sklearn's formula)."""
    n = a.size
    contingency = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(np.float64)
    n_a = contingency.sum(axis=1)
    n_b = contingency.sum(axis=0)
    sum_squares = (contingency ** 2).sum()
    tp = sum_squares - n
    fp = (contingency @ n_b).sum() - sum_squares
    fn = (contingency.T @ n_a).sum() - sum_squares
    tn = float(n) ** 2 - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return float(2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def adjusted_rand(labels_a, labels_b) -> float:
    """Adjusted Rand index (same value as sklearn.metrics.adjusted_rand_score, faster
    for the thousands of calls of permutation and bootstrap)."""
    a, ka = _codes(labels_a)
    b, kb = _codes(labels_b)
    return _ari_codes(a, ka, b, kb)


def ari_permutation_p(labels_a, labels_b, n_permutations: int, rng: np.random.Generator) -> tuple[float, float]:
    """Adjusted Rand index and one-sided permutation p-value
    ``(1 + #{ARI_perm >= ARI_obs}) / (1 + n_permutations)`` (labels_b shuffled)."""
    a, ka = _codes(labels_a)
    b, kb = _codes(labels_b)
    observed = _ari_codes(a, ka, b, kb)
    if n_permutations <= 0:
        return float(observed), float("nan")
    exceed = 0
    for _ in range(n_permutations):
        if _ari_codes(a, ka, rng.permutation(b), kb) >= observed - 1e-12:
            exceed += 1
    return float(observed), (1 + exceed) / (1 + n_permutations)


def ari_bootstrap_ci(labels_a, labels_b, n_bootstrap: int, rng: np.random.Generator,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the ARI, resampling patients (label pairs) with replacement."""
    a, ka = _codes(labels_a)
    b, kb = _codes(labels_b)
    n = a.size
    if n_bootstrap <= 0 or n < 2:
        return float("nan"), float("nan")
    values = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        idx = rng.integers(0, n, size=n)
        values[i] = _ari_codes(a[idx], ka, b[idx], kb)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)
