"""Clinical-label classifiers (Ektefaie et al. 2021): ductal/lobular, ER, PR, HER2,
PAM50 (4 classes) and TP53 mutation from tile features.

Protocol: per slide the ``tiles_per_slide`` densest tiles (density = 1 - the tile's
white-pixel fraction, from the feature store's colour/texture descriptors; the paper's
top-200 by non-white pixels) or a seeded random choice; tiles inherit their patient's
label; one head per label is fitted on the train patients' tiles with early stopping on
the tune patients' patient-level loss; a patient's score is the mean of its tiles'
probabilities. Reported per evaluation set (validation, test, external and all three
pooled): patient- and tile-level AUC with DeLong CI (binary; one-vs-rest per class for
PAM50) and, for PAM50, top-1 / top-2 accuracy with Wilson CI and the confusion matrix.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTableError
from .metrics import accuracy_row, binary_rows, confusion_matrix, delong_auc, one_vs_rest_auc
from .model import ClassifierConfig, FittedClassifier, fit, group_mean

log = logging.getLogger("emo")

# label -> (clinical column, classes; binary: [negative, positive]). PAM50's classes come
# from config clinical_classifiers.pam50_classes.
BINARY_LABELS = {
    "histology": ("histology", ("ductal", "lobular")),
    "er": ("er", ("negative", "positive")),
    "pr": ("pr", ("negative", "positive")),
    "her2": ("her2", ("negative", "positive")),
    "tp53": ("tp53", ("wildtype", "mutant")),
}
LABELS = ("histology", "er", "pr", "her2", "pam50", "tp53")
EVALUATION_SETS = ("validation", "test", "external")
POOLED = "heldout"  # validation + test + external


def label_classes(label: str, cfg: Mapping) -> tuple[str, tuple[str, ...]]:
    """(clinical column, class names) of a label."""
    if label == "pam50":
        return "pam50", tuple(str(c) for c in cfg["pam50_classes"])
    if label not in BINARY_LABELS:
        raise ConfigError(f"config key 'clinical_classifiers.labels': unknown label {label!r}; use {list(LABELS)}")
    return BINARY_LABELS[label]


def resolve_labels(cfg: Mapping, columns: Sequence[str], where: str) -> list[str]:
    """The labels to train: config ``labels`` (each one's column must be in the table), or,
    when null, every label whose column the clinical table has."""
    columns = set(columns)
    if cfg["labels"] is None:
        labels = [lab for lab in LABELS if label_classes(lab, cfg)[0] in columns]
        if not labels:
            raise InputTableError(f"{where}: none of the clinical label columns "
                                  f"{[label_classes(lab, cfg)[0] for lab in LABELS]} is present; add one or set "
                                  "clinical_classifiers.enabled: false")
        return labels
    labels = [str(lab) for lab in cfg["labels"]]
    missing = [lab for lab in labels if label_classes(lab, cfg)[0] not in columns]
    if missing:
        raise InputTableError(f"{where}: lacks the column(s) of label(s) {missing} listed in config key "
                              "'clinical_classifiers.labels'; add the column (or map it with clinical_mapping) or "
                              "remove the label")
    return labels


def patient_labels(clinical: pd.DataFrame, column: str, classes: Sequence[str]) -> pd.Series:
    """patient -> class index for the patients whose ``column`` value is one of ``classes``
    (compared after stripping; other values, e.g. PAM50 Normal or empty, are left out)."""
    values = clinical.set_index("patient")[column]
    index = {c: i for i, c in enumerate(classes)}
    coded = values.map(lambda v: index.get(str(v).strip(), -1) if pd.notna(v) else -1)
    others = values[(coded < 0) & values.notna()].astype(str).str.strip()
    if len(others):
        log.info("column %s: %d patient(s) with values outside %s left out: %s", column, len(others), list(classes),
                 others.value_counts().sort_index().to_dict())
    return coded[coded >= 0].astype(int).sort_index()


def select_tiles(density: np.ndarray, n: int, how: str, seed: int) -> np.ndarray:
    """Row indices (sorted) of the tiles a slide contributes: ``density`` the n densest
    (ties: lower index first), ``random`` a seeded choice; all when the slide has <= n."""
    count = len(density)
    if count <= n:
        return np.arange(count)
    if how == "density":
        order = np.lexsort((np.arange(count), -np.asarray(density, dtype=np.float64)))
        return np.sort(order[:n])
    if how == "random":
        return np.sort(np.random.default_rng(seed).choice(count, size=n, replace=False))
    raise ConfigError(f"config key 'clinical_classifiers.tile_selection': {how!r}; use density or random")


@dataclass
class TileSet:
    """The selected tiles of every slide: features (N, D) and each row's patient."""

    features: np.ndarray
    patients: np.ndarray
    n_tiles: dict  # patient -> selected tiles
    descriptors: np.ndarray | None = None  # (N, 40) colour/texture of the same tiles; None when a store lacks them


def read_selected_tiles(samples: Sequence[str], patients: Sequence[str], feature_paths: Mapping[str, str],
                        cfg: Mapping) -> TileSet:
    """Read each slide's feature store and keep its selected tiles (docstring of the module)."""
    from ..colour_texture import DESCRIPTOR_NAMES
    from ..splits import patient_unit
    from ..stores.features import open_feature_store

    white = DESCRIPTOR_NAMES.index("white_fraction")
    blocks, owners, descriptors = [], [], []
    for sample, patient in sorted(zip(samples, patients)):
        with open_feature_store(feature_paths[sample]) as store:
            if store.n_tiles == 0:
                continue
            if cfg["tile_selection"] == "density" and not store.has_colour_texture:
                raise InputTableError(f"feature store {feature_paths[sample]} (slide {sample!r}) has no "
                                      "/colour_texture; tile_selection density needs it: re-extract features or "
                                      "set clinical_classifiers.tile_selection: random")
            colour = (np.concatenate(list(store.iter_blocks(store.n_tiles, "colour_texture")))
                      if store.has_colour_texture else None)
            density = 1.0 - colour[:, white] if cfg["tile_selection"] == "density" else np.zeros(store.n_tiles)
            seed = int(patient_unit(f"{cfg['seed']}:tiles:{sample}", 0) * 2 ** 32)
            keep = select_tiles(density, int(cfg["tiles_per_slide"]), cfg["tile_selection"], seed)
            blocks.append(np.asarray(store.features()[keep], dtype=np.float32))
            descriptors.append(None if colour is None else np.asarray(colour[keep], dtype=np.float32))
            owners.extend([str(patient)] * len(keep))
    if not blocks:
        raise InputTableError("no slide has tiles in its feature store; nothing to classify")
    owners = np.asarray(owners)
    unique, counts = np.unique(owners, return_counts=True)
    colour_all = None if any(d is None for d in descriptors) else np.concatenate(descriptors)
    return TileSet(np.concatenate(blocks), owners, dict(zip(unique.tolist(), counts.tolist())), colour_all)


def _evaluate(label: str, classes: Sequence[str], set_name: str, y_patient: np.ndarray, p_patient: np.ndarray,
              y_tile: np.ndarray, p_tile: np.ndarray, level: float) -> list[dict]:
    return (_evaluate_level(label, classes, set_name, "patient", y_patient, p_patient, level)
            + _evaluate_level(label, classes, set_name, "tile", y_tile, p_tile, level))


def _evaluate_level(label: str, classes: Sequence[str], set_name: str, level_name: str, y: np.ndarray,
                    p: np.ndarray, level: float) -> list[dict]:
    base = {"label": label, "set": set_name, "level": level_name}
    if len(classes) == 2:
        return [{**base, "metric": "auc", "class": classes[1], **binary_rows(y == 1, p[:, 1], level),
                 "ci_method": "delong"}]
    rows = []
    for c, (auc, _, lo, hi) in enumerate(one_vs_rest_auc(y, p, level) if len(y) else [(math.nan,) * 4] * len(classes)):
        rows.append({**base, "metric": "auc_ovr", "class": classes[c], "n": int(len(y)),
                     "n_positive": int((y == c).sum()), "auc": auc, "ci_lower": lo, "ci_upper": hi,
                     "ci_method": "delong"})
    for k in (1, 2):
        acc = accuracy_row(y, p, k, level)
        rows.append({**base, "metric": f"top{k}_accuracy", "class": "", "n": acc["n"], "n_positive": math.nan,
                     "auc": acc["accuracy"], "ci_lower": acc["ci_lower"], "ci_upper": acc["ci_upper"],
                     "ci_method": "wilson"})
    return rows


class LabelNotTrainable(InputTableError):
    """A label's train patients lack a class (raised for a label listed in the config;
    with ``labels: null`` the label is reported as skipped in labels.tsv instead)."""


PATIENT_COLUMNS = ["label", "patient", "split", "n_tiles", "truth", "class", "probability"]
CONFUSION_COLUMNS = ["label", "set", "truth", "predicted", "count"]
METRIC_COLUMNS = ["label", "set", "level", "metric", "class", "n", "n_positive", "value", "ci_lower", "ci_upper",
                  "ci_method"]


def run_label(label: str, classes: Sequence[str], y: pd.Series, tiles: TileSet, splits: pd.DataFrame,
              cfg: Mapping, device: str) -> tuple[FittedClassifier, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fit one label and evaluate it. Returns (model, patients table (label, patient,
    split, n_tiles, truth, class, probability; every patient with tiles), metrics,
    confusion (label, set, truth, predicted, count; patient level))."""
    split_of = dict(zip(splits["patient"].astype(str), splits["split"]))
    row_split = np.asarray([split_of.get(p, "") for p in tiles.patients])
    row_y = np.asarray([y.get(p, -1) for p in tiles.patients])
    train = (row_split == "train") & (row_y >= 0)
    tune = (row_split == "tune") & (row_y >= 0)
    found = sorted(set(row_y[train].tolist()))
    if len(found) < 2:
        raise LabelNotTrainable(f"label {label!r}: the train patients' tiles hold only class(es) "
                                f"{[classes[i] for i in found]}; a classifier needs at least two classes in "
                                "train (more patients, other splits.proportions, or drop the label from "
                                "clinical_classifiers.labels)")
    model = fit(tiles.features[train], row_y[train], len(classes), ClassifierConfig.from_config(dict(cfg)),
                tune=(tiles.features[tune], row_y[tune], tiles.patients[tune]) if tune.any() else None,
                device=device)
    log.info("label %s: %d train tiles (%d patients), %d tune tiles; best epoch %d of %d, tune loss %.4f",
             label, int(train.sum()), len(set(tiles.patients[train])), int(tune.sum()), model.best_epoch,
             model.epochs_run, model.best_tune_loss)
    proba = model.predict_proba(tiles.features, device)
    names, patient_proba = group_mean(proba, tiles.patients)
    rows = []
    for p, probs in zip(names, patient_proba):
        truth = classes[y[p]] if p in y.index else ""
        for c, name in enumerate(classes):
            rows.append({"label": label, "patient": p, "split": split_of.get(p, ""), "n_tiles": tiles.n_tiles[p],
                         "truth": truth, "class": name, "probability": float(probs[c])})
    patients_table = pd.DataFrame(rows)
    patient_split = np.asarray([split_of.get(p, "") for p in names])
    patient_y = np.asarray([y.get(p, -1) for p in names])
    metrics, confusion = [], []
    level = float(cfg["ci_level"])
    for set_name in EVALUATION_SETS + (POOLED,):
        wanted = EVALUATION_SETS if set_name == POOLED else (set_name,)
        pm = np.isin(patient_split, wanted) & (patient_y >= 0)
        tm = np.isin(row_split, wanted) & (row_y >= 0)
        metrics += _evaluate(label, classes, set_name, patient_y[pm], patient_proba[pm], row_y[tm], proba[tm], level)
        matrix = confusion_matrix(patient_y[pm], patient_proba[pm].argmax(axis=1), len(classes))
        confusion += [{"label": label, "set": set_name, "truth": classes[i], "predicted": classes[j],
                       "count": int(matrix[i, j])} for i in range(len(classes)) for j in range(len(classes))]
    metrics_table = pd.DataFrame(metrics).rename(columns={"auc": "value"})[METRIC_COLUMNS]
    return model, patients_table, metrics_table, pd.DataFrame(confusion)


# The baselines every label is reported beside, on the same patients and tiles:
# colour_texture = the same head on the 40 colour/texture descriptors of the same tiles;
# ridge_logistic = L2 logistic regression on each patient's mean encoder feature vector.
BASELINES = ("colour_texture", "ridge_logistic")
COMPARISON_COLUMNS = ["label", "set", "metric", "class", "model", "n", "n_positive", "value", "ci_lower", "ci_upper"]


def _patient_rows(label: str, classes: Sequence[str], model_name: str, names: np.ndarray, proba: np.ndarray,
                  y: pd.Series, split_of: Mapping[str, str], level: float) -> list[dict]:
    """Patient-level AUC (and PAM50 top-k accuracy) rows of one model per evaluation set."""
    patient_split = np.asarray([split_of.get(p, "") for p in names])
    patient_y = np.asarray([y.get(p, -1) for p in names])
    rows = []
    for set_name in EVALUATION_SETS + (POOLED,):
        wanted = EVALUATION_SETS if set_name == POOLED else (set_name,)
        pm = np.isin(patient_split, wanted) & (patient_y >= 0)
        rows += [{**row, "model": model_name}
                 for row in _evaluate_level(label, classes, set_name, "patient", patient_y[pm], proba[pm], level)]
    return rows


def baseline_comparison(label: str, classes: Sequence[str], y: pd.Series, tiles: TileSet, splits: pd.DataFrame,
                        cfg: Mapping, device: str, head_metrics: pd.DataFrame) -> pd.DataFrame:
    """The label's patient-level metrics of the head beside both baselines (BASELINES),
    fitted on the same train patients and scored on the same evaluation patients."""
    from sklearn.linear_model import LogisticRegression

    split_of = dict(zip(splits["patient"].astype(str), splits["split"]))
    level = float(cfg["ci_level"])
    rows = [head_metrics[head_metrics["level"] == "patient"].rename(columns={"value": "auc"}).assign(model="head")]
    row_split = np.asarray([split_of.get(p, "") for p in tiles.patients])
    row_y = np.asarray([y.get(p, -1) for p in tiles.patients])
    train, tune = (row_split == "train") & (row_y >= 0), (row_split == "tune") & (row_y >= 0)
    if tiles.descriptors is not None:
        colour = fit(tiles.descriptors[train], row_y[train], len(classes), ClassifierConfig.from_config(dict(cfg)),
                     tune=(tiles.descriptors[tune], row_y[tune], tiles.patients[tune]) if tune.any() else None,
                     device=device)
        names, proba = group_mean(colour.predict_proba(tiles.descriptors, device), tiles.patients)
        rows.append(pd.DataFrame(_patient_rows(label, classes, "colour_texture", names, proba, y, split_of, level)))
    else:
        log.warning("label %s: no colour/texture descriptors in the feature stores; colour_texture baseline skipped",
                    label)
    names, mean_features = group_mean(tiles.features, tiles.patients)
    patient_y = np.asarray([y.get(p, -1) for p in names])
    fit_rows = np.isin(np.asarray([split_of.get(p, "") for p in names]), ("train", "tune")) & (patient_y >= 0)
    centre = mean_features[fit_rows].mean(axis=0)
    scale = mean_features[fit_rows].std(axis=0) + 1e-6
    ridge = LogisticRegression(C=1.0, max_iter=2000).fit((mean_features[fit_rows] - centre) / scale,
                                                         patient_y[fit_rows])
    proba = np.zeros((len(names), len(classes)))
    proba[:, ridge.classes_] = ridge.predict_proba((mean_features - centre) / scale)
    rows.append(pd.DataFrame(_patient_rows(label, classes, "ridge_logistic", names, proba, y, split_of, level)))
    table = pd.concat(rows, ignore_index=True).rename(columns={"auc": "value"})
    return table[COMPARISON_COLUMNS]


def _label_row(label: str, classes: Sequence[str], y: pd.Series, splits: pd.DataFrame, tiles: TileSet) -> dict:
    split_of = dict(zip(splits["patient"].astype(str), splits["split"]))
    with_tiles = [p for p in y.index if p in tiles.n_tiles]
    counts = {s: {c: 0 for c in classes} for s in ("train", "tune", "heldout")}
    for p in with_tiles:
        split = split_of.get(p, "")
        split = "heldout" if split in EVALUATION_SETS else split
        if split in counts:
            counts[split][classes[y[p]]] += 1
    return {"label": label, "classes": ",".join(classes),
            **{f"{s}_patients": ",".join(f"{c}:{n}" for c, n in counts[s].items()) for s in counts}}


LABEL_COLUMNS = ["label", "status", "reason", "classes", "train_patients", "tune_patients", "heldout_patients",
                 "best_epoch", "epochs_run", "best_tune_loss"]


def run(sheet: pd.DataFrame, feature_paths: Mapping[str, str], clinical: pd.DataFrame, clinical_path: str,
        splits: pd.DataFrame, cfg: Mapping, device: str = "cpu") -> dict:
    """Every configured label end to end. Returns {"labels" (the trained ones), "models",
    "patients", "metrics", "confusion" (tables concatenated over the trained labels, in
    label order), "status" (labels.tsv: every label, trained or skipped, with its patients
    per class and split)}. With ``labels: null`` a label whose train patients lack a class
    is skipped (status ``skipped``, the reason given; logged as a warning); a listed one
    is refused."""
    labels = resolve_labels(cfg, clinical.columns, f"clinical table {clinical_path} (config key 'clinical')")
    tiles = read_selected_tiles(list(sheet["sample"]), list(sheet["patient"]), feature_paths, cfg)
    log.info("%d tiles of %d patients selected (%s, up to %d per slide); labels %s", len(tiles.features),
             len(tiles.n_tiles), cfg["tile_selection"], cfg["tiles_per_slide"], labels)
    out = {"labels": [], "models": {}, "patients": [], "metrics": [], "confusion": [], "status": [], "comparison": []}
    for label in labels:
        column, classes = label_classes(label, cfg)
        y = patient_labels(clinical, column, classes)
        row = _label_row(label, classes, y, splits, tiles)
        try:
            model, patients_table, metrics, confusion = run_label(label, classes, y, tiles, splits, cfg, device)
        except LabelNotTrainable as error:
            if cfg["labels"] is not None:
                raise
            log.warning("%s: skipped (clinical_classifiers.labels is null)", error)
            out["status"].append({**row, "status": "skipped", "reason": str(error), "best_epoch": math.nan,
                                  "epochs_run": math.nan, "best_tune_loss": math.nan})
            continue
        out["status"].append({**row, "status": "trained", "reason": "", "best_epoch": model.best_epoch,
                              "epochs_run": model.epochs_run, "best_tune_loss": model.best_tune_loss})
        out["labels"].append(label)
        out["models"][label] = {"classes": list(classes), **model.to_dict()}
        out["patients"].append(patients_table)
        out["metrics"].append(metrics)
        out["confusion"].append(confusion)
        if cfg["baselines"]:
            out["comparison"].append(baseline_comparison(label, classes, y, tiles, splits, cfg, device, metrics))
    if not out["labels"]:  # only with labels: null (a listed label raises): report, do not fail the run
        log.warning("clinical table %s: no label could be trained; labels.tsv gives the reasons", clinical_path)
    empty = {"patients": PATIENT_COLUMNS, "metrics": METRIC_COLUMNS, "confusion": CONFUSION_COLUMNS,
             "comparison": COMPARISON_COLUMNS}
    for key in ("patients", "metrics", "confusion", "comparison"):
        out[key] = pd.concat(out[key], ignore_index=True) if out[key] else pd.DataFrame(columns=empty[key])
    out["status"] = pd.DataFrame(out["status"])[LABEL_COLUMNS]
    return out


def patient_auc_check(metrics: pd.DataFrame) -> pd.DataFrame:
    """The patient-level AUC rows of the pooled held-out set (what the acceptance prints)."""
    m = metrics
    return m[(m["level"] == "patient") & (m["set"] == POOLED)].reset_index(drop=True)


__all__ = ["BINARY_LABELS", "LABELS", "EVALUATION_SETS", "POOLED", "BASELINES", "label_classes", "resolve_labels",
           "patient_labels", "select_tiles", "read_selected_tiles", "run_label", "baseline_comparison", "run",
           "delong_auc"]
