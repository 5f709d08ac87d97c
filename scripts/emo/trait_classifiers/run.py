"""One trait end to end: read the feature stores, train the rounds, pick the ensemble,
predict every slide and write the trait's tables, tile HDF5 and model file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import evaluation_rows, majority_vote, select_ensemble, slide_score
from .model import HeadConfig, RoundResult, predict_probabilities, train_round
from .splits import DEVELOPMENT, TRAIN, VALIDATION, _unit_hash, percentile_labels, slide_groups

log = logging.getLogger("emo")


def read_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Features, coords and tile side (level-0 px) of a feature store."""
    from ..stores.features import read_feature_store

    store = read_feature_store(path)
    attrs = store.coords_attrs
    patch = float(attrs["patch_size_level0"]) if "patch_size_level0" in attrs else float(attrs["patch_size"])
    return store.features.astype(np.float32), store.coords.astype(np.int64), patch


def _subsample(n: int, cap: int, sample: str, seed: int) -> np.ndarray:
    if cap <= 0 or n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(int(_unit_hash(seed, "tiles", sample) * 2 ** 32))
    return np.sort(rng.choice(n, size=cap, replace=False))


def run_trait(trait: str, sheet: pd.DataFrame, feature_paths: dict[str, str], values: pd.Series,
              splits: pd.DataFrame, cfg: dict, out: dict[str, str], code_version: str,
              device: str = "cpu") -> None:
    """Train the rounds of one trait, predict every slide, write the trait's outputs.

    ``out`` keys: auc, slides, rounds, tiles (HDF5), models (.pt).
    """
    import h5py
    import torch

    from ..io import atomic_path, write_tsv
    from ..provenance import base_attrs, write_sidecar

    head = HeadConfig.from_config(cfg.get("classifier", {}))
    seed = int(cfg.get("seed", 0))
    rounds = int(cfg.get("rounds", 5))
    size = int(cfg.get("ensemble_size", 3))
    level = float(cfg.get("ci_level", 0.95))
    labels = percentile_labels(values, cfg.get("low_percentile", 20.0), cfg.get("high_percentile", 80.0),
                               cfg.get("ood_near_width", 10.0))
    slides = slide_groups(sheet, labels, splits)
    log.info("trait %s: %d slides; groups %s", trait, len(slides), slides["group"].value_counts().to_dict())
    results: list[RoundResult] = []
    round_rows = []
    dev_cache: dict[str, np.ndarray] = {}
    for sample in slides.loc[slides["group"] == DEVELOPMENT, "sample"]:
        features = read_features(feature_paths[sample])[0]
        dev_cache[sample] = features[_subsample(len(features), head.max_tiles_per_slide, sample, seed)]
    for r in range(1, rounds + 1):
        dev = slides[slides["group"] == DEVELOPMENT]
        train = dev[dev[f"round_{r}"] == TRAIN]
        val = dev[dev[f"round_{r}"] == VALIDATION]
        if train["label"].nunique() < 2:
            from ..errors import InputTableError

            raise InputTableError(
                f"trait {trait!r}, round {r}: the training slides hold only {train['label'].unique().tolist()} "
                "labels; add slides or lower heterogeneity.validation_fraction / test_fraction")
        train_x = np.concatenate([dev_cache[s] for s in train["sample"]])
        train_y = np.concatenate([np.full(len(dev_cache[s]), lab == "high", np.float32)
                                  for s, lab in zip(train["sample"], train["label"])])
        val_slides = [dev_cache[s] for s in val["sample"]]
        val_labels = (val["label"] == "high").astype(int).to_numpy()
        result = train_round(train_x, train_y, val_slides, val_labels, head, seed=seed * 1000 + r, device=device)
        log.info("trait %s round %d: %d train slides (%d tiles), %d validation slides, best step %d, "
                 "validation AUC %.3f", trait, r, len(train), len(train_x), len(val), result.best_step,
                 result.validation_auc)
        results.append(result)
        round_rows.append({"trait": trait, "round": r, "n_train_slides": len(train), "n_train_tiles": len(train_x),
                           "n_validation_slides": len(val), "best_step": result.best_step,
                           "steps_run": result.steps_run, "validation_auc": result.validation_auc,
                           "validation_loss": result.validation_loss,
                           "selection_metric": "slide_auc" if result.validation_auc == result.validation_auc
                           else "tile_loss"})
    del dev_cache
    metric = [(res.validation_auc, -res.validation_loss) for res in results]
    ensemble = select_ensemble(metric, size)
    for row in round_rows:
        row["in_ensemble"] = row["round"] - 1 in ensemble
    log.info("trait %s: ensemble of rounds %s", trait, [e + 1 for e in ensemble])

    scores = {f"score_round_{r + 1}": [] for r in range(rounds)}
    scores["score_ensemble"], n_tiles = [], []
    with atomic_path(out["tiles"]) as tmp, h5py.File(tmp, "w") as handle:
        for key, value in base_attrs(code_version, cfg).items():
            if key != "created":
                handle.attrs[key] = value
        handle.attrs["trait"] = trait
        handle.attrs["ensemble_rounds"] = np.asarray([e + 1 for e in ensemble], dtype=np.int64)
        group = handle.create_group("slides")
        for sample in slides["sample"]:
            features, coords, patch = read_features(feature_paths[sample])
            prob = predict_probabilities(results, features, head, device)
            binary = prob > 0.5
            positive = majority_vote(binary[:, ensemble]) if len(features) else np.zeros(0, bool)
            for r in range(rounds):
                scores[f"score_round_{r + 1}"].append(slide_score(binary[:, r]))
            scores["score_ensemble"].append(slide_score(positive))
            n_tiles.append(len(features))
            g = group.create_group(sample)
            ds = g.create_dataset("coords", data=coords)
            ds.attrs["patch_size_level0"] = patch
            g.create_dataset("positive", data=positive.astype(np.uint8))
            g.create_dataset("probability", data=prob[:, ensemble].mean(axis=1).astype(np.float32)
                             if len(features) else np.zeros(0, np.float32))
    slides["n_tiles"] = n_tiles
    for key, value in scores.items():
        slides[key] = value
    slides.insert(0, "trait", trait)
    auc = evaluation_rows(trait, slides, rounds, ensemble, [res.validation_auc for res in results], level)
    slide_columns = (["trait", "sample", "patient", "expression", "percentile", "label", "heldout", "group", "ood",
                      "ood_near", "ood_label", "n_tiles"] + list(scores))
    slides_out = slides[slide_columns].copy()
    slides_out["ood_label"] = slides_out["ood_label"].astype("Int64")
    inputs = sorted(feature_paths.values())
    for key, table in (("auc", auc), ("slides", slides_out), ("rounds", pd.DataFrame(round_rows))):
        write_tsv(table, out[key])
        write_sidecar(out[key], code_version, cfg, inputs)
    with atomic_path(out["models"]) as tmp:
        torch.save({"trait": trait, "head": head.__dict__, "ensemble_rounds": [e + 1 for e in ensemble],
                    "rounds": [{"state": r.state, "mean": r.mean, "std": r.std, "validation_auc": r.validation_auc,
                                "best_step": r.best_step, "history": r.history} for r in results]}, tmp)
