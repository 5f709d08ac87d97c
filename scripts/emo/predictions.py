"""Slide and patient predictions from the per-gene models (EMO: patient prediction =
mean of the tile predictions of the slide; here also averaged over a patient's slides).

``predict_slide`` streams the chunk models one at a time over one slide's features
(memory: one chunk's parameters + the slide's tiles x genes of that chunk), and also
stores the ridge baseline's prediction from the slide-mean feature vector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import ridge
from .errors import ConfigError, InputTableError
from .io import atomic_path
from .stores.features import read_feature_store
from .stores.models import read_ridge_store
from .stores.predictions import SlidePredictions, read_slide_means, write_prediction_store

ARRAYS_FORMAT = "emo.gene_models.arrays/1"


# Chunk models for prediction: ``chunk_{k}.npz`` beside ``chunk_{k}.pt`` holds exactly
# what prediction needs (best-epoch parameters, standardisation). Prediction is plain
# numpy so a per-slide job does not pay for importing torch.
def save_chunk_arrays(path: str | Path, state: Mapping) -> None:
    arrays = {f"param_{k}": np.asarray(v, dtype=np.float32) for k, v in state["params"].items()}
    for key in ("feature_mean", "feature_sd", "target_mean", "target_sd"):
        arrays[key] = np.asarray(state[key], dtype=np.float64)
    arrays["genes"] = np.asarray(list(state["genes"]), dtype=str)
    arrays["head"] = np.asarray(state["head"])
    arrays["format"] = np.asarray(ARRAYS_FORMAT)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_chunk_arrays(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data.files or str(data["format"]) != ARRAYS_FORMAT:
            raise InputTableError(f"{path} is not an emo gene-model array file; delete it and rerun training")
        out = {k: data[k] for k in data.files}
    out["genes"] = [str(g) for g in out["genes"]]
    out["params"] = {k[len("param_"):]: out.pop(k) for k in list(out) if k.startswith("param_")}
    return out


def forward_numpy(params: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Same heads as emo.gene_models.forward, in numpy (float32)."""
    if "W" in params:
        return x @ params["W"].T + params["b"]
    hidden = np.maximum(np.einsum("bd,gdh->bgh", x, params["W1"], optimize=True) + params["b1"], 0)
    return np.einsum("bgh,gh->bg", hidden, params["W2"], optimize=True) + params["b2"]


def predict_chunk(model: Mapping, features: np.ndarray, block: int = 4096) -> np.ndarray:
    """Raw (N, D) features -> (N, G) predictions on the expression scale."""
    if not model["genes"]:
        return np.zeros((features.shape[0], 0), dtype=np.float32)
    mean, sd = model["feature_mean"], model["feature_sd"]
    if features.shape[1] != mean.shape[0]:
        raise InputTableError(f"features have {features.shape[1]} dimensions but the gene models were trained on "
                              f"{mean.shape[0]}; use feature stores from the same encoder")
    out = np.empty((features.shape[0], len(model["genes"])), dtype=np.float32)
    for start in range(0, features.shape[0], block):
        x = ((features[start:start + block] - mean) / sd).astype(np.float32)
        z = forward_numpy(model["params"], x).astype(np.float64)
        out[start:start + block] = z * model["target_sd"] + model["target_mean"]
    return out


def resolve_tile_genes(setting, genes: Sequence[str]) -> list[str]:
    """``all`` -> every modelled gene; a list -> those genes (those not modelled are
    skipped, in the slide store's attrs); None/[] -> none."""
    if setting in (None, "none"):
        return []
    if setting == "all":
        return list(genes)
    if isinstance(setting, str):
        raise ConfigError(f"config key 'predictions.tile_genes': {setting!r} is not 'all' or a list of genes")
    modelled = set(genes)
    return [g for g in genes if g in set(setting) and g in modelled]


def predict_slide(feature_path: str | Path, model_paths: Sequence[str | Path],
                  baseline_paths: Mapping[str, str | Path], out_path: str | Path, tile_genes_setting,
                  attrs: Mapping[str, str], tumour: tuple[Mapping, float] | None = None) -> None:
    """Slide means (and tile values of the tile genes) of every gene model, and the slide
    prediction of each ridge baseline (``baseline_paths``: name in
    :data:`emo.ridge.BASELINE_INPUTS` -> its model store). ``tumour`` = (tumour
    classifier, threshold): the gene models' slide means average the slide's tumour tiles
    only (``gene_models.tile_selection: tumour``); tile values and baselines keep every tile."""
    store = read_feature_store(feature_path)
    features = store.features
    sample = str(store.attrs.get("sample", Path(feature_path).stem))
    if features.shape[0] == 0:
        raise InputTableError(f"feature store {feature_path} (slide {sample!r}) has no tiles; the slide cannot be "
                              "predicted (check tiling QC) or remove it from the sample sheet")
    rows = None
    if tumour is not None:
        from .tumour_regions import selected_rows

        rows = selected_rows(tumour[0], features, tumour[1], sample, "the slide mean")
    genes: list[str] = []
    slide_mean: list[np.ndarray] = []
    tile_blocks: list[np.ndarray] = []
    tile_gene_names: list[str] = []
    # Tile genes are resolved against each chunk's genes (chunks are disjoint).
    for path in sorted(map(str, model_paths)):
        state = load_chunk_arrays(path)
        if not state["genes"]:
            continue
        pred = predict_chunk(state, features)                          # (N, G_chunk)
        genes += list(state["genes"])
        slide_mean.append((pred if rows is None else pred[rows]).astype(np.float64).mean(0))
        wanted = resolve_tile_genes(tile_genes_setting, state["genes"])
        if wanted:
            index = {g: i for i, g in enumerate(state["genes"])}
            tile_blocks.append(pred[:, [index[g] for g in wanted]])
            tile_gene_names += wanted
    order = np.argsort(np.asarray(genes, dtype=object), kind="stable")
    genes = [genes[i] for i in order]
    means = np.concatenate(slide_mean)[order] if slide_mean else np.zeros(0)
    tiles = np.concatenate(tile_blocks, 1) if tile_blocks else np.zeros((features.shape[0], 0), np.float32)
    t_order = np.argsort(np.asarray(tile_gene_names, dtype=object), kind="stable")
    tiles = tiles[:, t_order]
    tile_gene_names = [tile_gene_names[i] for i in t_order]
    baselines = {}
    for name, path in sorted(baseline_paths.items()):
        model = read_ridge_store(path)
        dataset = ridge.BASELINE_INPUTS[name]
        # /features is already in memory; other inputs are streamed from the store
        mean_inputs = (features.astype(np.float64).mean(0) if dataset == "features"
                       else ridge.slide_mean_features(feature_path, dataset))
        baselines[name] = (model.genes, ridge.predict(model, mean_inputs).astype(np.float32))
    root = {"sample": sample, "n_tiles": int(features.shape[0]), "tile_genes_setting": json.dumps(tile_genes_setting)}
    if rows is not None:
        root.update(tile_selection="tumour", n_selected_tiles=int(len(rows)))
    root.update(attrs)
    write_prediction_store(out_path, SlidePredictions(
        genes=genes, slide_mean=means.astype(np.float32), tile_genes=tile_gene_names, tile_values=tiles,
        coords=store.coords, coords_attrs=store.coords_attrs, attrs=root, baselines=baselines))


def aggregate_patients(slide_paths: Mapping[str, str | Path], sample_patient: Mapping[str, str],
                       group: str = "") -> pd.DataFrame:
    """Patient x gene table: mean of the slide means of each patient's slides, rows
    sorted by patient, columns sorted by gene (first column ``patient``)."""
    genes_ref: list[str] | None = None
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for sample in sorted(slide_paths):
        genes, values = read_slide_means(slide_paths[sample], group)
        if genes_ref is None:
            genes_ref = genes
        elif genes != genes_ref:
            raise InputTableError(f"prediction store {slide_paths[sample]} (slide {sample!r}) has different genes "
                                  "from the other slides; it was made with other models: delete it and rerun")
        patient = sample_patient[sample]
        sums[patient] = sums.get(patient, 0.0) + values.astype(np.float64)
        counts[patient] = counts.get(patient, 0) + 1
    patients = sorted(sums)
    genes_ref = genes_ref or []
    matrix = np.stack([sums[p] / counts[p] for p in patients]) if patients else np.zeros((0, len(genes_ref)))
    table = pd.DataFrame(matrix, columns=genes_ref)
    table.insert(0, "patient", patients)
    return table
