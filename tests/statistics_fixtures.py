"""Synthetic inputs for the statistics stage, written to the data contracts
(docs/data_contracts.md): prepared.h5, splits TSV, patient predictions, clinical TSV.

Realistic structure: five PAM50 subtypes with subtype-specific mean profiles, ER and
HER2 status tied to subtype, ER-dependent genes, a training cohort (validation/test/
train splits) and an external cohort on another scale with one gene unmeasured.
Predictions are good (measured + small noise) for the "planted" genes, the PAM50
genes and the proliferation genes, and pure noise for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from emo.stats import PAM50_GENES, PROLIFERATION_GENES

SUBTYPES = ("LumA", "LumB", "Her2", "Basal", "Normal")


@dataclass
class SyntheticInputs:
    prepared: Path
    splits: Path
    predictions: Path
    clinical: Path
    planted: list[str]
    noise: list[str]
    er_genes: list[str]
    unmeasured_external: str
    measured: pd.DataFrame
    predicted: pd.DataFrame
    split_table: pd.DataFrame
    clinical_table: pd.DataFrame


def write_prepared_h5(path: Path, values: pd.DataFrame, cohort: pd.Series) -> None:
    """Tiny writer of results/expression/prepared.h5 (patients x genes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as store:
        store.create_dataset("values", data=values.to_numpy(dtype=np.float32))
        store.create_dataset("patients", data=np.array(values.index, dtype=object), dtype=text)
        store.create_dataset("genes", data=np.array(values.columns, dtype=object), dtype=text)
        store.create_dataset("cohort", data=np.array(cohort.loc[values.index], dtype=object), dtype=text)


def make_inputs(root: Path, n_training: int = 240, n_external: int = 120, n_planted: int = 15,
                n_noise: int = 25, seed: int = 7) -> SyntheticInputs:
    rng = np.random.default_rng(seed)
    root = Path(root)
    planted = [f"PLANT{i:02d}" for i in range(n_planted)]
    noise = [f"NOISE{i:02d}" for i in range(n_noise)]
    er_genes = planted[:6]
    genes = sorted(set(PAM50_GENES) | set(PROLIFERATION_GENES)) + planted + noise
    n = n_training + n_external
    patients = [f"P{i:04d}" for i in range(n)]
    cohort = pd.Series(["TCGA"] * n_training + ["ABIM"] * n_external, index=patients)
    split = np.array(["train", "tune", "validation", "test"])[rng.choice(4, size=n_training, p=[0.3, 0.1, 0.3, 0.3])]
    split_table = pd.DataFrame({"patient": patients, "cohort": cohort.to_numpy(),
                                "split": list(split) + ["external"] * n_external,
                                "split_source": "hash", "n_slides": 1})
    subtype = rng.choice(SUBTYPES, size=n, p=[0.4, 0.2, 0.12, 0.18, 0.1])
    er_pos = np.where(np.isin(subtype, ["LumA", "LumB", "Normal"]), rng.random(n) < 0.92, rng.random(n) < 0.1)
    her2_pos = np.where(subtype == "Her2", rng.random(n) < 0.85, rng.random(n) < 0.08)
    profiles = {s: rng.normal(0, 1.6, size=len(genes)) for s in SUBTYPES}
    base = np.stack([profiles[s] for s in subtype]) + rng.normal(0, 1.0, size=(n, len(genes)))
    gene_index = {g: i for i, g in enumerate(genes)}
    for g in er_genes + ["ESR1", "PGR"]:
        base[:, gene_index[g]] += 3.0 * er_pos
    base[:, gene_index["ERBB2"]] += 2.0 * her2_pos
    prolif_effect = {"LumA": 0.0, "LumB": 1.0, "Her2": 1.3, "Basal": 1.8, "Normal": 0.2}
    latent = np.array([prolif_effect[s] for s in subtype])
    for g in PROLIFERATION_GENES:
        base[:, gene_index[g]] += 1.5 * latent
    measured = pd.DataFrame(base + 6.0, index=pd.Index(patients, name="patient"), columns=genes)
    predicted = measured.copy()
    good = [g for g in genes if g not in noise]
    predicted[good] = measured[good] + rng.normal(0, 0.8, size=(n, len(good)))
    predicted[noise] = 6.0 + rng.normal(0, 1.0, size=(n, len(noise)))
    # External cohort: another platform scale; one planted gene not measured there.
    ext = cohort == "ABIM"
    measured.loc[ext] = measured.loc[ext] * 0.5 + 2.0
    unmeasured = planted[-1]
    measured.loc[ext, unmeasured] = np.nan
    age = rng.normal(58, 12, size=n).round()
    clinical = pd.DataFrame({
        "patient": patients, "age": age,
        "er": np.where(er_pos, "positive", "negative"),
        "pr": np.where(er_pos & (rng.random(n) < 0.8), "positive", "negative"),
        "her2": np.where(her2_pos, "positive", "negative"),
        "pam50": subtype, "tp53": np.where(rng.random(n) < 0.3, "mutant", "wildtype"),
        "tumour_size_mm": rng.gamma(4, 6, size=n).round(1),
        "nodes_positive": rng.poisson(1.2, size=n),
        "survival_time": rng.exponential(60, size=n).round(1),
        "survival_event": (rng.random(n) < 0.3).astype(int),
    })
    clinical.loc[rng.choice(n, size=8, replace=False), "pam50"] = ""
    clinical.loc[rng.choice(n, size=5, replace=False), "er"] = ""
    paths = SyntheticInputs(
        prepared=root / "results/expression/prepared.h5", splits=root / "results/splits/patients.tsv",
        predictions=root / "results/predictions/enc/patients.tsv", clinical=root / "data/clinical.tsv",
        planted=planted, noise=noise, er_genes=er_genes, unmeasured_external=unmeasured,
        measured=measured, predicted=predicted, split_table=split_table, clinical_table=clinical)
    write_prepared_h5(paths.prepared, measured, cohort)
    for p in (paths.splits, paths.predictions, paths.clinical):
        p.parent.mkdir(parents=True, exist_ok=True)
    split_table.to_csv(paths.splits, sep="\t", index=False)
    predicted.reset_index().to_csv(paths.predictions, sep="\t", index=False, float_format="%.6f")
    clinical.to_csv(paths.clinical, sep="\t", index=False)
    # What the pipeline reads back (float32 store, rounded TSV).
    paths.measured = measured.astype(np.float32).astype(np.float64)
    paths.predicted = pd.read_csv(paths.predictions, sep="\t", dtype={"patient": str}).set_index("patient")
    return paths
