"""Transfer of HE2RNA's learnt representation to a small-data task (paper 003, "MSI
status": a classifier on the 256-d transcriptomic representation vs one on the raw
slide features). Here the task is a binary clinical status (config
slide_models.transfer), on the patients HE2RNA never saw (validation, test, external):
logistic regression with patient-level stratified cross-validation on (a) the slide
representation — the mean over the slide's bag of HE2RNA's last hidden layer, averaged
over the fold models as the paper averaged its fold inferences — and (b) the slide-mean
encoder features; ROC AUC per fold."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputTableError

TRANSFER_COLUMNS = ["input", "fold", "n_train", "n_test", "n_positive_test", "auc"]


def hidden_representation(model, bag: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Mean over the bag's tiles of HE2RNA's last hidden layer (the input of its output
    layer), eval mode: (layers[-1],)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(bag, dtype=np.float32))[None].to(device).transpose(1, 2)
    model.eval()
    with torch.no_grad():
        h = x
        for conv in model.convs[:-1]:
            h = torch.relu(conv(h))
    return h[0].mean(1).float().cpu().numpy().astype(np.float64)


def cv_auc(x: np.ndarray, y: np.ndarray, folds: int, seed: int, c: float) -> list[dict]:
    """Stratified k-fold logistic regression (standardised inputs, L2 penalty C): one
    row per fold with its test AUC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(splitter.split(x, y)):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        clf.fit(x[train], y[train])
        score = clf.predict_proba(x[test])[:, 1]
        rows.append({"fold": fold, "n_train": len(train), "n_test": len(test),
                     "n_positive_test": int(y[test].sum()), "auc": float(roc_auc_score(y[test], score))})
    return rows


def transfer_table(inputs: Mapping[str, np.ndarray], y: np.ndarray, folds: int, seed: int, c: float) -> pd.DataFrame:
    """``inputs``: name -> patients x dims (same patients, same order as ``y``). Rows per
    input and fold, then a fold -1 row with the mean AUC (same folds for every input)."""
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < folds:
        raise InputTableError(f"slide_models.transfer: {n_pos} positive and {n_neg} negative patients among the "
                              f"patients the slide models did not see; each of the {folds} folds needs both: lower "
                              "slide_models.transfer.folds or choose another target")
    rows = []
    for name, x in inputs.items():
        part = cv_auc(np.asarray(x, dtype=np.float64), y, folds, seed, c)
        rows += [{"input": name, **r} for r in part]
        rows.append({"input": name, "fold": -1, "n_train": int(np.mean([r["n_train"] for r in part])),
                     "n_test": len(y), "n_positive_test": n_pos, "auc": float(np.mean([r["auc"] for r in part]))})
    return pd.DataFrame(rows, columns=TRANSFER_COLUMNS)


def patient_matrix(values: Mapping[str, np.ndarray], sample_patient: Mapping[str, str],
                   patients: Sequence[str]) -> np.ndarray:
    """Patient rows (mean over their slides) in the order of ``patients``."""
    by_patient: dict[str, list[np.ndarray]] = {}
    for sample in sorted(values):
        by_patient.setdefault(sample_patient[sample], []).append(values[sample])
    return np.stack([np.mean(by_patient[p], axis=0) for p in patients])


def run_transfer(cfg: Mapping, slides, model_path: str, clinical, clinical_path: str, out: Mapping[str, str],
                 code_version: str, device: str) -> None:
    """Rule slide_model_transfer. ``slides``: SlideInput of every slide; ``clinical``:
    the clinical table (pipeline columns, emo.stats.inputs.read_clinical)."""
    from ..io import write_tsv
    from ..provenance import write_sidecar
    from .run import _read, inference_bag, load_fold_models

    t = cfg["transfer"]
    models, _, folds = load_fold_models(model_path, "he2rna", cfg, device)
    if t["target"] not in clinical.columns:
        raise InputTableError(f"slide_models.transfer.target is {t['target']!r}, which is not a column of the "
                              f"clinical table {clinical_path}; choose one of {', '.join(map(str, clinical.columns))}")
    status = clinical.set_index("patient")[t["target"]]
    unseen = [s for s in slides if s.patient not in folds and s.patient in status.index
              and pd.notna(status.loc[s.patient])]
    representation, mean_features = {}, {}
    for s in sorted(unseen, key=lambda s: s.sample):
        features, coords, _ = _read(s.features)
        bag = inference_bag("he2rna", cfg, features, coords, s.sample)
        representation[s.sample] = np.mean([hidden_representation(m, bag, device) for m in models], axis=0)
        mean_features[s.sample] = features.astype(np.float64).mean(0)
    sample_patient = {s.sample: s.patient for s in unseen}
    patients = sorted(set(sample_patient.values()))
    y = np.array([str(status.loc[p]) == str(t["positive"]) for p in patients], dtype=int)
    table = transfer_table({"he2rna_representation": patient_matrix(representation, sample_patient, patients),
                            "mean_features": patient_matrix(mean_features, sample_patient, patients)},
                           y, t["folds"], cfg["seed"], t["C"])
    table.insert(0, "target", t["target"])
    write_tsv(table, out["table"])
    write_sidecar(out["table"], code_version, dict(cfg), sorted(s.features for s in slides) + [model_path, clinical_path])
