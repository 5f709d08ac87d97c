"""Tumour regions (docs/tumour_regions.md): a tumour/normal tile classifier trained from
region annotations of some slides (:mod:`.geojson`, :mod:`.classifier`) and applied
to every slide; per-slide tumour area and the per-patient choice of the slide with the
largest tumour area (EMO, paper 001)."""

from __future__ import annotations

import json
import logging
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import InputTableError
from ..stores.features import open_feature_store
from ..stores.tumour_regions import SlideTumour
from . import classifier, geojson

log = logging.getLogger("emo")

SLIDE_COLUMNS = ["sample", "patient", "n_tiles", "n_tumour_tiles", "tumour_fraction", "tumour_area_mm2",
                 "mean_probability", "selected"]


def settings(section: Mapping | None) -> dict:
    from ..settings import section as settings_section

    values = settings_section("tumour_regions", section)
    geojson.check_tumour_classes(values["classes"], values["tumour_classes"])
    return values


def slide_labels(annotation_path: str, feature_path: str, level0_size: tuple[int, int], sample: str,
                 cfg: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(features, class labels: index into ``classes`` or -1) of one annotated slide's tiles."""
    regions = geojson.read_annotations(annotation_path, cfg["classes"], *level0_size, sample=sample)
    with open_feature_store(feature_path) as store:
        features = store.features()
        coords = store.coords()
        size = float(store.coords_attrs["patch_size_level0"])
    labels = geojson.tile_labels(regions, cfg["classes"], coords, size, int(cfg["overlap_grid"]),
                                 float(cfg["min_overlap"]))
    return features, labels


def train(annotation_paths: Mapping[str, str], feature_paths: Mapping[str, str],
          level0_sizes: Mapping[str, tuple[int, int]], cfg: Mapping) -> dict:
    """Fit the classifier on the annotated slides (every mapping keyed by sample)."""
    if not annotation_paths:
        raise InputTableError("the tumour classifier has no annotated slide: put {sample}.geojson files in the "
                              "folder of config key 'tumour_regions.annotations'")
    slides, classes = {}, {}
    for sample in sorted(annotation_paths):
        features, classes[sample] = slide_labels(annotation_paths[sample], feature_paths[sample],
                                                 level0_sizes[sample], sample, cfg)
        labels = geojson.tumour_labels(classes[sample], cfg["classes"], cfg["tumour_classes"])
        slides[sample] = (features, labels)
        log.info("%s: %d tiles, %d tumour, %d normal, %d unlabelled", sample, len(labels), int((labels == 1).sum()),
                 int((labels == 0).sum()), int((labels < 0).sum()))
    fitted = classifier.fit(slides, cfg)
    if cfg["composition"]:
        fitted["composition"] = classifier.fit_composition(
            {s: (slides[s][0], classes[s]) for s in slides}, list(cfg["classes"]), cfg)
        log.info("composition classifier over %s", fitted["composition"]["n_tiles"])
    return fitted


def classifier_attrs(fitted: Mapping, cfg: Mapping) -> dict:
    return {"threshold": float(cfg["threshold"]), "cv_auc": float(fitted["cv_auc"]),
            "n_tumour": int(fitted["n_tumour"]), "n_normal": int(fitted["n_normal"]),
            "classes": json.dumps(list(cfg["classes"])), "tumour_classes": json.dumps(list(cfg["tumour_classes"]))}


def apply(model: Mapping, feature_paths: Mapping[str, str], composition: Mapping | None = None
          ) -> dict[str, SlideTumour]:
    """Tumour probability (and, with a composition model, class probabilities) of every
    tile of each slide."""
    out = {}
    for sample in sorted(feature_paths):
        with open_feature_store(feature_paths[sample]) as store:
            features = store.features()
            coords = store.coords()
            size = float(store.coords_attrs["patch_size_level0"])
            tile_um = float(store.attrs["tile_um"])
        out[sample] = SlideTumour(coords, classifier.probability(model, features), size, tile_um,
                                  None if composition is None
                                  else classifier.composition_probabilities(composition, features))
    return out


def fraction_column(name: str) -> str:
    """composition.tsv column of a class: ``fraction_`` + the class name lower-cased, runs
    of other characters than letters and digits as ``_`` (``Immune cells`` -> ``fraction_immune_cells``)."""
    import re

    return "fraction_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def composition_table(slides: Mapping[str, SlideTumour], sample_patient: Mapping[str, str],
                      classes: list[str]) -> pd.DataFrame:
    """One row per slide: ``n_tiles``, :func:`fraction_column` of each class (share of
    tiles whose most probable class it is) and ``composition_entropy`` (Shannon entropy of those fractions
    in units of log K, K = the modelled classes)."""
    rows = []
    for sample in sorted(slides):
        probs = slides[sample].composition
        n = 0 if probs is None else len(probs)
        fractions = (np.bincount(probs.argmax(1), minlength=len(classes)) / n) if n else np.zeros(len(classes))
        row = {"sample": sample, "patient": sample_patient[sample], "n_tiles": n}
        row.update({fraction_column(c): float(f) for c, f in zip(classes, fractions)})
        row["composition_entropy"] = classifier.composition_entropy(fractions)
        rows.append(row)
    return pd.DataFrame(rows, columns=["sample", "patient", "n_tiles", *[fraction_column(c) for c in classes],
                                       "composition_entropy"])


def slide_table(slides: Mapping[str, SlideTumour], sample_patient: Mapping[str, str], threshold: float) -> pd.DataFrame:
    """One row per slide (SLIDE_COLUMNS); ``selected`` marks each patient's slide with the
    largest predicted tumour area (ties: the first sample name)."""
    rows = []
    for sample in sorted(slides):
        slide = slides[sample]
        n = len(slide.probability)
        tumour = int((slide.probability >= threshold).sum())
        rows.append({"sample": sample, "patient": sample_patient[sample], "n_tiles": n, "n_tumour_tiles": tumour,
                     "tumour_fraction": tumour / n if n else 0.0,
                     "tumour_area_mm2": tumour * (slide.tile_um / 1000.0) ** 2,
                     "mean_probability": float(slide.probability.mean()) if n else 0.0})
    table = pd.DataFrame(rows, columns=SLIDE_COLUMNS[:-1])
    chosen = largest_tumour_slides(table)
    table["selected"] = table["sample"].isin(chosen)
    return table[SLIDE_COLUMNS]


def largest_tumour_slides(table: pd.DataFrame) -> list[str]:
    """Per patient, the sample with the largest tumour_area_mm2 (ties: first by name)."""
    ordered = table.sort_values(["patient", "tumour_area_mm2", "sample"], ascending=[True, False, True],
                                kind="mergesort")
    return sorted(ordered.drop_duplicates("patient", keep="first")["sample"].astype(str))


def job_selection(sm) -> tuple | None:
    """(tumour classifier, threshold) for a Snakemake job with input ``tumour_model`` and
    param ``tumour_threshold`` (config gene_models.tile_selection: tumour), else None."""
    inputs = dict(sm.input.items())
    if "tumour_model" not in inputs:
        return None
    from ..stores.tumour_regions import read_classifier_store

    return read_classifier_store(inputs["tumour_model"]), float(dict(sm.params.items())["tumour_threshold"])


def selected_rows(model: Mapping | None, features: np.ndarray, threshold: float, sample: str,
                  what: str) -> np.ndarray:
    """Rows of a slide's tiles used under ``gene_models.tile_selection``: all tiles
    without a model; with one, the tumour tiles, or all tiles (with a warning) when the
    classifier calls none tumour."""
    n = features.shape[0]
    if model is None:
        return np.arange(n)
    rows = np.flatnonzero(classifier.probability(model, features) >= float(threshold))
    if rows.size == 0:
        log.warning("slide %s: no tile reaches tumour probability %.2f; %s uses all %d tiles", sample, threshold,
                    what, n)
        return np.arange(n)
    return rows


__all__ = ["geojson", "classifier", "settings", "train", "apply", "slide_table", "composition_table", "largest_tumour_slides",
           "selected_rows", "job_selection", "classifier_attrs", "SLIDE_COLUMNS"]


