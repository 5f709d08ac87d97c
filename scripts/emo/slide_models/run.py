"""One slide model end to end, in two rules: slide_model_train reads the training slides'
feature stores and the training expression, builds the bags and trains one model per
cross-validation fold; slide_model_predict predicts every slide (out-of-fold for the
training patients, the mean of the fold models for every other slide), scores every
tile and writes the patient table and Pearson statistics (docs/models.md,
docs/data_contracts.md "Slide models"). A new external slide reruns the prediction only."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputTableError
from .bags import slide_bag, supertiles
from .maps import patch_size_of
from .folds import patient_folds
from .pearson import PEARSON_COLUMNS, pearson_table

log = logging.getLogger("emo")



@dataclass
class SlideInput:
    sample: str
    patient: str
    features: str          # feature store path


def job_setup(settings: Mapping, threads: int, samples: Sequence[str], patients: Sequence[str],
              features: Sequence[str]) -> tuple[dict, str, list[SlideInput]]:
    """What a slide-model job (training or prediction) starts with: torch's thread count,
    the device resolved from ``settings["device"]``, and its slides. Returns (settings as a
    dict, device, slides)."""
    import torch

    from .training import resolve_device

    torch.set_num_threads(max(1, int(threads)))
    settings = dict(settings)
    slides = [SlideInput(s, patient, path) for s, patient, path in zip(samples, patients, features)]
    return settings, resolve_device(settings["device"]), slides


def _read(path: str) -> tuple[np.ndarray, np.ndarray, dict]:
    from ..stores.features import read_feature_store

    store = read_feature_store(path)
    return store.features.astype(np.float32), store.coords.astype(np.int64), store.coords_attrs


def build_model(name: str, cfg: Mapping, input_dim: int, n_genes: int, bias_init):
    from .nets import HE2RNA, GatedAttentionMIL

    m = cfg[name]
    if name == "he2rna":
        return HE2RNA(input_dim, n_genes, m["layers"], he2rna_ks(m), m["dropout"], bias_init)
    if name == "attention_mil":
        return GatedAttentionMIL(input_dim, n_genes, m["hidden"], m["attention_dim"], m["dropout"], bias_init)
    from ..errors import ConfigError

    raise ConfigError(f"slide_models.models: unknown model {name!r} (he2rna, attention_mil)")


def he2rna_ks(m: Mapping) -> list[int]:
    """Paper 003: k from (1, 2, 5, 10, 20, 50, 100) on super-tiles, from (10, ..., 5000) on tiles."""
    return list(m["ks_supertiles"] if m["bag"] == "supertiles" else m["ks_tiles"])


def training_bag(name: str, cfg: Mapping, features, coords, sample: str) -> np.ndarray:
    m = cfg[name]
    if name == "he2rna":
        return slide_bag(features, coords, m["bag"], m["n_supertiles"], m["max_tiles"], sample, cfg["seed"])
    return slide_bag(features, coords, "tiles", 0, m["max_tiles"], sample, cfg["seed"])


def inference_bag(name: str, cfg: Mapping, features, coords, sample: str) -> np.ndarray:
    """HE2RNA predicts from the bag it trains on (super-tiles or capped tiles); attention
    MIL from all tiles (attention pooling takes any number)."""
    if name == "he2rna":
        return training_bag(name, cfg, features, coords, sample)
    return np.ascontiguousarray(features, dtype=np.float32)


def tile_scores(name: str, models: Sequence, features: np.ndarray, device: str, tile_gene_idx: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Per-tile scores, mean over ``models``: HE2RNA's per-tile gene scores (N, G_tile),
    the virtual-spatialisation values; attention MIL's attention weights (N,)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None].to(device)
    mask = torch.ones(x.shape[:2], dtype=torch.bool, device=device)
    out = None
    with torch.no_grad():
        for model in models:
            model.eval()
            if name == "he2rna":
                value = model.tile_scores(x)[0, tile_gene_idx].T.float().cpu().numpy()
            else:
                value = model.attention(x, mask)[0][0].float().cpu().numpy()
            out = value.astype(np.float64) if out is None else out + value
    return {("scores" if name == "he2rna" else "attention"): (out / len(models)).astype(np.float32)}


def _seed_torch(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train_folds(name: str, cfg: Mapping, bags: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                slide_fold: Mapping[str, int], device: str) -> tuple[list, list[dict], list[dict]]:
    """One model per fold, trained on the other folds' slides and early-stopped on the
    fold's own. Returns (models, training rows, cost rows)."""
    from .training import fit

    m = cfg[name]
    samples = sorted(bags)
    dim = next(iter(bags.values())).shape[1]
    ks = he2rna_ks(m) if name == "he2rna" else None
    models, rows, costs = [], [], []
    for fold in range(cfg["folds"]):
        train = [s for s in samples if slide_fold[s] != fold]
        held = [s for s in samples if slide_fold[s] == fold]
        y_train = np.stack([targets[s] for s in train])
        y_held = np.stack([targets[s] for s in held])
        seed = cfg["seed"] * 100 + fold
        _seed_torch(seed)
        model = build_model(name, cfg, dim, y_train.shape[1], y_train.mean(0))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = fit(model, [bags[s] for s in train], y_train, [bags[s] for s in held], y_held, lr=m["lr"],
                     weight_decay=m["weight_decay"], batch_size=m["batch_size"], max_epochs=m["max_epochs"],
                     patience=m["patience"], ks=ks, seed=seed, device=device)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        log.info("%s fold %d: %d training slides, %d held out; best epoch %d of %d, held-out mean Pearson %.3f "
                 "(%.1f s CPU, %.1f s wall)", name, fold, len(train), len(held), result.best_epoch,
                 result.epochs_run, result.best_score, cpu, wall)
        models.append((model, result))
        rows.append({"model": name, "fold": fold, "n_train_slides": len(train), "n_heldout_slides": len(held),
                     "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                     "heldout_mean_pearson": result.best_score})
        costs.append({"model": name, "fold": fold, "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
                      "device": device})
    return models, rows, costs


def _set_of(patient: str, splits: pd.DataFrame) -> str:
    row = splits.loc[patient]
    if row["split"] in ("train", "tune"):
        return "cv"
    return f"external:{row['cohort']}" if row["split"] == "external" else str(row["split"])


TRAIN_OUTPUTS = ("folds", "training", "cost", "model")
PREDICT_OUTPUTS = ("patients", "slides", "pearson", "tiles", "maps")
MAP_SLIDES = 4   # slides in the spatialisation figure


def train_slide_model(name: str, cfg: Mapping, slides: Sequence[SlideInput], training_expression: str,
                      out: Mapping[str, str], code_version: str, device: str) -> None:
    """Rule slide_model_train: the fold models on the training slides (train + tune)."""
    import torch

    from ..io import atomic_path, write_tsv
    from ..provenance import write_sidecar
    from ..stores.expression import read_expression_store

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    slides = sorted(slides, key=lambda s: s.sample)
    patient_of = {s.sample: s.patient for s in slides}
    store = read_expression_store(training_expression)
    genes = list(store.genes)
    row = {p: i for i, p in enumerate(store.patients)}
    missing = sorted({s.patient for s in slides} - set(row))
    if missing:
        raise InputTableError(f"{training_expression}: training patient(s) {', '.join(missing[:5])} have no "
                              "expression; rerun the expression stage (results/expression/training.h5)")
    targets = {s.sample: np.asarray(store.values[row[s.patient]], dtype=np.float32) for s in slides}
    folds = patient_folds(list(patient_of.values()), cfg["folds"], cfg["seed"])
    slide_fold = {s: folds[patient_of[s]] for s in patient_of}
    bags = {}
    for s in slides:
        features, coords, _ = _read(s.features)
        bags[s.sample] = training_bag(name, cfg, features, coords, s.sample)
    dim = next(iter(bags.values())).shape[1]
    log.info("%s: %d training slides (%d patients, %d folds), %d genes, bag sizes %d-%d", name, len(bags),
             len(folds), cfg["folds"], len(genes), min(len(b) for b in bags.values()),
             max(len(b) for b in bags.values()))
    fitted, training_rows, cost_rows = train_folds(name, cfg, bags, targets, slide_fold, device)
    cost_rows.append({"model": name, "fold": -1, "cpu_seconds": round(time.process_time() - cpu_start, 3),
                      "wall_seconds": round(time.perf_counter() - wall_start, 3), "device": device})
    inputs = sorted(s.features for s in slides) + [training_expression]
    fold_table = pd.DataFrame({"patient": sorted(folds), "fold": [folds[p] for p in sorted(folds)]})
    for key, frame in (("folds", fold_table), ("training", pd.DataFrame(training_rows)),
                       ("cost", pd.DataFrame(cost_rows))):
        write_tsv(frame, out[key])
        write_sidecar(out[key], code_version, {"model": name, **dict(cfg)}, inputs)
    with atomic_path(out["model"]) as tmp:
        torch.save({"model": name, "genes": genes, "input_dim": int(dim), "config": dict(cfg), "folds": folds,
                    "states": [m.state_dict() for m, _ in fitted],
                    "history": [r.history for _, r in fitted]}, tmp)


def load_fold_models(path: str, name: str, cfg: Mapping, device: str) -> tuple[list, list[str], dict[str, int]]:
    """(fold models in eval mode, genes, patient -> fold) from slide_model_train's model.pt."""
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved["model"] != name:
        raise InputTableError(f"{path} holds a {saved['model']!r} model, not {name!r}; delete it and rerun")
    models = []
    for state in saved["states"]:
        model = build_model(name, cfg, saved["input_dim"], len(saved["genes"]), None)
        model.load_state_dict(state)
        models.append(model.to(device).eval())
    return models, list(saved["genes"]), dict(saved["folds"])


def predict_slide_model(name: str, cfg: Mapping, slides: Sequence[SlideInput], model_path: str, prepared: str,
                        splits_path: str, out: Mapping[str, str], code_version: str, device: str) -> None:
    """Rule slide_model_predict: every slide with the fold models (its own fold's model
    for a training patient's slide, out of fold; the mean of all fold models otherwise),
    per-tile scores, the patient table and the Pearson statistics."""
    import h5py

    from ..io import atomic_path, write_tsv
    from ..predictions import resolve_tile_genes
    from ..provenance import base_attrs, write_sidecar
    from ..stats.inputs import load_measured, load_splits
    from .training import predict

    models, genes, folds = load_fold_models(model_path, name, cfg, device)
    slides = sorted(slides, key=lambda s: s.sample)
    patient_of = {s.sample: s.patient for s in slides}
    tile_genes = resolve_tile_genes(cfg["tile_genes"], genes)
    tile_idx = np.array([genes.index(g) for g in tile_genes], dtype=np.int64)
    batch = cfg[name]["batch_size"]
    predictions, slide_rows, maps = {}, [], {}
    with atomic_path(out["tiles"]) as tmp, h5py.File(tmp, "w") as handle:
        for key, value in base_attrs(code_version, cfg).items():
            if key != "created":
                handle.attrs[key] = value
        handle.attrs["model"] = name
        handle.attrs["score"] = ("per-tile gene scores of the HE2RNA MLP (virtual spatialisation)" if name == "he2rna"
                                 else "attention weights of the gated attention pooling (sum 1 per slide)")
        handle.create_dataset("genes", data=np.array(tile_genes, dtype=object), dtype=h5py.string_dtype())
        group = handle.create_group("slides")
        for s in slides:
            features, coords, coords_attrs = _read(s.features)
            if len(features) == 0:
                raise InputTableError(f"slide {s.sample!r}: its feature store {s.features} has no tiles; "
                                      "check its tile store (tiling thresholds) or leave it out of the sample sheet")
            fold = folds.get(s.patient, -1)
            use = [models[fold]] if fold >= 0 else models
            labels = None
            if name == "he2rna" and cfg[name]["bag"] == "supertiles":   # one k-means: bag and labels
                bag, labels = supertiles(features, coords, cfg[name]["n_supertiles"], cfg["seed"])
            else:
                bag = inference_bag(name, cfg, features, coords, s.sample)
            predictions[s.sample] = np.mean([predict(m, [bag], device, batch)[0] for m in use], axis=0)
            g = group.create_group(s.sample)
            ds = g.create_dataset("coords", data=coords)
            for key, value in coords_attrs.items():
                ds.attrs[key] = value
            if labels is not None:
                g.create_dataset("supertile", data=labels)
            for key, value in tile_scores(name, use, features, device, tile_idx).items():
                if key == "scores" and not len(tile_idx):
                    continue
                g.create_dataset(key, data=value)
                maps[s.sample] = (coords, value, patch_size_of(coords_attrs))
            slide_rows.append({"sample": s.sample, "patient": s.patient, "fold": fold,
                               "prediction": "out_of_fold" if fold >= 0 else "fold_mean",
                               "n_tiles": len(features), "bag_size": len(bag)})

    # patients: mean of their slides' predictions (as emo.predictions.aggregate_patients)
    sums, counts = {}, {}
    for sample in sorted(predictions):
        p = patient_of[sample]
        sums[p] = sums.get(p, 0.0) + predictions[sample]
        counts[p] = counts.get(p, 0) + 1
    patients = sorted(sums)
    table = pd.DataFrame(np.stack([sums[p] / counts[p] for p in patients]), columns=genes)
    table.insert(0, "patient", patients)

    splits = load_splits(splits_path)
    measured = load_measured(prepared, genes).values
    pearson = []
    sets = pd.Series({p: _set_of(p, splits) for p in patients if p in splits.index and p in measured.index})
    order = lambda s: (["cv", "validation", "test"].index(s) if s in ("cv", "validation", "test") else 3, s)  # noqa: E731
    for set_name in sorted(sets.unique(), key=order):
        members = sorted(sets.index[sets == set_name])
        if len(members) < 3:
            continue
        common = [g for g in genes if g in measured.columns]
        pearson.append(pearson_table(set_name, common, measured.loc[members, common].to_numpy(),
                                     table.set_index("patient").loc[members, common].to_numpy()))
    pearson = pd.concat(pearson, ignore_index=True) if pearson else pd.DataFrame(columns=PEARSON_COLUMNS)
    for set_name in ("cv", "validation"):
        part = pearson[pearson["set"] == set_name]
        if len(part):
            log.info("%s %s: median Pearson %.3f, %d genes Holm-Sidak < 0.05, %d BH < 0.05", name, set_name,
                     part["pearson_r"].median(), int((part["padj_holm_sidak"] < 0.05).sum()),
                     int((part["padj_bh"] < 0.05).sum()))
    _spatialisation_figure(name, maps, predictions, genes, tile_genes, pearson, out["maps"])
    inputs = sorted(s.features for s in slides) + [model_path, prepared, splits_path]
    for key, frame in (("patients", table), ("slides", pd.DataFrame(slide_rows)), ("pearson", pearson)):
        write_tsv(frame, out[key])
        write_sidecar(out[key], code_version, {"model": name, **dict(cfg)}, inputs)
    log.info("%s: %d patients x %d genes predicted", name, len(table), len(genes))


def _spatialisation_figure(name, maps, predictions, genes, tile_genes, pearson, out_path) -> None:
    """HE2RNA: the per-tile scores of the tile gene best predicted on the validation
    patients (Pearson), on slides spread over its slide predictions; attention MIL: the
    attention maps of the same kind of spread (by the first gene's prediction)."""
    from .maps import maps_figure, pick_slides, score_image

    if not maps:
        maps_figure([], f"{name}: no per-tile scores stored (slide_models.tile_genes is empty)", out_path)
        return
    gene, column = genes[0], None
    if name == "he2rna":
        val = pearson[(pearson["set"] == "validation") & pearson["gene"].isin(tile_genes)].dropna(subset=["pearson_r"])
        gene = str(val.sort_values(["pearson_r", "gene"], ascending=[False, True])["gene"].iloc[0]) if len(val) \
            else tile_genes[0]
        column = tile_genes.index(gene)
    samples = sorted(maps)
    chosen = pick_slides(samples, [float(predictions[s][genes.index(gene)]) for s in samples], MAP_SLIDES)
    panels = []
    for sample in chosen:
        coords, value, patch = maps[sample]
        shown = value[:, column] if column is not None else value
        panels.append((f"{sample}\npredicted {predictions[sample][genes.index(gene)]:.2f}",
                       score_image(coords, shown, patch)))
    title = (f"HE2RNA per-tile scores of {gene} (virtual spatialisation)" if name == "he2rna"
             else f"attention MIL attention weights (slides spread over predicted {gene})")
    maps_figure(panels, title, out_path)
