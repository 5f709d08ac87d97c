"""The tumour-regions stores (docs/data_contracts.md, "Tumour regions"):

- ``results/tumour_regions/{encoder}/classifier.h5`` (:class:`TumourClassifier`):
  ``/coef`` (D,), ``/feature_mean`` (D,), ``/feature_sd`` (D,) float64, ``/samples``
  (the annotated slides it was fitted on); attrs ``intercept``, ``threshold``,
  ``cv_auc``, ``n_tumour``, ``n_normal``, ``classes``/``tumour_classes`` (JSON) and
  provenance; with ``tumour_regions.composition`` a group ``/composition`` (``coef`` (K, D),
  ``intercept`` (K,), ``feature_mean``, ``feature_sd``, ``classes``: the K modelled classes).
- ``results/tumour_regions/{encoder}/tiles.h5`` (:class:`TumourTiles`): per slide
  ``/slides/{sample}/coords`` int64 (N, 2) (the feature store's), ``/slides/{sample}/probability``
  float32 (N,), with ``tumour_regions.composition`` also ``/slides/{sample}/composition``
  float32 (N, K); slide-group attrs ``patch_size_level0``, ``tile_um``; root attrs
  ``threshold``, ``composition_classes`` (JSON, with composition) and provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from ..io import atomic_path
from ._h5 import ItemAccess, read_attrs, read_strs, write_attrs, write_strs

CLASSIFIER_ARRAYS = ("coef", "feature_mean", "feature_sd")


@dataclass(eq=False)
class TumourClassifier(ItemAccess):
    coef: np.ndarray            # /coef (D,) on standardised features
    intercept: float            # attr intercept
    feature_mean: np.ndarray    # /feature_mean (D,)
    feature_sd: np.ndarray      # /feature_sd (D,)
    samples: list[str]          # /samples
    attrs: dict = field(default_factory=dict)
    composition: dict | None = None  # /composition: coef (K, D), intercept (K,), feature_mean, feature_sd, classes


def write_classifier_store(path: str | Path, model: Mapping, attrs: Mapping) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for key in CLASSIFIER_ARRAYS:
                h5.create_dataset(key, data=np.asarray(model[key], dtype=np.float64))
            write_strs(h5, "samples", model["samples"])
            write_attrs(h5, {"intercept": float(model["intercept"]), **attrs})
            composition = model.get("composition") if isinstance(model, Mapping) else model.composition
            if composition is not None:
                group = h5.create_group("composition")
                for key in ("coef", "intercept") + CLASSIFIER_ARRAYS[1:]:
                    group.create_dataset(key, data=np.asarray(composition[key], dtype=np.float64))
                write_strs(group, "classes", composition["classes"])


def read_classifier_store(path: str | Path) -> TumourClassifier:
    with h5py.File(path, "r") as h5:
        attrs = read_attrs(h5)
        composition = None
        if "composition" in h5:
            group = h5["composition"]
            composition = {key: group[key][:] for key in ("coef", "intercept") + CLASSIFIER_ARRAYS[1:]}
            composition["classes"] = read_strs(group["classes"])
        return TumourClassifier(intercept=float(attrs["intercept"]), samples=read_strs(h5["samples"]), attrs=attrs,
                                composition=composition, **{key: h5[key][:] for key in CLASSIFIER_ARRAYS})


@dataclass(eq=False)
class SlideTumour:
    coords: np.ndarray          # (N, 2) int64 level-0 x, y (top-left)
    probability: np.ndarray     # (N,) float32
    patch_size_level0: float
    tile_um: float
    composition: np.ndarray | None = None  # (N, K) float32 class probabilities (tumour_regions.composition)


@dataclass(eq=False)
class TumourTiles:
    slides: dict[str, SlideTumour]
    attrs: dict = field(default_factory=dict)


def write_tumour_tiles(path: str | Path, slides: Mapping[str, SlideTumour], attrs: Mapping) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            group = h5.create_group("slides")
            for sample in sorted(slides):
                slide = slides[sample]
                g = group.create_group(sample)
                g.create_dataset("coords", data=np.asarray(slide.coords, dtype=np.int64).reshape(-1, 2))
                g.create_dataset("probability", data=np.asarray(slide.probability, dtype=np.float32))
                if slide.composition is not None:
                    g.create_dataset("composition", data=np.asarray(slide.composition, dtype=np.float32))
                write_attrs(g, {"patch_size_level0": float(slide.patch_size_level0), "tile_um": float(slide.tile_um)})
            write_attrs(h5, attrs)


def read_tumour_tiles(path: str | Path, samples=None) -> TumourTiles:
    with h5py.File(path, "r") as h5:
        names = sorted(h5["slides"]) if samples is None else list(samples)
        slides = {}
        for sample in names:
            g = h5["slides"][sample]
            slides[sample] = SlideTumour(g["coords"][:], g["probability"][:], float(g.attrs["patch_size_level0"]),
                                         float(g.attrs["tile_um"]),
                                         g["composition"][:] if "composition" in g else None)
        return TumourTiles(slides, read_attrs(h5))


__all__ = ["TumourClassifier", "write_classifier_store", "read_classifier_store", "SlideTumour", "TumourTiles",
           "write_tumour_tiles", "read_tumour_tiles"]
