"""emo.classifiers.metrics against reference implementations: AUC vs sklearn, DeLong
variance vs a direct O(n^2) Mann-Whitney placement-value computation, one-vs-rest AUC,
top-k accuracy and the confusion matrix vs sklearn, the Wilson interval vs statsmodels."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import roc_auc_score, roc_curve, top_k_accuracy_score
from statsmodels.stats.proportion import proportion_confint

from emo.classifiers import metrics


def delong_reference(y, score, level=0.95):
    """DeLong et al. (1988) from the definition: placement values by explicit pairwise
    comparison (psi = 1 if pos > neg, 0.5 if tied), V10 per positive, V01 per negative,
    variance = S10 / m + S01 / n."""
    y = np.asarray(y).astype(bool)
    pos, neg = score[y], score[~y]
    psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    auc = psi.mean()
    s10 = ((v10 - auc) ** 2).sum() / (len(pos) - 1)
    s01 = ((v01 - auc) ** 2).sum() / (len(neg) - 1)
    var = s10 / len(pos) + s01 / len(neg)
    z = stats.norm.ppf(0.5 + level / 2)
    return auc, var, max(0.0, auc - z * math.sqrt(var)), min(1.0, auc + z * math.sqrt(var))


@pytest.mark.parametrize("seed,n,ties", [(0, 30, False), (1, 200, False), (2, 80, True), (3, 13, True)])
def test_delong_auc_matches_sklearn_and_pairwise_placements(seed, n, ties):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    y[:2], y[2:4] = True, False
    score = rng.normal(size=n) + 0.8 * y
    if ties:
        score = np.round(score, 0)  # many ties
    auc, var, lo, hi = metrics.delong_auc(y, score)
    ref = delong_reference(y, score)
    assert abs(auc - roc_auc_score(y, score)) <= 1e-12
    assert abs(auc - ref[0]) <= 1e-12
    assert abs(var - ref[1]) <= 1e-9
    assert abs(lo - ref[2]) <= 1e-6 and abs(hi - ref[3]) <= 1e-6
    assert lo < auc < hi


def test_delong_undefined_cases():
    assert all(math.isnan(v) for v in metrics.delong_auc(np.ones(5, bool), np.arange(5.0)))
    auc, var, lo, hi = metrics.delong_auc(np.array([1, 0, 0], bool), np.array([3.0, 1.0, 2.0]))
    assert auc == 1.0 and math.isnan(var) and math.isnan(lo)


def test_one_vs_rest_top_k_confusion_match_sklearn():
    rng = np.random.default_rng(4)
    n, c = 150, 4
    y = np.repeat(np.arange(c), n // c + 1)[:n]
    logits = rng.normal(size=(n, c)) + 1.2 * np.eye(c)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ovr = metrics.one_vs_rest_auc(y, proba)
    for k in range(c):
        assert abs(ovr[k][0] - roc_auc_score(y == k, proba[:, k])) <= 1e-12
        assert abs(ovr[k][1] - delong_reference(y == k, proba[:, k])[1]) <= 1e-9
    assert abs(np.mean([a[0] for a in ovr]) - roc_auc_score(y, proba, multi_class="ovr", average="macro")) <= 1e-12
    for k in (1, 2):
        assert abs(metrics.top_k_accuracy(y, proba, k) - top_k_accuracy_score(y, proba, k=k)) <= 1e-12
    pred = proba.argmax(axis=1)
    assert (metrics.confusion_matrix(y, pred, c) == sk_confusion(y, pred, labels=range(c))).all()


def test_wilson_interval_matches_statsmodels():
    for successes, n in ((0, 10), (7, 10), (33, 46), (46, 46)):
        lo, hi = metrics.wilson_interval(successes, n)
        ref = proportion_confint(successes, n, alpha=0.05, method="wilson")
        assert abs(lo - ref[0]) <= 1e-9 and abs(hi - ref[1]) <= 1e-9
        assert lo <= successes / n <= hi


def test_roc_points_match_sklearn():
    rng = np.random.default_rng(5)
    y = rng.random(60) < 0.5
    score = np.round(rng.normal(size=60) + y, 1)
    fpr, tpr = metrics.roc_points(y, score)
    ref_fpr, ref_tpr, _ = roc_curve(y, score, drop_intermediate=False)
    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)
    assert abs(np.trapezoid(tpr, fpr) - roc_auc_score(y, score)) <= 1e-12
