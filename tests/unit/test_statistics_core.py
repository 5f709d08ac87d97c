"""emo.stats.core against scipy / sklearn / statsmodels on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import adjusted_rand_score, r2_score
from statsmodels.stats.multitest import multipletests

from emo.stats import core


@pytest.fixture
def paired():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(80, 30))
    y = 0.5 * x + rng.normal(size=(80, 30))
    x[:, 3] = np.round(x[:, 3])          # ties
    y[:, 4] = np.round(y[:, 4] * 2)      # ties on the other side
    x[[2, 9, 40], 5] = np.nan            # missing pairs
    y[[7], 6] = np.nan
    y[:, 7] = rng.normal(size=80)        # unrelated
    return x, y


def test_spearman_matches_scipy(paired):
    x, y = paired
    r, p, n = core.spearman(x, y)
    for g in range(x.shape[1]):
        ok = ~(np.isnan(x[:, g]) | np.isnan(y[:, g]))
        ref = stats.spearmanr(x[ok, g], y[ok, g])
        assert n[g] == ok.sum()
        assert r[g] == pytest.approx(ref.statistic, abs=1e-12)
        assert p[g] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_spearman_degenerate_columns():
    x = np.array([[1.0, 1.0, np.nan], [2.0, 1.0, np.nan], [3.0, 1.0, 1.0], [4.0, 1.0, 2.0]])
    y = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 2.0], [4.0, 3.0, 3.0], [3.0, 4.0, 4.0]])
    r, p, n = core.spearman(x, y)
    assert not np.isnan(r[0])
    assert np.isnan(r[1]) and np.isnan(p[1])   # constant side
    assert n[2] == 2 and np.isnan(r[2])        # too few pairs


def test_r2_matches_sklearn(paired):
    x, y = paired
    r2 = core.r2_score_columns(x, y)
    for g in range(x.shape[1]):
        ok = ~(np.isnan(x[:, g]) | np.isnan(y[:, g]))
        assert r2[g] == pytest.approx(r2_score(x[ok, g], y[ok, g]), abs=1e-12)
    # Order matters: measured is y_true.
    assert not np.allclose(r2, core.r2_score_columns(y, x), equal_nan=True)


def test_bh_and_bonferroni_match_statsmodels():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(size=200), rng.uniform(0, 1e-4, size=30), [1.0, 1.0, 0.0]])
    p[[5, 17]] = np.nan
    ok = ~np.isnan(p)
    bh = core.bh_adjust(p)
    assert np.isnan(bh[[5, 17]]).all()
    np.testing.assert_allclose(bh[ok], multipletests(p[ok], method="fdr_bh")[1], rtol=1e-12)
    bonf = core.bonferroni_adjust(p)
    np.testing.assert_allclose(bonf[ok], multipletests(p[ok], method="bonferroni")[1], rtol=1e-12)


def test_adjusted_rand_matches_sklearn():
    rng = np.random.default_rng(8)
    for n, ka, kb in [(50, 4, 4), (200, 3, 5), (10, 1, 1), (30, 30, 30), (40, 1, 3)]:
        a = rng.integers(0, ka, size=n)
        b = rng.integers(0, kb, size=n) if n != 30 else a.copy()
        if n == 30:
            a = np.arange(30)
            b = np.arange(30)[::-1]
        assert core.adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    labels = np.array(["LumA", "Basal", "LumA", "Her2", "Basal", "LumB"])
    clusters = np.array([1, 2, 1, 3, 2, 3])
    assert core.adjusted_rand(labels, clusters) == pytest.approx(adjusted_rand_score(labels, clusters))


def test_ari_permutation_and_bootstrap_behave():
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 5, size=150)
    noisy = truth.copy()
    flip = rng.random(150) < 0.3
    noisy[flip] = rng.integers(1, 5, size=flip.sum())
    ari, p = core.ari_permutation_p(truth, noisy, 300, np.random.default_rng(1))
    assert ari == pytest.approx(adjusted_rand_score(truth, noisy))
    assert p == pytest.approx(1 / 301)
    low, high = core.ari_bootstrap_ci(truth, noisy, 300, np.random.default_rng(2))
    assert low < ari < high and high - low < 0.3
    unrelated = rng.integers(1, 5, size=150)
    ari0, p0 = core.ari_permutation_p(truth, unrelated, 300, np.random.default_rng(1))
    assert p0 > 0.05
    low0, high0 = core.ari_bootstrap_ci(truth, unrelated, 300, np.random.default_rng(2))
    assert low0 < 0.05 < high - 0 and high0 < low
    # Seeded: same generator seed gives the same numbers.
    assert core.ari_permutation_p(truth, unrelated, 50, np.random.default_rng(9)) == \
        core.ari_permutation_p(truth, unrelated, 50, np.random.default_rng(9))
