"""Image + expression fusion for subtype classification (paper 004; docs/fusion.md).

Per patient: ``patches_per_patient`` image patches (accepted tiles of its slides, a seeded
random or densest choice; their encoder features) and its expression (the pipeline's
prepared log values; clipped to the training folds' IQR fences and z-scored with the
training folds' mean and SD). Patients are aligned across modalities (a patient missing
one is refused, or dropped with ``missing_modality: drop``).

Models, all on the same patient folds: ``image`` (head on the patient's mean patch
features), ``expression`` (head on the preprocessed expression), ``concatenation`` (head
on both, concatenated), ``late`` (decision level: by default a combiner stacked on the
image and expression models' inner-fold log-probabilities, :func:`stacked_late_fusion`;
or their weighted mean) and ``cross_attention`` (:mod:`.fusion_net`). The
heads are :func:`emo.classifiers.fit` (the clinical classifiers' head).

Evaluation: k-fold patient-level cross-validation on the training cohorts' patients
(:func:`emo.classifiers.patient_folds`, site-disjoint with ``splits.by: site``; one fold
table shared by every model and target), out-of-fold predictions pooled (set ``cv``),
then the external cohorts' patients scored by the mean of the k fold models (set
``external``). F1, PR-AUC (average precision) and ROC-AUC with CIs (percentile bootstrap
over patients; DeLong for a binary ROC-AUC).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTableError
from .clinical import select_tiles
from .folds import patient_folds
from .fusion_net import AttentionConfig, fit_attention
from .metrics import bootstrap_metrics, confusion_matrix, delong_auc
from .model import ClassifierConfig, fit

log = logging.getLogger("emo")

MODELS = ("image", "expression", "concatenation", "late", "cross_attention")
UNIMODAL = ("image", "expression")
FUSION = ("concatenation", "late", "cross_attention")
RECEPTORS = ("er", "pr", "her2")
SETS = ("cv", "external")
METRICS = ("f1", "pr_auc", "roc_auc")


# ----------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    name: str                  # "pam50", "pam50:Basal", "er", ...
    column: str                # clinical column
    classes: tuple[str, ...]   # class names; binary: (negative, positive)
    one_vs_rest: str | None = None  # the PAM50 class of a one-vs-rest target


def target_spec(name: str, cfg: Mapping) -> Target:
    if name == "pam50":
        return Target(name, "pam50", tuple(str(c) for c in cfg["pam50_classes"]))
    if name.startswith("pam50:"):
        positive = name.split(":", 1)[1]
        return Target(name, "pam50", (f"not {positive}", positive), positive)
    if name in RECEPTORS:
        return Target(name, name, ("negative", "positive"))
    raise ConfigError(f"config key 'fusion.targets': unknown target {name!r}; use pam50, pam50:<class> or "
                      f"one of {list(RECEPTORS)}")


def check_targets(cfg: Mapping, columns: Sequence[str], where: str) -> list[Target]:
    """The configured targets; each one's clinical column must be in the table."""
    targets = [target_spec(str(t), cfg) for t in cfg["targets"]]
    missing = sorted({t.column for t in targets if t.column not in set(columns)})
    if missing:
        raise InputTableError(f"{where}: lacks the column(s) {missing} of the targets in config key "
                              "'fusion.targets'; add them (or map them with clinical_mapping) or remove the targets")
    return targets


def target_labels(clinical: pd.DataFrame, target: Target) -> pd.Series:
    """patient -> class index for the patients with a usable value (others left out):
    receptors positive/negative; PAM50 multi-class the configured classes; one-vs-rest
    every patient with a PAM50 call (1 = the class)."""
    values = clinical.set_index(clinical["patient"].astype(str))[target.column]
    text = values.map(lambda v: str(v).strip() if pd.notna(v) else "")
    if target.one_vs_rest is not None:
        coded = text.map(lambda v: -1 if v == "" else int(v == target.one_vs_rest))
    else:
        index = {c: i for i, c in enumerate(target.classes)}
        coded = text.map(lambda v: index.get(v, -1))
    return coded[coded >= 0].astype(int).sort_index()


# ----------------------------------------------------------------------------- inputs

@dataclass
class PatchSet:
    """The selected patches of every patient with tiles (patients sorted)."""

    patients: list[str]
    features: np.ndarray   # (P, K, D) float32, zero where mask is False
    mask: np.ndarray       # (P, K) bool
    samples: np.ndarray    # (P, K) object: the slide of each patch ("" = padding)
    coords: np.ndarray     # (P, K, 2) int64 (-1 = padding)

    def mean_features(self) -> np.ndarray:
        """(P, D) mean of each patient's patches."""
        counts = self.mask.sum(axis=1, keepdims=True)
        return (self.features * self.mask[..., None]).sum(axis=1) / np.maximum(counts, 1)

    def take(self, patients: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        index = {p: i for i, p in enumerate(self.patients)}
        rows = np.array([index[p] for p in patients], dtype=np.int64)
        return self.features[rows], self.mask[rows]


def read_patches(samples: Sequence[str], patients: Sequence[str], feature_paths: Mapping[str, str],
                 cfg: Mapping) -> PatchSet:
    """Each patient's ``patches_per_patient`` patches from the tiles of all its slides (a
    seeded random choice, or the densest by the feature store's white fraction); a
    patient with fewer tiles keeps them all (the rest padded and masked)."""
    from ..colour_texture import DESCRIPTOR_NAMES
    from ..splits import patient_unit
    from ..stores.features import open_feature_store

    white = DESCRIPTOR_NAMES.index("white_fraction")
    n = int(cfg["patches_per_patient"])
    how = cfg["patch_selection"]
    slides: dict[str, list[str]] = {}
    for sample, patient in sorted(zip(samples, patients)):
        slides.setdefault(str(patient), []).append(str(sample))
    chosen, dim = {}, None
    for patient, names in sorted(slides.items()):
        blocks, density, owners, coords = [], [], [], []
        for sample in names:
            with open_feature_store(feature_paths[sample]) as store:
                dim = store.feature_dim if dim is None else dim
                if store.feature_dim != dim:
                    raise InputTableError(f"feature store {feature_paths[sample]} (slide {sample!r}) has "
                                          f"{store.feature_dim} features, others {dim}: mixed encoders")
                if store.n_tiles == 0:
                    continue
                if how == "density" and not store.has_colour_texture:
                    raise InputTableError(f"feature store {feature_paths[sample]} (slide {sample!r}) has no "
                                          "/colour_texture; fusion.patch_selection density needs it: re-extract "
                                          "features or set fusion.patch_selection: random")
                blocks.append(np.asarray(store.features(), dtype=np.float32))
                coords.append(np.asarray(store.coords(), dtype=np.int64))
                owners += [sample] * store.n_tiles
                density.append(1.0 - np.concatenate(list(store.iter_blocks(store.n_tiles, "colour_texture")))[:, white]
                               if how == "density" else np.zeros(store.n_tiles))
        if not blocks:
            continue
        seed = int(patient_unit(f"{cfg['seed']}:fusion_patches:{patient}", 0) * 2 ** 32)
        keep = select_tiles(np.concatenate(density), n, how, seed)
        chosen[patient] = (np.concatenate(blocks)[keep], np.asarray(owners, dtype=object)[keep],
                           np.concatenate(coords)[keep])
    names = sorted(chosen)
    dim = int(dim or 0)
    features = np.zeros((len(names), n, dim), dtype=np.float32)
    mask = np.zeros((len(names), n), dtype=bool)
    owners = np.full((len(names), n), "", dtype=object)
    xy = np.full((len(names), n, 2), -1, dtype=np.int64)
    for i, p in enumerate(names):
        f, o, c = chosen[p]
        features[i, :len(f)], mask[i, :len(f)], owners[i, :len(f)], xy[i, :len(f)] = f, True, o, c
    return PatchSet(names, features, mask, owners, xy)


def align_modalities(patients: Sequence[str], image_patients: Sequence[str], expression: pd.DataFrame,
                     missing: str) -> tuple[list[str], pd.DataFrame]:
    """The ``patients`` (those with a label, in a training or external cohort) that have both
    modalities, and a table ``patient, modality`` of those missing one. ``missing: error``
    refuses any such patient, naming them and the modality."""
    image = set(image_patients)
    complete = expression.notna().all(axis=1)
    have_expression = set(expression.index[complete].astype(str))
    rows = []
    for p in sorted(set(patients)):
        lacks = [m for m, ok in (("image", p in image), ("expression", p in have_expression)) if not ok]
        if lacks:
            rows.append({"patient": p, "modality": "+".join(lacks)})
    gaps = pd.DataFrame(rows, columns=["patient", "modality"])
    if len(gaps) and missing == "error":
        listed = "; ".join(f"{r.patient} (no {r.modality})" for r in gaps.head(10).itertuples())
        raise InputTableError(
            f"fusion: {len(gaps)} labelled patient(s) lack a modality: {listed}{' ...' if len(gaps) > 10 else ''}. "
            "A patient needs image patches (a slide with accepted tiles in its feature store) and a complete "
            "expression profile (results/expression/prepared.h5); fix their inputs, leave them out of the sample "
            "sheet, or set fusion.missing_modality: drop")
    if len(gaps):
        log.warning("fusion: %d patient(s) lacking a modality dropped (fusion.missing_modality: drop): %s",
                    len(gaps), ", ".join(gaps["patient"].head(20)))
    return [p for p in sorted(set(patients)) if p not in set(gaps["patient"])], gaps


# ----------------------------------------------------------------------------- preprocessing

@dataclass
class ExpressionScaler:
    """IQR fences and z-score of each expression feature, fitted on training patients only."""

    lower: np.ndarray
    upper: np.ndarray
    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, iqr_multiplier: float) -> "ExpressionScaler":
        x = np.asarray(x, dtype=np.float64)
        q1, q3 = np.percentile(x, [25.0, 75.0], axis=0)
        lower, upper = q1 - iqr_multiplier * (q3 - q1), q3 + iqr_multiplier * (q3 - q1)
        clipped = np.clip(x, lower, upper)
        mean, sd = clipped.mean(axis=0), clipped.std(axis=0)
        return cls(lower, upper, mean, np.where(sd > 0, sd, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.clip(np.asarray(x, dtype=np.float64), self.lower, self.upper) - self.mean) / self.sd
                ).astype(np.float32)


# ----------------------------------------------------------------------------- cross-validation

def head_config(cfg: Mapping) -> ClassifierConfig:
    head = cfg["head"]
    return ClassifierConfig(hidden=int(head["hidden"]), dropout=float(head["dropout"]), lr=float(head["lr"]),
                            weight_decay=float(head["weight_decay"]), batch_size=int(head["batch_size"]),
                            max_epochs=int(head["max_epochs"]), patience=1, balance_classes=True,
                            seed=int(cfg["seed"]))


def attention_config(cfg: Mapping) -> AttentionConfig:
    a = cfg["cross_attention"]
    return AttentionConfig(dim=int(a["dim"]), heads=int(a["heads"]), dropout=float(a["dropout"]), lr=float(a["lr"]),
                           weight_decay=float(a["weight_decay"]), epochs=int(a["epochs"]), balance_classes=True,
                           seed=int(cfg["seed"]))


def needed_models(models: Sequence[str]) -> list[str]:
    """The configured models plus the unimodal ones late fusion combines."""
    wanted = set(models) | (set(UNIMODAL) if "late" in models else set())
    return [m for m in MODELS if m in wanted]


STACK_INNER_FOLDS = 3


def _log_odds(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-6, 1.0))


def stacked_late_fusion(image: np.ndarray, expression: np.ndarray, labels: np.ndarray, train: np.ndarray,
                        score: np.ndarray, outer: tuple[np.ndarray, np.ndarray], n_classes: int, head,
                        iqr_multiplier: float, seed: int, device: str) -> np.ndarray:
    """Decision-level fusion by stacking: the image and expression heads are refitted on
    inner folds of the outer training patients, their out-of-fold log-probabilities on
    those patients train an L2 logistic regression (the combiner), which is applied to the
    outer-fold models' log-probabilities of the ``score`` rows. The combiner learns how
    far to trust each modality (a fixed mean lets the model with the larger logits
    dominate, whatever its accuracy). ``outer``: the outer-fold image and expression
    models' probabilities of the score rows. Returns (n_score, C) probabilities."""
    from sklearn.linear_model import LogisticRegression

    rows = np.flatnonzero(train)
    rng = np.random.default_rng(seed)
    inner = np.empty(len(rows), dtype=np.int64)
    for c in range(n_classes):  # stratified, seeded inner folds
        members = rows[labels[rows] == c]
        order = rng.permutation(len(members))
        inner[np.searchsorted(rows, members[order])] = np.arange(len(members)) % STACK_INNER_FOLDS
    oof = np.zeros((len(rows), 2 * n_classes))
    for j in range(STACK_INNER_FOLDS):
        fit_rows, held = rows[inner != j], rows[inner == j]
        if len(held) == 0 or len(set(labels[fit_rows].tolist())) < n_classes:
            continue
        xe = ExpressionScaler.fit(expression[fit_rows], iqr_multiplier).transform(expression)
        for block, x in enumerate((image, xe)):
            model = fit(x[fit_rows], labels[fit_rows], n_classes, head, device=device)
            oof[inner == j, block * n_classes:(block + 1) * n_classes] = _log_odds(model.predict_proba(x[held], device))
    combiner = LogisticRegression(C=1.0, max_iter=2000).fit(oof, labels[rows])
    features = np.concatenate([_log_odds(outer[0]), _log_odds(outer[1])], axis=1)
    out = np.zeros((int(score.sum()), n_classes))
    out[:, combiner.classes_] = combiner.predict_proba(features)
    return out


class TargetNotTrainable(InputTableError):
    """A target's training folds lack a class."""


@dataclass
class TargetResult:
    target: Target
    patients: list[str]                 # cv patients then external patients
    sets: list[str]
    folds: list[int]
    y: np.ndarray
    proba: dict[str, np.ndarray]        # model -> (N, C)
    attention: np.ndarray | None        # (N, G, K) cross-attention weights
    train_loss: dict[str, float]


def run_target(target: Target, y: pd.Series, folds: pd.DataFrame, external: Sequence[str], patches: PatchSet,
               expression: pd.DataFrame, cfg: Mapping, device: str = "cpu") -> TargetResult:
    """One target through every model: the k fold models' out-of-fold predictions of its
    cv patients, the mean of the fold models for its external patients."""
    fold_of = dict(zip(folds["patient"], folds["fold"]))
    cv = [p for p in folds["patient"] if p in y.index]
    ext = sorted(p for p in external if p in y.index)
    k = int(folds["fold"].max()) + 1 if len(folds) else 0
    n_classes = len(target.classes)
    models = needed_models(cfg["models"])
    head = head_config(cfg)
    everyone = cv + ext
    image_mean = pd.DataFrame(patches.mean_features(), index=patches.patients).loc[everyone].to_numpy(np.float32)
    expr = expression.loc[everyone].to_numpy(np.float64)
    labels = y.loc[everyone].to_numpy(np.int64)
    fold_arr = np.array([fold_of[p] for p in cv] + [-1] * len(ext), dtype=np.int64)
    n = len(everyone)
    proba = {m: np.zeros((n, n_classes)) for m in models}
    attention = None
    losses: dict[str, list] = {m: [] for m in models}
    is_ext = fold_arr < 0
    for f in range(k):
        train, test = fold_arr != f, fold_arr == f
        train &= ~is_ext
        present = sorted(set(labels[train].tolist()))
        if len(present) < n_classes:
            raise TargetNotTrainable(
                f"target {target.name!r}: the training folds of fold {f} hold only class(es) "
                f"{[target.classes[i] for i in present]} of {list(target.classes)}; too few patients of a class for "
                f"{k}-fold cross-validation (fewer fusion.folds, more patients, or drop the target from fusion.targets)")
        score = test | is_ext  # rows this fold's models predict
        scaler = ExpressionScaler.fit(expr[train], float(cfg["iqr_multiplier"]))
        xe = scaler.transform(expr)
        inputs = {"image": image_mean, "expression": xe, "concatenation": np.concatenate([image_mean, xe], axis=1)}
        fold_proba = {}
        for m in ("image", "expression", "concatenation"):
            if m not in models:
                continue
            model = fit(inputs[m][train], labels[train], n_classes, head, device=device)
            fold_proba[m] = p = model.predict_proba(inputs[m][score], device)
            _accumulate(proba[m], score, is_ext, p, k)
            losses[m].append(model.history[-1]["train_loss"])
        if "late" in models and cfg["late_fusion"] == "stacked":
            p = stacked_late_fusion(image_mean, expr, labels, train, score, (fold_proba["image"],
                                    fold_proba["expression"]), n_classes, head, float(cfg["iqr_multiplier"]),
                                    int(cfg["seed"]) + f, device)
            _accumulate(proba["late"], score, is_ext, p, k)
        if "cross_attention" in models:
            pf, pm = patches.take(everyone)
            net = fit_attention(xe[train], pf[train], pm[train], labels[train], n_classes, attention_config(cfg), device)
            p, w = net.predict(xe[score], pf[score], pm[score], device)
            _accumulate(proba["cross_attention"], score, is_ext, p, k)
            if attention is None:
                attention = np.zeros((n, xe.shape[1], pf.shape[1]), dtype=np.float32)
            _accumulate(attention, score, is_ext, w, k)
            losses["cross_attention"].append(net.train_loss[-1])
    if "late" in models and cfg["late_fusion"] == "mean":
        w_image = float(cfg["late_image_weight"])
        proba["late"] = w_image * proba["image"] + (1.0 - w_image) * proba["expression"]
    proba = {m: proba[m] for m in cfg["models"]}  # the configured models only
    return TargetResult(target, everyone, ["cv"] * len(cv) + ["external"] * len(ext), fold_arr.tolist(), labels,
                        proba, attention, {m: float(np.mean(v)) if v else math.nan for m, v in losses.items()})


def _accumulate(out: np.ndarray, rows: np.ndarray, is_ext: np.ndarray, values: np.ndarray, k: int) -> None:
    """Out-of-fold rows take the fold model's value; external rows the mean over the k folds."""
    index = np.nonzero(rows)[0]
    ext = is_ext[index]
    out[index[~ext]] = values[~ext]
    out[index[ext]] += values[ext] / k


# ----------------------------------------------------------------------------- evaluation

METRIC_COLUMNS = ["target", "model", "set", "n", "n_positive", "f1", "f1_ci_lower", "f1_ci_upper", "pr_auc",
                  "pr_auc_ci_lower", "pr_auc_ci_upper", "roc_auc", "roc_auc_ci_lower", "roc_auc_ci_upper",
                  "roc_auc_ci_method"]


def evaluate(result: TargetResult, cfg: Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics rows (METRIC_COLUMNS), confusion rows target, model, set, truth, predicted,
    count) of every model and set."""
    sets = np.asarray(result.sets)
    classes = result.target.classes
    rows, confusion = [], []
    level = float(cfg["ci_level"])
    for model, proba in result.proba.items():
        for set_name in SETS:
            keep = sets == set_name
            y, p = result.y[keep], proba[keep]
            boot = bootstrap_metrics(y, p, int(cfg["bootstrap"]), int(cfg["seed"]), level) if len(y) else \
                {m: (math.nan,) * 3 for m in METRICS}
            row = {"target": result.target.name, "model": model, "set": set_name, "n": int(len(y)),
                   "n_positive": int((y == 1).sum()) if len(classes) == 2 else math.nan}
            for metric in METRICS:
                row[metric], row[f"{metric}_ci_lower"], row[f"{metric}_ci_upper"] = boot[metric]
            row["roc_auc_ci_method"] = "bootstrap"
            if len(classes) == 2 and len(y):
                auc, _, lo, hi = delong_auc(y == 1, p[:, 1], level)
                row["roc_auc_ci_lower"], row["roc_auc_ci_upper"], row["roc_auc_ci_method"] = lo, hi, "delong"
            rows.append(row)
            matrix = confusion_matrix(y, p.argmax(axis=1), len(classes)) if len(y) else \
                np.zeros((len(classes),) * 2, dtype=int)
            confusion += [{"target": result.target.name, "model": model, "set": set_name, "truth": classes[i],
                           "predicted": classes[j], "count": int(matrix[i, j])}
                          for i in range(len(classes)) for j in range(len(classes))]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS), pd.DataFrame(confusion)


def prediction_rows(result: TargetResult) -> pd.DataFrame:
    rows = []
    for model, proba in result.proba.items():
        for i, p in enumerate(result.patients):
            for c, name in enumerate(result.target.classes):
                rows.append({"target": result.target.name, "model": model, "patient": p, "set": result.sets[i],
                             "fold": result.folds[i], "truth": result.target.classes[result.y[i]], "class": name,
                             "probability": float(proba[i, c])})
    return pd.DataFrame(rows)


def fusion_vs_unimodal(metrics: pd.DataFrame, metric: str = "pr_auc", set_name: str = "cv") -> pd.DataFrame:
    """Per target: the best unimodal and the best fusion model by ``metric`` on ``set_name``
    and their difference (what the acceptance prints)."""
    rows = []
    m = metrics[metrics["set"] == set_name]
    for target, table in m.groupby("target", sort=False):
        uni = table[table["model"].isin(UNIMODAL)].dropna(subset=[metric])
        fus = table[table["model"].isin(FUSION)].dropna(subset=[metric])
        if uni.empty or fus.empty:
            continue
        u, f = uni.loc[uni[metric].idxmax()], fus.loc[fus[metric].idxmax()]
        rows.append({"target": target, "set": set_name, "metric": metric, "best_unimodal": u["model"],
                     "best_unimodal_value": float(u[metric]), "best_fusion": f["model"],
                     "best_fusion_value": float(f[metric]), "difference": float(f[metric] - u[metric]),
                     "image_value": float(table.loc[table["model"] == "image", metric].iloc[0])
                     if (table["model"] == "image").any() else math.nan})
    return pd.DataFrame(rows, columns=["target", "set", "metric", "best_unimodal", "best_unimodal_value",
                                       "best_fusion", "best_fusion_value", "difference", "image_value"])


# ----------------------------------------------------------------------------- the stage

TARGET_COLUMNS = ["target", "status", "reason", "classes", "cv_patients", "external_patients"]


def run(sheet: pd.DataFrame, feature_paths: Mapping[str, str], expression: pd.DataFrame, clinical: pd.DataFrame,
        clinical_path: str, splits: pd.DataFrame, cfg: Mapping, device: str = "cpu") -> dict:
    """Every target end to end. ``sheet``: sample, patient; ``expression``: patients x
    features (the prepared log values); ``splits``: patients.tsv (``split`` external =
    the external cohorts; a ``site`` column makes the folds site-disjoint). Returns the
    tables (folds, metrics, summary, predictions, confusion, targets, missing) and the
    attention weights per target."""
    targets = check_targets(cfg, clinical.columns, f"clinical table {clinical_path} (config key 'clinical')")
    splits = splits.assign(patient=splits["patient"].astype(str))
    in_sheet = set(sheet["patient"].astype(str))
    splits = splits[splits["patient"].isin(in_sheet)]
    labels = {t.name: target_labels(clinical, t) for t in targets}
    labelled = set().union(*(set(v.index) for v in labels.values())) & set(splits["patient"])
    patches = read_patches(list(sheet["sample"]), list(sheet["patient"].astype(str)), feature_paths, cfg)
    expression = expression.copy()
    expression.index = expression.index.astype(str)
    keep, missing = align_modalities(sorted(labelled), patches.patients, expression, cfg["missing_modality"])
    keep_set = set(keep)
    external_split = splits["split"] == "external"
    cv_patients = sorted(set(splits.loc[~external_split, "patient"]) & keep_set)
    external = sorted(set(splits.loc[external_split, "patient"]) & keep_set)
    groups = None
    if "site" in splits.columns:
        groups = dict(zip(splits["patient"], splits["site"].fillna("").astype(str)))
    folds = patient_folds(cv_patients, int(cfg["folds"]), int(cfg["seed"]), groups)
    log.info("fusion: %d cv patients in %d folds, %d external; %d expression features, %d patches of %d-d "
             "features per patient; targets %s; models %s", len(cv_patients), int(cfg["folds"]), len(external),
             expression.shape[1], patches.features.shape[1], patches.features.shape[2], [t.name for t in targets],
             list(cfg["models"]))
    out = {"metrics": [], "confusion": [], "predictions": [], "targets": [], "attention": {},
           "genes": list(expression.columns), "patches": patches}
    for target in targets:
        y = labels[target.name]
        counts = {s: {c: int(((y.reindex(ps).dropna()) == i).sum()) for i, c in enumerate(target.classes)}
                  for s, ps in (("cv", cv_patients), ("external", external))}
        base = {"target": target.name, "classes": ",".join(target.classes),
                **{f"{s}_patients": ",".join(f"{c}:{v}" for c, v in counts[s].items()) for s in counts}}
        try:
            result = run_target(target, y, folds, external, patches, expression, cfg, device)
        except TargetNotTrainable as error:
            log.warning("%s: skipped", error)
            out["targets"].append({**base, "status": "skipped", "reason": str(error)})
            continue
        out["targets"].append({**base, "status": "trained", "reason": ""})
        metrics, confusion = evaluate(result, cfg)
        out["metrics"].append(metrics)
        out["confusion"].append(confusion)
        out["predictions"].append(prediction_rows(result))
        if result.attention is not None:
            out["attention"][target.name] = result
    empty = {"metrics": METRIC_COLUMNS, "confusion": ["target", "model", "set", "truth", "predicted", "count"],
             "predictions": ["target", "model", "patient", "set", "fold", "truth", "class", "probability"]}
    for key, columns in empty.items():
        out[key] = pd.concat(out[key], ignore_index=True) if out[key] else pd.DataFrame(columns=columns)
    out["targets"] = pd.DataFrame(out["targets"], columns=TARGET_COLUMNS)
    out["folds"] = folds
    out["missing"] = missing
    out["summary"] = pd.concat([fusion_vs_unimodal(out["metrics"], metric, s) for metric in ("f1", "pr_auc")
                                for s in SETS], ignore_index=True)
    return out


def attention_store(out: Mapping, cfg: Mapping, code_version: str):
    """The :class:`emo.stores.fusion.FusionAttention` of a :func:`run` result."""
    from ..provenance import base_attrs
    from ..stores.fusion import FusionAttention, TargetAttention

    patches: PatchSet = out["patches"]
    index = {p: i for i, p in enumerate(patches.patients)}
    targets = {}
    for name, result in out["attention"].items():
        rows = np.array([index[p] for p in result.patients], dtype=np.int64)
        targets[name] = TargetAttention(name, list(result.target.classes), list(result.patients), list(result.sets),
                                        result.attention.astype(np.float16), patches.samples[rows],
                                        patches.coords[rows])
    return FusionAttention(list(out["genes"]), targets, base_attrs(code_version, cfg))
