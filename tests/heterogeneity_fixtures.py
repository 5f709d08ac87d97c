"""Synthetic cohorts for the heterogeneity stage: feature stores whose tile features carry
two planted binary tile traits, patient expression driven by the fraction of positive
tiles, and survival linked (or not) to the true heterogeneity index."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

PATCH = 512.0


def write_feature_store(path: Path, features: np.ndarray, coords: np.ndarray, sample: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=features.astype(np.float32))
        ds = handle.create_dataset("coords", data=coords.astype(np.int64))
        ds.attrs["patch_size_level0"] = PATCH
        ds.attrs["patch_size"] = int(PATCH)
        handle.attrs["sample"] = sample


def synthetic_cohort(tmp: Path, n_patients: int = 60, dim: int = 8, grid: int = 6, seed: int = 0,
                     two_slide_every: int = 15, signal: float = 2.0):
    """Returns (sheet, feature_paths, expression DataFrame patients x [A, B], true tile traits).

    Each slide's tiles lie on a grid x grid lattice; per slide the prevalences of traits A
    and B are drawn from Beta(0.7, 0.7); tile traits are Bernoulli; features are noise
    plus ``signal`` on dimension 0 (trait A) and 1 (trait B). Patient expression of a
    trait = mean tile prevalence across its slides + small noise.
    """
    rng = np.random.default_rng(seed)
    rows, paths, truth = [], {}, {}
    expression = {}
    for i in range(n_patients):
        patient = f"P{i:03d}"
        n_slides = 2 if two_slide_every and i % two_slide_every == 0 else 1
        prevalences = []
        for s in range(n_slides):
            sample = f"{patient}-S{s + 1}"
            prev = rng.beta(0.7, 0.7, size=2)
            yy, xx = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
            keep = rng.random(grid * grid) < 0.9
            coords = np.stack([xx.ravel(), yy.ravel()], axis=1)[keep] * PATCH + 1000
            n = len(coords)
            traits = rng.random((n, 2)) < prev
            features = rng.normal(size=(n, dim))
            features[:, 0] += signal * traits[:, 0]
            features[:, 1] += signal * traits[:, 1]
            path = tmp / "features" / f"{sample}.h5"
            write_feature_store(path, features, coords, sample)
            rows.append({"sample": sample, "patient": patient})
            paths[sample] = str(path)
            truth[sample] = traits
            prevalences.append(traits.mean(axis=0))
        expression[patient] = np.mean(prevalences, axis=0) + rng.normal(scale=0.02, size=2)
    sheet = pd.DataFrame(rows)
    expr = pd.DataFrame.from_dict(expression, orient="index", columns=["A", "B"])
    return sheet, paths, expr, truth


def simulate_survival(hti: np.ndarray, log_hr: float, seed: int, censor_rate: float = 0.02,
                      base_rate: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Exponential survival times with hazard base_rate * exp(log_hr * hti), exponential censoring."""
    rng = np.random.default_rng(seed)
    t_event = rng.exponential(1.0 / (base_rate * np.exp(log_hr * hti)))
    t_censor = rng.exponential(1.0 / censor_rate, size=len(hti))
    return np.minimum(t_event, t_censor), (t_event <= t_censor).astype(int)
