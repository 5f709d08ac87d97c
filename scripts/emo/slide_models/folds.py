"""Patient-level cross-validation folds (paper 003: every sample of a patient in the
same fold)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError


def patient_folds(patients: Sequence[str], n_folds: int, seed: int) -> dict[str, int]:
    """patient -> fold (0..n_folds-1): the sorted unique patients in a seeded random
    order, dealt round robin, so fold sizes differ by at most one."""
    unique = sorted(set(patients))
    if len(unique) < 2 * n_folds:
        raise ConfigError(f"slide_models.folds is {n_folds}, but the training slides (train + tune splits) "
                          f"hold {len(unique)} patient(s); each fold needs at least 2 patients: lower "
                          "slide_models.folds or give the train/tune splits more patients (splits.proportions)")
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i]: int(pos % n_folds) for pos, i in enumerate(order)}
