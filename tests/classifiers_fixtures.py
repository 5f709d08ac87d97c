"""Synthetic cohort for the clinical classifiers: feature stores (with /colour_texture)
whose tile features carry the patient's ER status and PAM50 class, denser tiles carrying
the signal (so density selection matters), a clinical table and a split table."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from emo.colour_texture import DESCRIPTOR_NAMES

PAM50 = ("LumA", "LumB", "Her2", "Basal")
WHITE = DESCRIPTOR_NAMES.index("white_fraction")


def write_store(path: Path, features: np.ndarray, white: np.ndarray, sample: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(features)
    descriptors = np.zeros((n, len(DESCRIPTOR_NAMES)), np.float32)
    descriptors[:, WHITE] = white
    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=features.astype(np.float32))
        handle.create_dataset("colour_texture", data=descriptors)
        ds = handle.create_dataset("coords", data=np.c_[np.arange(n) * 512, np.zeros(n)].astype(np.int64))
        ds.attrs["patch_size_level0"] = 512.0
        ds.attrs["patch_size"] = 512
        handle.attrs["sample"] = sample


def clinical_cohort(tmp: Path, n_patients: int = 80, tiles: int = 30, dim: int = 6, seed: int = 0,
                    signal: float = 1.5):
    """Returns (sheet, feature_paths, clinical, splits). Per slide, half the tiles are
    dense (white fraction 0.05) and carry the labels' signal (ER on dimension 0, the PAM50
    class on dimensions 1-4), half are sparse (white fraction 0.8) pure noise. Splits
    cycle train, train, tune, validation, test; every tenth patient is in cohort
    external. Every 7th patient has no ER status, every 9th is PAM50 Normal."""
    rng = np.random.default_rng(seed)
    rows, paths, clinical, split_rows = [], {}, [], []
    cycle = ("train", "train", "train", "tune", "validation", "test")
    for i in range(n_patients):
        patient = f"P{i:03d}"
        er = bool(rng.random() < 0.6)
        pam50 = PAM50[i % 4] if i % 9 else "Normal"
        sample = f"{patient}-A"
        dense = np.arange(tiles) < tiles // 2
        features = rng.normal(size=(tiles, dim))
        features[dense, 0] += signal * er
        if pam50 in PAM50:
            features[dense, 1 + PAM50.index(pam50)] += signal
        white = np.where(dense, 0.05, 0.8)
        order = rng.permutation(tiles)
        write_store(tmp / f"{sample}.h5", features[order], white[order], sample)
        rows.append({"sample": sample, "patient": patient})
        paths[sample] = str(tmp / f"{sample}.h5")
        clinical.append({"patient": patient, "er": ("positive" if er else "negative") if i % 7 else "",
                         "pam50": pam50, "age": 50})
        split_rows.append({"patient": patient, "split": "external" if i % 10 == 9 else cycle[i % len(cycle)]})
    clinical = pd.DataFrame(clinical).replace("", np.nan)
    return pd.DataFrame(rows), paths, clinical, pd.DataFrame(split_rows)
