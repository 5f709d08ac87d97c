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

Modules: :mod:`.splits` (patient splits, labels, slide groups), :mod:`.model` (head,
training loop, prediction), :mod:`.metrics` (slide scores, ensemble, AUCs) and
:mod:`.run` (one trait end to end, with its outputs); their public names are
re-exported here.
"""

from __future__ import annotations

from .metrics import delong_auc, evaluation_rows, majority_vote, select_ensemble, slide_score
from .model import HeadConfig, RoundResult, build_head, predict_probabilities, train_round
from .run import read_features, run_trait
from .splits import DEVELOPMENT, TEST, TRAIN, VALIDATION, percentile_labels, slide_groups, split_patients

__all__ = [
    "DEVELOPMENT", "TEST", "TRAIN", "VALIDATION", "HeadConfig", "RoundResult", "build_head", "delong_auc",
    "evaluation_rows", "majority_vote", "percentile_labels", "predict_probabilities", "read_features",
    "run_trait", "select_ensemble", "slide_groups", "slide_score", "split_patients", "train_round",
]
