"""Synthetic cohorts for the slide models: feature stores whose tiles carry a planted
tile state (feature dimension 0 raised), patient expression of gene A = the slide's
fraction of such tiles, gene B = the mean of dimension 1 over the slide's top tiles,
gene C = noise; expression stores in the layout of emo.stores.expression."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from heterogeneity_fixtures import write_feature_store

GENES = ["A", "B", "C"]


def synthetic_slides(tmp: Path, n_patients: int = 30, dim: int = 6, grid: int = 8, seed: int = 0,
                     splits: dict | None = None):
    """Returns (slides: [(sample, patient, feature path)], expression DataFrame patients x GENES,
    split table patient/cohort/split). Every 10th patient has two slides."""
    rng = np.random.default_rng(seed)
    rows, expr = [], {}
    for i in range(n_patients):
        patient = f"P{i:03d}"
        values = []
        for s in range(2 if i % 10 == 0 else 1):
            sample = f"{patient}-S{s + 1}"
            frac = rng.uniform(0.05, 0.95)
            yy, xx = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
            coords = np.stack([xx.ravel(), yy.ravel()], axis=1) * 512 + 1000
            state = rng.random(len(coords)) < frac
            features = rng.normal(size=(len(coords), dim))
            features[:, 0] += 3.0 * state
            path = tmp / "features" / f"{sample}.h5"
            write_feature_store(path, features, coords, sample)
            rows.append((sample, patient, str(path)))
            values.append([state.mean(), np.sort(features[:, 1])[-5:].mean()])
        a, b = np.mean(values, axis=0)
        expr[patient] = [a * 4, b, rng.normal()]
    expression = pd.DataFrame.from_dict(expr, orient="index", columns=GENES)
    patients = sorted(expression.index)
    split_names = splits or {}
    table = pd.DataFrame({"patient": patients, "cohort": "TCGA",
                          "split": [split_names.get(p, "train" if j % 3 else "validation")
                                    for j, p in enumerate(patients)]})
    return rows, expression, table


def write_expression(path: Path, expression: pd.DataFrame, splits: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    patients = sorted(expression.index)
    split_of = dict(zip(splits["patient"], splits["split"]))
    with h5py.File(path, "w") as h:
        h.create_dataset("values", data=expression.loc[patients].to_numpy(np.float32))
        for key, values in (("patients", patients), ("genes", list(expression.columns)),
                            ("cohort", ["TCGA"] * len(patients)), ("split", [split_of[p] for p in patients])):
            h.create_dataset(key, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
        h.create_group("offsets").create_dataset("TCGA", data=np.zeros(len(expression.columns)))
        h.attrs["reference"] = "TCGA"
    return path
