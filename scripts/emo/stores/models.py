"""The ridge-baseline store ``results/models/{encoder}/ridge.h5`` (docs/data_contracts.md,
"Models and predictions"): ``/genes``, ``/coef`` (G, D), ``/intercept``, ``/alpha``,
``/cv_mse``, ``/alphas``, ``/feature_mean``, ``/feature_sd`` (float64), ``/samples``.

The per-gene chunk models (``chunk_*.pt`` / ``chunk_*.npz``) are not HDF5; they stay
with :mod:`emo.gene_models` and :mod:`emo.predictions`.
:class:`RidgeStore` is also indexable by field name (``model["coef"]``), the form
:func:`emo.ridge.predict` and :func:`emo.ridge.train_baseline` use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from ..io import atomic_path
from ._h5 import ItemAccess, read_attrs, read_strs, write_attrs, write_strs

RIDGE_ARRAYS = ("coef", "intercept", "alpha", "cv_mse", "alphas", "feature_mean", "feature_sd")


@dataclass(eq=False)
class RidgeStore(ItemAccess):
    genes: list[str]            # /genes
    coef: np.ndarray            # /coef (G, D) float64, on standardised features
    intercept: np.ndarray       # /intercept (G,)
    alpha: np.ndarray           # /alpha (G,) chosen penalty
    cv_mse: np.ndarray          # /cv_mse (G,) inner-CV error at alpha
    alphas: np.ndarray          # /alphas: the penalty grid
    feature_mean: np.ndarray    # /feature_mean (D,)
    feature_sd: np.ndarray      # /feature_sd (D,)
    samples: list[str]          # /samples: the fitting slides
    attrs: dict = field(default_factory=dict)


def write_ridge_store(path: str | Path, model: Mapping, attrs: Mapping[str, str]) -> None:
    """``model``: :func:`emo.ridge.train_baseline`'s dict (or a RidgeStore); atomic."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            write_strs(h5, "genes", model["genes"])
            for key in RIDGE_ARRAYS:
                h5.create_dataset(key, data=np.asarray(model[key], dtype=np.float64))
            write_strs(h5, "samples", model["samples"])
            write_attrs(h5, attrs)


def read_ridge_store(path: str | Path) -> RidgeStore:
    with h5py.File(path, "r") as h5:
        return RidgeStore(genes=read_strs(h5["genes"]), samples=read_strs(h5["samples"]), attrs=read_attrs(h5),
                          **{key: h5[key][:] for key in RIDGE_ARRAYS})


__all__ = ["RIDGE_ARRAYS", "RidgeStore", "read_ridge_store", "write_ridge_store"]
