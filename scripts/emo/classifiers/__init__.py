"""The pipeline's classifiers on frozen features, shared by the clinical-label stage
(:mod:`.clinical`, Ektefaie et al. 2021), the heterogeneity stage (its DeLong AUC) and
image+expression fusion.

* :mod:`.model` — :class:`ClassifierConfig`, :func:`fit` (softmax head on a per-tile or
  per-patient feature matrix, early stopping on group-level loss), :class:`FittedClassifier`
  (``predict_proba``), :func:`group_mean` (patient score = mean of its rows' probabilities).
* :mod:`.folds` — :func:`patient_folds`: patient- and optionally site-disjoint k folds.
* :mod:`.metrics` — DeLong AUC and CI, one-vs-rest AUCs, top-k accuracy with Wilson CI,
  confusion matrix, ROC points; F1, average precision (PR-AUC), rank AUC and their
  bootstrap CIs, vectorised over resamples.
* :mod:`.clinical` — the clinical labels end to end.
* :mod:`.fusion` (with :mod:`.fusion_net`, :mod:`.fusion_figures`) — image + expression
  subtype classifiers (paper 004): unimodal, concatenation, late and cross-attention
  fusion on shared patient folds; F1 / PR-AUC / ROC-AUC with CIs.
"""

from __future__ import annotations

from .folds import patient_folds
from .metrics import (accuracy_row, binary_rows, confusion_matrix, delong_auc, one_vs_rest_auc, roc_points,
                      top_k_accuracy, wilson_interval)
from .model import ClassifierConfig, FittedClassifier, build_head, fit, group_mean

__all__ = ["ClassifierConfig", "FittedClassifier", "accuracy_row", "binary_rows", "build_head",
           "confusion_matrix", "delong_auc", "fit", "group_mean", "one_vs_rest_auc", "patient_folds",
           "roc_points", "top_k_accuracy", "wilson_interval"]
