"""Patient splits (held-out test set, train/validation rounds), percentile labels and
each slide's evaluation group."""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

TEST, DEVELOPMENT = "test", "development"
TRAIN, VALIDATION = "train", "validation"


def _unit_hash(*parts) -> float:
    """Deterministic uniform number in [0, 1) from the parts (stable across runs and
    unaffected by other patients being added)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_patients(patients: Iterable[str], seed: int, rounds: int = 5, test_fraction: float = 0.1,
                   validation_fraction: float = 0.1, test_patients: Iterable[str] | None = None) -> pd.DataFrame:
    """Held-out test set and ``rounds`` train/validation splits of the other patients.

    Patients are ordered by a seeded hash; the first ``round(test_fraction * n)`` form
    the test set (or exactly ``test_patients`` when given). For round r the development
    patients are ordered by another seeded hash and the first
    ``round(validation_fraction * n)`` (fraction of *all* patients, as the paper's
    80/10/10) are validation, the rest training.

    Returns a table: patient, heldout (test/development), round_1..round_R
    (train/validation/test), sorted by patient.
    """
    patients = sorted(set(patients))
    n = len(patients)
    if test_patients is None:
        order = sorted(patients, key=lambda p: (_unit_hash(seed, "test", p), p))
        test = set(order[:int(round(test_fraction * n))])
    else:
        test = set(test_patients) & set(patients)
    development = [p for p in patients if p not in test]
    n_val = int(round(validation_fraction * n))
    if development and n_val >= len(development):
        n_val = len(development) - 1
    table = pd.DataFrame({"patient": patients,
                          "heldout": [TEST if p in test else DEVELOPMENT for p in patients]})
    for r in range(1, rounds + 1):
        order = sorted(development, key=lambda p: (_unit_hash(seed, "round", r, p), p))
        validation = set(order[:n_val])
        table[f"round_{r}"] = [TEST if p in test else VALIDATION if p in validation else TRAIN for p in patients]
    return table


# --------------------------------------------------------------------------- labels

def percentile_labels(values: pd.Series, low: float = 20.0, high: float = 80.0,
                      near_width: float = 10.0) -> pd.DataFrame:
    """Label patients by the percentile of their trait value.

    ``values`` is indexed by patient. Cut-offs are ``np.percentile`` (linear
    interpolation) of the values: ``low`` when value < P_low, ``high`` when value >
    P_high, otherwise OOD; OOD-near when value < P_(low+near) or > P_(high-near).
    ``ood_label`` is 1 above the median (the label used to evaluate OOD slides).
    ``percentile`` = 100 (rank - 0.5) / n (mid-ranks).
    """
    values = values.dropna().astype(float).sort_index()
    if values.empty:
        raise ValueError("no trait values")
    v = values.to_numpy()
    q_low, q_high, q_med = np.percentile(v, [low, high, 50.0])
    q_near_low, q_near_high = np.percentile(v, [low + near_width, high - near_width])
    label = np.where(v < q_low, "low", np.where(v > q_high, "high", ""))
    ood = label == ""
    ood_near = ood & ((v < q_near_low) | (v > q_near_high))
    return pd.DataFrame({
        "patient": values.index.astype(str),
        "expression": v,
        "percentile": 100.0 * (stats.rankdata(v) - 0.5) / len(v),
        "label": label,
        "ood": ood,
        "ood_near": ood_near,
        "ood_label": (v > q_med).astype(int),
    }).reset_index(drop=True)


def slide_groups(sheet: pd.DataFrame, labels: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """One row per slide: sample, patient, trait labels, held-out status and per-trait
    evaluation group: test (held-out, labelled), development (labelled, train/validation
    in the rounds), ood (middle percentiles; also flagged ood_near) or unlabelled."""
    table = sheet[["sample", "patient"]].astype(str).merge(labels, on="patient", how="left")
    table = table.merge(splits, on="patient", how="left")
    has_label = table["label"].isin(["low", "high"])
    is_ood = table["ood"].fillna(False).astype(bool)
    group = np.where(has_label & (table["heldout"] == TEST), TEST,
                     np.where(has_label, DEVELOPMENT, np.where(is_ood, "ood", "unlabelled")))
    table["group"] = group
    table["ood"] = is_ood
    table["ood_near"] = table["ood_near"].fillna(False).astype(bool)
    return table.sort_values("sample").reset_index(drop=True)
