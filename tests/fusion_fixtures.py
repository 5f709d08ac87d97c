"""Synthetic cohort for the image + expression fusion stage: feature stores whose patches
carry a "Basal" signal (image planted), an expression matrix carrying Basal and HER2
(expression planted), a clinical table and a split table with an external cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from classifiers_fixtures import write_store


def fusion_cohort(tmp: Path, n_patients: int = 60, tiles: int = 12, dim: int = 8, genes: int = 10, seed: int = 0,
                  image_signal: float = 1.0, expression_signal: float = 1.0):
    """Returns (sheet, feature_paths, expression (patients x genes), clinical, splits).

    Basal patients (~25 %): patch dimension 0 shifted by ``image_signal`` and gene G000 by
    ``expression_signal``; HER2-positive patients (~30 %, none Basal): gene G001 shifted
    only (no image signal). Every 6th patient is external; every 11th has a second slide."""
    rng = np.random.default_rng(seed)
    rows, paths, clinical, split_rows, values = [], {}, [], [], {}
    for i in range(n_patients):
        patient = f"P{i:03d}"
        basal = bool(rng.random() < 0.25)
        her2 = (not basal) and bool(rng.random() < 0.4)
        pam50 = "Basal" if basal else ("Her2" if her2 else ("LumA" if rng.random() < 0.6 else "LumB"))
        for k in range(2 if i % 11 == 0 else 1):
            sample = f"{patient}-{'AB'[k]}"
            features = rng.normal(size=(tiles, dim))
            features[:, 0] += image_signal * basal
            write_store(tmp / f"{sample}.h5", features, np.full(tiles, 0.1), sample)
            rows.append({"sample": sample, "patient": patient})
            paths[sample] = str(tmp / f"{sample}.h5")
        x = rng.normal(size=genes) + 6.0
        x[0] += expression_signal * basal
        x[1] += expression_signal * her2
        values[patient] = x
        clinical.append({"patient": patient, "pam50": pam50, "her2": "positive" if her2 else "negative",
                         "er": "negative" if basal or her2 else "positive"})
        split_rows.append({"patient": patient, "split": "external" if i % 6 == 5 else "train"})
    expression = pd.DataFrame.from_dict(values, orient="index", columns=[f"G{g:03d}" for g in range(genes)])
    expression.index.name = "patient"
    return (pd.DataFrame(rows), paths, expression, pd.DataFrame(clinical), pd.DataFrame(split_rows))


def fusion_config(**overrides) -> dict:
    """The fusion section completed from the schema (small nets, few epochs)."""
    from emo import settings

    cfg = settings.load({"samples": "x.tsv", "cohorts": {"A": {"expression": "a.tsv", "role": "training",
                                                                "reference": True}}})["fusion"]
    cfg = {**cfg, "bootstrap": 50}
    for key, value in overrides.items():
        cfg[key] = value
    return cfg
