"""Small synthetic cohorts for the expression / splits / gene-model / prediction tests:
feature stores with a planted patient-level signal, expression matrices, a sample
sheet and a config, all in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from emo.colour_texture import N_DESCRIPTORS


def toy_colour_texture(features: np.ndarray) -> np.ndarray:
    """40 stand-in colour/texture descriptors of toy tiles: a fixed nonlinear projection
    of the features (so the colour/texture baseline sees some of the signal)."""
    projection = np.random.default_rng(40).normal(size=(features.shape[1], N_DESCRIPTORS)) / np.sqrt(features.shape[1])
    return np.tanh(features.astype(np.float64) @ projection).astype(np.float32)


def write_feature_store(path: Path, features: np.ndarray, sample: str, colour_texture: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = features.shape[0]
    coords = np.stack([np.arange(n) % 8 * 100, np.arange(n) // 8 * 100], 1).astype(np.int64)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=features.astype(np.float32))
        h5.create_dataset("colour_texture", data=toy_colour_texture(features) if colour_texture is None
                          else np.asarray(colour_texture, dtype=np.float32))
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


def compartment_cohort(seed: int = 0, n_train: int = 200, n_tune: int = 50, n_validation: int = 60,
                       tiles: int = 100, dim: int = 1280, n_genes: int = 40, n_compartments: int = 5) -> dict:
    """Tile features shaped like a real cohort's, for the training tests and benchmark.

    Each tile shows one tissue compartment (slide composition ~ Dirichlet); a tile's
    features are its compartment's centre (a low-rank direction) + a slide-level stain /
    scanner shift (nuisance) + strong tile-level noise. A gene's patient expression is a
    linear function of the compartment fractions with an oracle R² spread from 0.05 to
    0.8 (most genes weak), so the patient mean of a good tile predictor recovers it
    while single tiles carry little of it. Returns features (patients, tiles, dim),
    expression (patients, genes), split per patient and the oracle R² per gene."""
    rng = np.random.default_rng(seed)
    n = n_train + n_tune + n_validation
    basis = rng.normal(size=(16, dim)) / 4
    centres = rng.normal(size=(n_compartments, 16)) @ basis
    stain_directions = rng.normal(size=(3, dim)) * 0.6
    fractions = rng.dirichlet(np.ones(n_compartments) * 1.5, size=n)
    compartment = np.stack([rng.choice(n_compartments, size=tiles, p=f) for f in fractions])
    stain = rng.normal(size=(n, 3)) @ stain_directions
    noise_basis = rng.normal(size=(64, dim)) / 8
    features = (centres[compartment] + stain[:, None, :] + rng.normal(size=(n, tiles, 64)) @ noise_basis
                + rng.normal(size=(n, tiles, dim)) * 0.5).astype(np.float32)
    signal = fractions @ rng.normal(size=(n_compartments, n_genes))
    signal = (signal - signal.mean(0)) / signal.std(0)
    oracle_r2 = np.geomspace(0.05, 0.8, n_genes)
    expression = signal * np.sqrt(oracle_r2) + rng.normal(size=(n, n_genes)) * np.sqrt(1 - oracle_r2)
    split = np.array(["train"] * n_train + ["tune"] * n_tune + ["validation"] * n_validation)
    return {"features": features, "expression": expression, "split": split, "oracle_r2": oracle_r2,
            "genes": [f"G{i:03d}" for i in range(n_genes)]}


def r2_columns(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return 1 - ((prediction - truth) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)


def heads_validation_r2(cohort: dict, settings: dict) -> tuple[np.ndarray, dict]:
    """Train heads on the cohort's train patients (tune patients for early stopping), as
    emo.gene_models.train_chunk standardises them; validation R² of patient means."""
    from emo import gene_models as gm

    cfg = gm.TrainConfig.from_config(dict(settings))
    x, y, split = cohort["features"], cohort["expression"], cohort["split"]
    n_tiles, dim = x.shape[1], x.shape[2]
    train, tune, validation = (split == s for s in ("train", "tune", "validation"))
    pool = train | tune
    pool_tiles = np.repeat(np.arange(pool.sum()), n_tiles)
    if cfg.epoch_selection == "cross_validation":  # as train_chunk: K folds of train + tune, then a refit
        x_pool = x[pool].reshape(-1, dim)
        mean, sd = gm.standardiser(x_pool)
        t_mean, t_sd = gm.target_standardiser(y[pool])
        xs, zs = ((x_pool - mean) / sd).astype(np.float32), (y[pool] - t_mean) / t_sd
        result = gm.cross_validated_epochs(xs, zs, pool_tiles, n_tiles, cohort["genes"], cfg)
        params = gm.refit_heads(xs, zs, pool_tiles, cohort["genes"], cfg, result["best_epoch"])
    else:
        x_train = x[train].reshape(-1, dim)
        mean, sd = gm.standardiser(x_train)
        t_mean, t_sd = gm.target_standardiser(y[train])
        result = gm.train_heads(((x_train - mean) / sd).astype(np.float32), (y[train] - t_mean) / t_sd,
                                np.repeat(np.arange(train.sum()), n_tiles),
                                ((x[tune].reshape(-1, dim) - mean) / sd).astype(np.float32),
                                (y[tune] - t_mean) / t_sd, np.repeat(np.arange(tune.sum()), n_tiles),
                                cohort["genes"], cfg)
        params = result["params"]
        if cfg.refit:  # as train_chunk: retrain on train + tune for each gene's best epoch count
            x_pool = x[pool].reshape(-1, dim)
            mean, sd = gm.standardiser(x_pool)
            t_mean, t_sd = gm.target_standardiser(y[pool])
            params = gm.refit_heads(((x_pool - mean) / sd).astype(np.float32), (y[pool] - t_mean) / t_sd,
                                    pool_tiles, cohort["genes"], cfg, result["best_epoch"])
    z = gm.predict_standardised(params, ((x[validation].reshape(-1, dim) - mean) / sd).astype(np.float32))
    prediction = z.reshape(validation.sum(), n_tiles, -1).mean(1) * t_sd + t_mean
    return r2_columns(prediction, y[validation]), result


def ridge_validation_r2(cohort: dict, alphas=tuple(10.0 ** np.arange(-1, 6.5, 0.5)), folds: int = 5) -> np.ndarray:
    """The pipeline's ridge baseline (emo.ridge, slide-mean features, train + tune
    patients) on the same cohort; validation R²."""
    from emo import ridge

    x, y, split = cohort["features"], cohort["expression"], cohort["split"]
    slide_mean = x.mean(1).astype(np.float64)
    fit = (split == "train") | (split == "tune")
    validation = split == "validation"
    f_mean, f_sd = slide_mean[fit].mean(0), slide_mean[fit].std(0)
    f_sd[f_sd < 1e-8] = 1.0
    model = ridge.fit_cv((slide_mean[fit] - f_mean) / f_sd, y[fit], np.arange(int(fit.sum())), list(alphas), folds)
    model.update({"feature_mean": f_mean, "feature_sd": f_sd})
    return r2_columns(ridge.predict(model, slide_mean[validation]), y[validation])
