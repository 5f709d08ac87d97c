"""Small synthetic cohorts for the expression / splits / gene-model / prediction tests:
feature stores with a planted patient-level signal, expression matrices, a sample
sheet and a config, all in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def write_feature_store(path: Path, features: np.ndarray, sample: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = features.shape[0]
    coords = np.stack([np.arange(n) % 8 * 100, np.arange(n) // 8 * 100], 1).astype(np.int64)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=features.astype(np.float32))
        dset = h5.create_dataset("coords", data=coords)
        dset.attrs["patch_level"] = 0
        dset.attrs["patch_size"] = 100
        h5.attrs["sample"] = sample
        h5.attrs["encoder"] = "toy"
        h5.attrs["feature_dim"] = features.shape[1]


def make_cohort(root: Path, n_patients: dict[str, int] | None = None, n_genes: int = 12, dim: int = 16,
                tiles: tuple[int, int] = (6, 14), n_signal: int = 6, seed: int = 0, encoder: str = "toy",
                two_slide_every: int = 7) -> dict:
    """Write feature stores, expression matrices and a sample sheet under ``root``.

    Genes ``S00..`` depend linearly on a patient latent that the tile features carry;
    genes ``N00..`` are noise. Returns paths and the ground truth."""
    root = Path(root)
    n_patients = n_patients or {"TCGA": 40, "CLINSEQ": 20, "ABIM": 10}
    rng = np.random.default_rng(seed)
    latent_dim = 3
    mixing = rng.normal(size=(latent_dim, dim))
    loadings = rng.normal(size=(latent_dim, n_signal))
    genes = [f"S{i:02d}" for i in range(n_signal)] + [f"N{i:02d}" for i in range(n_genes - n_signal)]
    rows, matrices, latents = [], {}, {}
    for cohort, n in n_patients.items():
        patients = [f"{cohort}-P{i:03d}" for i in range(n)]
        z = rng.normal(size=(n, latent_dim))
        expr = np.empty((n_genes, n))
        expr[:n_signal] = (z @ loadings).T + 0.3 * rng.normal(size=(n_signal, n)) + 6.0
        expr[n_signal:] = rng.normal(size=(n_genes - n_signal, n)) + 5.0
        if cohort == "CLINSEQ":
            expr += 0.7  # batch offset
        matrices[cohort] = pd.DataFrame(expr, index=pd.Index(genes, name="gene"), columns=patients)
        for i, patient in enumerate(patients):
            latents[patient] = z[i]
            n_slides = 2 if two_slide_every and i % two_slide_every == 0 else 1
            for s in range(n_slides):
                sample = f"{patient}-{'AB'[s]}"
                n_tiles = int(rng.integers(tiles[0], tiles[1] + 1))
                feats = z[i] @ mixing + rng.normal(size=(n_tiles, dim))
                path = root / "results" / "features" / encoder / f"{sample}.h5"
                write_feature_store(path, feats, sample)
                rows.append({"sample": sample, "patient": patient, "cohort": cohort,
                             "slide": str(root / "slides" / f"{sample}.svs")})
    expr_paths = {}
    for cohort, matrix in matrices.items():
        path = root / "data" / f"expression_{cohort}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        matrix.reset_index().to_csv(path, sep="\t", index=False, float_format="%.6f")
        expr_paths[cohort] = str(path)
    sheet = pd.DataFrame(rows)
    sheet_path = root / "samples.tsv"
    sheet.to_csv(sheet_path, sep="\t", index=False)
    return {"root": root, "sheet": sheet, "sheet_path": sheet_path, "matrices": matrices,
            "expression_paths": expr_paths, "genes": genes, "signal_genes": genes[:n_signal],
            "latents": latents, "encoder": encoder}
