"""Slide scores, the ensemble (best rounds, per-tile majority vote) and DeLong AUCs
per evaluation set."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..classifiers.metrics import delong_auc  # the pipeline's one DeLong AUC (emo.classifiers)
from .splits import TEST


def select_ensemble(validation_metric: Sequence, size: int) -> list[int]:
    """Indices (0-based) of the ``size`` best rounds by validation metric (higher is
    better; a metric may be a tuple compared lexicographically, e.g. (AUC, -loss); NaN
    ranks last; ties go to the earlier round), returned sorted."""
    def key(i):
        m = validation_metric[i]
        parts = m if isinstance(m, tuple) else (m,)
        return tuple(-math.inf if p != p else p for p in parts)

    order = sorted(range(len(validation_metric)), key=lambda i: (tuple(-v for v in key(i)), i))
    return sorted(order[:size])


def majority_vote(binary: np.ndarray) -> np.ndarray:
    """(N, m) 0/1 votes -> (N,) bool: positive when more than half of the m vote positive."""
    binary = np.asarray(binary)
    return binary.sum(axis=1) * 2 > binary.shape[1]


def slide_score(tile_positive: np.ndarray) -> float:
    """Fraction of a slide's tiles predicted positive (NaN for a slide without tiles)."""
    tile_positive = np.asarray(tile_positive)
    return float(tile_positive.mean()) if tile_positive.size else math.nan


def evaluation_rows(trait: str, slides: pd.DataFrame, rounds: int, ensemble: list[int],
                    validation_auc: Sequence[float], level: float) -> pd.DataFrame:
    """AUC table: per evaluation set (test, ood_near, ood_all) each round, the round
    mean (CI columns hold the range) and the ensemble."""
    sets = {
        "test": (slides["group"] == TEST, lambda t: (t["label"] == "high").astype(int)),
        "ood_near": (slides["ood_near"], lambda t: t["ood_label"].astype(int)),
        "ood_all": (slides["ood"], lambda t: t["ood_label"].astype(int)),
    }
    rows = []
    for name, (mask, truth) in sets.items():
        subset = slides[mask & slides["n_tiles"].gt(0)]
        y = truth(subset).to_numpy() if len(subset) else np.zeros(0, int)
        base = {"trait": trait, "set": name, "n_slides": len(subset), "n_positive": int(y.sum()),
                "n_negative": int(len(y) - y.sum())}
        round_aucs = []
        for r in range(rounds):
            auc, _, lo, hi = delong_auc(y, subset[f"score_round_{r + 1}"].to_numpy()) if len(y) else (math.nan,) * 4
            round_aucs.append(auc)
            rows.append({**base, "model": f"round_{r + 1}", "auc": auc, "ci_lower": lo, "ci_upper": hi,
                         "ci_method": "delong", "validation_auc": validation_auc[r], "in_ensemble": r in ensemble})
        finite = [a for a in round_aucs if a == a]
        rows.append({**base, "model": "round_mean", "auc": float(np.mean(finite)) if finite else math.nan,
                     "ci_lower": min(finite) if finite else math.nan, "ci_upper": max(finite) if finite else math.nan,
                     "ci_method": "range", "validation_auc": math.nan, "in_ensemble": False})
        auc, _, lo, hi = delong_auc(y, subset["score_ensemble"].to_numpy(), level) if len(y) else (math.nan,) * 4
        rows.append({**base, "model": "ensemble", "auc": auc, "ci_lower": lo, "ci_upper": hi, "ci_method": "delong",
                     "validation_auc": math.nan, "in_ensemble": True})
    return pd.DataFrame(rows)
