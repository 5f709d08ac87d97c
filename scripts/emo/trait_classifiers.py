"""Per-trait binary tile classifiers (Levy-Jurgenson et al. 2020, "PathoMCH").

Protocol (paper values are the config defaults):

* Patients are split *once*, before any trait is processed, into a held-out test set
  and, over the remaining (development) patients, ``rounds`` train/validation splits
  (:func:`split_patients`). Every slide follows its patient.
* Per trait, patients are labelled by the percentile of their expression among all
  patients with expression and a slide: ``low`` below the 20th, ``high`` above the 80th
  percentile; the middle 60 % are out-of-distribution (OOD-all), those within 10
  percentile points of the cut-offs (20-30th, 70-80th) OOD-near. OOD slides never take
  part in training, validation or the test set; for OOD evaluation the label is
  above/below the median (:func:`percentile_labels`).
* Tiles inherit their slide's label. One classifier per round is trained on the
  round's training tiles; the weights kept are those with the best *slide-level*
  validation AUC, a slide's score being the fraction of its tiles predicted positive.
* The ensemble is the majority vote, per tile, of the ``ensemble_size`` (3) rounds with
  the best validation AUC (:func:`select_ensemble`, :func:`majority_vote`).
* AUCs (each round, their mean and range, and the ensemble) on the test, OOD-near and
  OOD-all slides, with DeLong confidence intervals (:func:`delong_auc`).

Departure from the paper: the classifier is a small head (MLP or logistic) on frozen
tile features from the feature stores, not an Inception v3 trained end to end.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger("emo")

TEST, DEVELOPMENT = "test", "development"
TRAIN, VALIDATION = "train", "validation"


# --------------------------------------------------------------------------- splits

def _unit_hash(*parts) -> float:
    """Deterministic uniform number in [0, 1) from the parts (stable across runs and
    unaffected by other patients being added)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_patients(patients: Iterable[str], seed: int, rounds: int = 5, test_fraction: float = 0.1,
                   validation_fraction: float = 0.1, test_patients: Iterable[str] | None = None) -> pd.DataFrame:
    """Held-out test set and ``rounds`` train/validation splits of the other patients.

    Patients are ordered by a seeded hash; the first ``round(test_fraction * n)`` form
    the test set (or exactly ``test_patients`` when given). For round r the development
    patients are ordered by another seeded hash and the first
    ``round(validation_fraction * n)`` (fraction of *all* patients, as the paper's
    80/10/10) are validation, the rest training.

    Returns a table: patient, heldout (test/development), round_1..round_R
    (train/validation/test), sorted by patient.
    """
    patients = sorted(set(patients))
    n = len(patients)
    if test_patients is None:
        order = sorted(patients, key=lambda p: (_unit_hash(seed, "test", p), p))
        test = set(order[:int(round(test_fraction * n))])
    else:
        test = set(test_patients) & set(patients)
    development = [p for p in patients if p not in test]
    n_val = int(round(validation_fraction * n))
    if development and n_val >= len(development):
        n_val = len(development) - 1
    table = pd.DataFrame({"patient": patients,
                          "heldout": [TEST if p in test else DEVELOPMENT for p in patients]})
    for r in range(1, rounds + 1):
        order = sorted(development, key=lambda p: (_unit_hash(seed, "round", r, p), p))
        validation = set(order[:n_val])
        table[f"round_{r}"] = [TEST if p in test else VALIDATION if p in validation else TRAIN for p in patients]
    return table


# --------------------------------------------------------------------------- labels

def percentile_labels(values: pd.Series, low: float = 20.0, high: float = 80.0,
                      near_width: float = 10.0) -> pd.DataFrame:
    """Label patients by the percentile of their trait value.

    ``values`` is indexed by patient. Cut-offs are ``np.percentile`` (linear
    interpolation) of the values: ``low`` when value < P_low, ``high`` when value >
    P_high, otherwise OOD; OOD-near when value < P_(low+near) or > P_(high-near).
    ``ood_label`` is 1 above the median (the label used to evaluate OOD slides).
    ``percentile`` = 100 (rank - 0.5) / n (mid-ranks).
    """
    values = values.dropna().astype(float).sort_index()
    if values.empty:
        raise ValueError("no trait values")
    v = values.to_numpy()
    q_low, q_high, q_med = np.percentile(v, [low, high, 50.0])
    q_near_low, q_near_high = np.percentile(v, [low + near_width, high - near_width])
    label = np.where(v < q_low, "low", np.where(v > q_high, "high", ""))
    ood = label == ""
    ood_near = ood & ((v < q_near_low) | (v > q_near_high))
    return pd.DataFrame({
        "patient": values.index.astype(str),
        "expression": v,
        "percentile": 100.0 * (stats.rankdata(v) - 0.5) / len(v),
        "label": label,
        "ood": ood,
        "ood_near": ood_near,
        "ood_label": (v > q_med).astype(int),
    }).reset_index(drop=True)


# --------------------------------------------------------------------------- AUC

def delong_auc(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """AUC with DeLong's variance (fast mid-rank form, Sun & Xu 2014).

    Returns (auc, variance, ci_lower, ci_upper); the CI is auc +- z * sqrt(variance)
    clipped to [0, 1] (as pROC). NaN where a class is missing; NaN CI with < 2 per class.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    pos, neg = score[y], score[~y]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return (math.nan,) * 4
    ranks_all = stats.rankdata(np.concatenate([pos, neg]))
    ranks_pos = stats.rankdata(pos)
    ranks_neg = stats.rankdata(neg)
    v10 = (ranks_all[:m] - ranks_pos) / n          # per positive: P(neg < pos) + 0.5 P(tie)
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m    # per negative
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, math.nan, math.nan, math.nan
    variance = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    z = stats.norm.ppf(0.5 + level / 2.0)
    half = z * math.sqrt(max(variance, 0.0))
    return auc, variance, max(0.0, auc - half), min(1.0, auc + half)


def select_ensemble(validation_metric: Sequence, size: int) -> list[int]:
    """Indices (0-based) of the ``size`` best rounds by validation metric (higher is
    better; a metric may be a tuple compared lexicographically, e.g. (AUC, -loss); NaN
    ranks last; ties go to the earlier round), returned sorted."""
    def key(i):
        m = validation_metric[i]
        parts = m if isinstance(m, tuple) else (m,)
        return tuple(-math.inf if p != p else p for p in parts)

    order = sorted(range(len(validation_metric)), key=lambda i: (tuple(-v for v in key(i)), i))
    return sorted(order[:size])


def majority_vote(binary: np.ndarray) -> np.ndarray:
    """(N, m) 0/1 votes -> (N,) bool: positive when more than half of the m vote positive."""
    binary = np.asarray(binary)
    return binary.sum(axis=1) * 2 > binary.shape[1]


def slide_score(tile_positive: np.ndarray) -> float:
    """Fraction of a slide's tiles predicted positive (NaN for a slide without tiles)."""
    tile_positive = np.asarray(tile_positive)
    return float(tile_positive.mean()) if tile_positive.size else math.nan


# --------------------------------------------------------------------------- model

@dataclass
class HeadConfig:
    """Trait classifier head (config ``heterogeneity.classifier``); defaults come from the
    config schema through :meth:`from_config`."""

    hidden: int
    dropout: float
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    evals_per_epoch: int
    lr_patience: int
    patience: int
    max_tiles_per_slide: int
    balance_classes: bool

    @classmethod
    def from_config(cls, cfg: dict | None) -> "HeadConfig":
        from .settings import section

        values = section("heterogeneity", {"classifier": dict(cfg or {})})["classifier"]
        return cls(**{k: values[k] for k in cls.__dataclass_fields__})


def build_head(dim: int, hidden: int, dropout: float):
    import torch.nn as nn

    if hidden <= 0:
        return nn.Linear(dim, 1)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


@dataclass
class RoundResult:
    state: dict
    mean: np.ndarray
    std: np.ndarray
    validation_auc: float
    validation_loss: float
    best_step: int
    steps_run: int
    history: list = field(default_factory=list)


def _slide_scores(model, slides_x: list, mean, std, device) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for x in slides_x:
            logits = model(torch.as_tensor((x - mean) / std, device=device)).squeeze(1)
            out.append(float((logits > 0).float().mean()) if len(x) else math.nan)
    return np.asarray(out)


def train_round(train_x: np.ndarray, train_y: np.ndarray, val_slides: list[np.ndarray], val_labels: np.ndarray,
                cfg: HeadConfig, seed: int, device: str = "cpu") -> RoundResult:
    """Train one head; keep the weights with the best slide-level validation AUC.

    Validation happens ``evals_per_epoch`` times per epoch (paper: every 1/16 epoch);
    the learning rate drops tenfold after ``lr_patience`` evaluations without
    improvement and training stops after ``patience``. Ties in AUC (common with few
    validation slides) go to the lower tile-level validation loss; when the validation
    set lacks a class (AUC undefined) the loss alone selects the weights.
    """
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mean = train_x.mean(axis=0).astype(np.float32)
    std = (train_x.std(axis=0) + 1e-6).astype(np.float32)
    x = torch.as_tensor((train_x - mean) / std)
    y = torch.as_tensor(train_y.astype(np.float32))
    val_x = torch.as_tensor(np.concatenate([(v - mean) / std for v in val_slides]) if val_slides
                            else np.zeros((0, train_x.shape[1]), np.float32), device=device)
    val_tile_y = torch.as_tensor(np.concatenate([np.full(len(v), l, np.float32)
                                                 for v, l in zip(val_slides, val_labels)])
                                 if val_slides else np.zeros(0, np.float32), device=device)
    use_auc = len(set(np.asarray(val_labels).tolist())) == 2
    model = build_head(x.shape[1], cfg.hidden, cfg.dropout).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_pos = float(y.sum())
    pos_weight = torch.tensor((len(y) - n_pos) / max(n_pos, 1.0) if cfg.balance_classes else 1.0, device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    steps_per_epoch = max(1, math.ceil(len(y) / cfg.batch_size))
    eval_every = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    best = ((-math.inf, -math.inf), None, 0, math.nan, math.nan)  # metric, state, step, auc, loss
    since_best = since_lr = 0
    history = []
    step = 0
    for _epoch in range(cfg.max_epochs):
        permutation = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), cfg.batch_size):
            model.train()
            idx = permutation[start:start + cfg.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[idx].to(device)).squeeze(1), y[idx].to(device))
            loss.backward()
            optimiser.step()
            step += 1
            if step % eval_every:
                continue
            model.eval()
            with torch.no_grad():
                val_loss = float(nn.functional.binary_cross_entropy_with_logits(
                    model(val_x).squeeze(1), val_tile_y)) if len(val_tile_y) else math.nan
            auc = (delong_auc(val_labels, _slide_scores(model, val_slides, mean, std, device))[0]
                   if use_auc else math.nan)
            # Higher is better: slide AUC first, ties (frequent on small validation sets)
            # broken by the lower tile-level validation loss.
            metric = (auc if use_auc else 0.0, -val_loss if val_loss == val_loss else 0.0)
            history.append({"step": step, "train_loss": loss.item(), "validation_loss": val_loss,
                            "validation_auc": auc})
            if metric > best[0] or best[1] is None:
                best = (metric, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                        step, auc, val_loss)
                since_best = since_lr = 0
            else:
                since_best += 1
                since_lr += 1
                if since_lr >= cfg.lr_patience:
                    for group in optimiser.param_groups:
                        group["lr"] *= 0.1
                    since_lr = 0
                if since_best >= cfg.patience:
                    break
        else:
            continue
        break
    if best[1] is None:  # fewer steps than one evaluation interval
        best = (math.nan, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, step,
                math.nan, math.nan)
    return RoundResult(state=best[1], mean=mean, std=std, validation_auc=best[3], validation_loss=best[4],
                       best_step=best[2], steps_run=step, history=history)


def predict_probabilities(results: Sequence[RoundResult], features: np.ndarray, cfg: HeadConfig,
                          device: str = "cpu") -> np.ndarray:
    """(N, rounds) tile probabilities of every round's model."""
    import torch

    out = np.zeros((len(features), len(results)), dtype=np.float32)
    if len(features) == 0:
        return out
    for r, result in enumerate(results):
        model = build_head(features.shape[1], cfg.hidden, cfg.dropout)
        model.load_state_dict(result.state)
        model.to(device).eval()
        with torch.no_grad():
            logits = model(torch.as_tensor((features - result.mean) / result.std, device=device)).squeeze(1)
        out[:, r] = torch.sigmoid(logits).cpu().numpy()
    return out


# --------------------------------------------------------------------------- orchestration

def read_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Features, coords and tile side (level-0 px) of a feature store."""
    from .stores.features import read_feature_store

    store = read_feature_store(path)
    attrs = store.coords_attrs
    patch = float(attrs["patch_size_level0"]) if "patch_size_level0" in attrs else float(attrs["patch_size"])
    return store.features.astype(np.float32), store.coords.astype(np.int64), patch


def _subsample(n: int, cap: int, sample: str, seed: int) -> np.ndarray:
    if cap <= 0 or n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(int(_unit_hash(seed, "tiles", sample) * 2 ** 32))
    return np.sort(rng.choice(n, size=cap, replace=False))


def slide_groups(sheet: pd.DataFrame, labels: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """One row per slide: sample, patient, trait labels, held-out status and per-trait
    evaluation group: test (held-out, labelled), development (labelled, train/validation
    in the rounds), ood (middle percentiles; also flagged ood_near) or unlabelled."""
    table = sheet[["sample", "patient"]].astype(str).merge(labels, on="patient", how="left")
    table = table.merge(splits, on="patient", how="left")
    has_label = table["label"].isin(["low", "high"])
    is_ood = table["ood"].fillna(False).astype(bool)
    group = np.where(has_label & (table["heldout"] == TEST), TEST,
                     np.where(has_label, DEVELOPMENT, np.where(is_ood, "ood", "unlabelled")))
    table["group"] = group
    table["ood"] = is_ood
    table["ood_near"] = table["ood_near"].fillna(False).astype(bool)
    return table.sort_values("sample").reset_index(drop=True)


def evaluation_rows(trait: str, slides: pd.DataFrame, rounds: int, ensemble: list[int],
                    validation_auc: Sequence[float], level: float) -> pd.DataFrame:
    """AUC table: per evaluation set (test, ood_near, ood_all) each round, the round
    mean (CI columns hold the range) and the ensemble."""
    sets = {
        "test": (slides["group"] == TEST, lambda t: (t["label"] == "high").astype(int)),
        "ood_near": (slides["ood_near"], lambda t: t["ood_label"].astype(int)),
        "ood_all": (slides["ood"], lambda t: t["ood_label"].astype(int)),
    }
    rows = []
    for name, (mask, truth) in sets.items():
        subset = slides[mask & slides["n_tiles"].gt(0)]
        y = truth(subset).to_numpy() if len(subset) else np.zeros(0, int)
        base = {"trait": trait, "set": name, "n_slides": len(subset), "n_positive": int(y.sum()),
                "n_negative": int(len(y) - y.sum())}
        round_aucs = []
        for r in range(rounds):
            auc, _, lo, hi = delong_auc(y, subset[f"score_round_{r + 1}"].to_numpy()) if len(y) else (math.nan,) * 4
            round_aucs.append(auc)
            rows.append({**base, "model": f"round_{r + 1}", "auc": auc, "ci_lower": lo, "ci_upper": hi,
                         "ci_method": "delong", "validation_auc": validation_auc[r], "in_ensemble": r in ensemble})
        finite = [a for a in round_aucs if a == a]
        rows.append({**base, "model": "round_mean", "auc": float(np.mean(finite)) if finite else math.nan,
                     "ci_lower": min(finite) if finite else math.nan, "ci_upper": max(finite) if finite else math.nan,
                     "ci_method": "range", "validation_auc": math.nan, "in_ensemble": False})
        auc, _, lo, hi = delong_auc(y, subset["score_ensemble"].to_numpy(), level) if len(y) else (math.nan,) * 4
        rows.append({**base, "model": "ensemble", "auc": auc, "ci_lower": lo, "ci_upper": hi, "ci_method": "delong",
                     "validation_auc": math.nan, "in_ensemble": True})
    return pd.DataFrame(rows)


def run_trait(trait: str, sheet: pd.DataFrame, feature_paths: dict[str, str], values: pd.Series,
              splits: pd.DataFrame, cfg: dict, out: dict[str, str], code_version: str,
              device: str = "cpu") -> None:
    """Train the rounds of one trait, predict every slide, write the trait's outputs.

    ``out`` keys: auc, slides, rounds, tiles (HDF5), models (.pt).
    """
    import h5py
    import torch

    from .io import atomic_path, write_tsv
    from .provenance import base_attrs, write_sidecar

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
            from .errors import InputTableError

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
