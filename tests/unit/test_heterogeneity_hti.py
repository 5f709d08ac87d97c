"""HTI (paper 002, eq. 1), its k-trait and continuous generalisations, and cartographies."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import entropy

from emo import heterogeneity as het


def tiles(*counts_by_combination):
    """Build (N, k) tiles from (combination tuple, count) pairs."""
    rows = []
    for combo, count in counts_by_combination:
        rows += [combo] * count
    return np.asarray(rows, dtype=bool)


def test_homogeneous_slide_has_zero_hti():
    # Paper: nearly all tiles "Both" -> HTI 0.
    assert het.hti(tiles(((1, 1), 50))) == 0.0
    assert het.hti(tiles(((1, 0), 7))) == 0.0


def test_uniform_over_three_combinations_is_one():
    # Paper: 1/3 A only, 1/3 B only, 1/3 Both -> HTI 1.
    assert het.hti(tiles(((1, 0), 10), ((0, 1), 10), ((1, 1), 10))) == pytest.approx(1.0, abs=1e-12)


def test_tiles_positive_for_no_trait_are_excluded():
    base = tiles(((1, 0), 6), ((0, 1), 3), ((1, 1), 1))
    with_none = np.concatenate([base, tiles(((0, 0), 40))])
    assert het.hti(with_none) == pytest.approx(het.hti(base), abs=1e-15)
    p, n_pos = het.combination_proportions(with_none)
    assert n_pos == 10
    assert p == pytest.approx([0.6, 0.3, 0.1])


def test_hti_matches_scipy_entropy_base_c():
    rng = np.random.default_rng(3)
    for k in (2, 3, 4):
        positive = rng.random((200, k)) < rng.random(k)
        p, _ = het.combination_proportions(positive)
        assert len(p) == 2 ** k - 1
        assert het.hti(positive) == pytest.approx(entropy(p[p > 0], base=2 ** k - 1), rel=1e-12)


def test_k_traits_uniform_and_partial():
    k = 3
    combos = [c for c in itertools.product((0, 1), repeat=k) if any(c)]
    assert het.hti(tiles(*[(c, 5) for c in combos])) == pytest.approx(1.0)
    # Two of seven combinations equally: log_7(2).
    assert het.hti(tiles((combos[0], 4), (combos[-1], 4))) == pytest.approx(math.log(2) / math.log(7))


def test_edge_cases():
    assert het.hti(tiles(((0, 0), 5))) == 0.0          # nothing positive: homogeneous
    with pytest.raises(ValueError, match="at least two traits"):
        het.hti(np.ones((4, 1), bool))


def test_combination_codes_and_labels():
    codes = het.combination_codes(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 1]], bool))
    assert codes.tolist() == [0, 1, 2, 5]
    assert het.combination_label(5, ["A", "B", "C"]) == "A+C"
    assert het.combination_label(0, ["A", "B"]) == "none"


def test_soft_hti_reduces_to_binary_for_hard_probabilities():
    rng = np.random.default_rng(0)
    positive = rng.random((100, 3)) < 0.4
    assert het.soft_hti(positive.astype(float)) == pytest.approx(het.hti(positive), abs=1e-12)


def test_soft_masses_are_expected_counts():
    rng = np.random.default_rng(1)
    prob = rng.random((30, 3))
    masses = het.soft_combination_masses(prob)
    assert masses.sum() == pytest.approx(30.0)
    # Reference: explicit enumeration of every tile's combination probabilities.
    for code in range(8):
        expected = sum(np.prod([p[j] if code >> j & 1 else 1 - p[j] for j in range(3)]) for p in prob)
        assert masses[code] == pytest.approx(expected, rel=1e-12)
    # Monte Carlo check of the definition: average binary combination counts.
    draws = rng.random((4000, 30, 3)) < prob
    mc = np.mean([np.bincount(het.combination_codes(d), minlength=8) for d in draws], axis=0)
    assert mc == pytest.approx(masses, abs=0.35)


def test_logistic_probability():
    q = het.logistic_probability(np.array([-1.0, 0.0, 2.0]), location=0.0, scale=1.0)
    assert q == pytest.approx(1 / (1 + np.exp(-np.array([-1.0, 0.0, 2.0]))))


def test_tensor_cartography_and_combination_map():
    patch = 100.0
    coords = np.array([[1000, 500], [1100, 500], [1000, 700]])  # (x, y); middle row empty
    positive = np.array([[1, 0], [1, 1], [0, 0]], bool)
    tensor = het.tensor_cartography(positive, coords, patch)
    assert tensor.shape == (2, 3, 2)
    assert tensor[:, 0, 0].tolist() == [1, 0]
    assert tensor[:, 0, 1].tolist() == [1, 1]
    assert tensor[:, 2, 0].tolist() == [0, 0]
    assert (tensor[:, 1, :] == het.NO_TILE).all()
    codes = het.combination_map(tensor)
    assert codes.tolist() == [[1, 3], [-1, -1], [0, -1]]


def test_figure_selection_spans_hti_range():
    import pandas as pd

    table = pd.DataFrame({"hti": np.linspace(1, 0, 25)})
    picks = het.select_for_figure(table, 5)
    values = table["hti"].to_numpy()[picks]
    assert values[0] == 0.0 and values[-1] == 1.0 and np.all(np.diff(values) > 0)
