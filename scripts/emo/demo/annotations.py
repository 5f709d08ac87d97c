"""Region annotations of some demo slides, as QuPath exports them (GeoJSON, level-0
pixels), drawn from the planted compartment map (truth npz), and the planted tumour
share of any tile (the truth the tumour classifier's AUC is measured against).

Each compartment's cells of the truth grid become filled contours (contourpy, the
iso-line 0.5 of the compartment's indicator at the cell centres, so boundaries run
between cells, with holes where other compartments lie inside). Half of the files are
FeatureCollections, half plain Feature lists (QuPath's two export shapes); tumour
regions are one Polygon feature each, other compartments one MultiPolygon per class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .design import COMPARTMENTS, LABELS, rng_for, sample_names

# QuPath's built-in class names of the demo compartments
QUPATH_CLASSES = {"tumour": "Tumor", "stroma": "Stroma", "lymphocytes": "Immune cells", "fat": "Fat",
                  "necrosis": "Necrosis"}
_COLOURS = {"tumour": [200, 0, 0], "stroma": [150, 200, 150], "lymphocytes": [160, 90, 160], "fat": [250, 250, 180],
            "necrosis": [50, 50, 50]}


def annotated_samples(cfg: Mapping[str, Any]) -> list[str]:
    """The demo slides with annotation files: a seeded ``annotated_fraction`` of all slides
    (at least 2, when the fraction is > 0)."""
    names = sample_names(cfg)
    fraction = float(cfg["annotated_fraction"])
    if fraction <= 0 or not names:
        return []
    order = rng_for(cfg["seed"], "annotated_slides").permutation(len(names))
    n = min(len(names), max(2, int(round(fraction * len(names)))))
    return sorted(names[i] for i in order[:n])


def _rings(mask: np.ndarray, cell_px: float) -> list[list[np.ndarray]]:
    """Filled contours of a boolean grid: a list of polygons, each [outer, holes...] in
    level-0 px (cell (i, j) centred at ((j + 0.5) c, (i + 0.5) c))."""
    import contourpy

    padded = np.pad(mask.astype(np.float64), 1)
    gen = contourpy.contour_generator(z=padded, fill_type=contourpy.FillType.OuterOffset, name="serial")
    points, offsets = gen.filled(0.5, 1.5)
    polygons = []
    for pts, offs in zip(points, offsets):
        xy = (pts - 1 + 0.5) * cell_px  # grid index -> level-0 px (padding removed)
        polygons.append([np.round(xy[offs[k]:offs[k + 1]], 1) for k in range(len(offs) - 1)])
    return polygons


def geojson_for(truth: Mapping[str, np.ndarray], as_list: bool) -> Any:
    """The annotation file content of one slide's truth arrays."""
    labels = np.asarray(truth["labels"])
    cell_px = float(truth["um_per_px"]) / float(truth["mpp"])
    features = []
    for name in COMPARTMENTS:
        polygons = _rings(labels == LABELS[name], cell_px)
        if not polygons:
            continue
        cls = {"name": QUPATH_CLASSES[name], "color": _COLOURS[name]}
        coords = [[ring.tolist() for ring in polygon] for polygon in polygons]
        if name == "tumour":
            geometries = [{"type": "Polygon", "coordinates": c} for c in coords]
        else:
            geometries = [{"type": "MultiPolygon", "coordinates": coords}]
        for geometry in geometries:
            features.append({"type": "Feature", "id": f"{name}-{len(features)}", "geometry": geometry,
                             "properties": {"objectType": "annotation", "classification": cls}})
    return features if as_list else {"type": "FeatureCollection", "features": features}


def write_annotation(truth_path: str | Path, out_path: str | Path, as_list: bool) -> None:
    from ..io import atomic_write_text

    with np.load(truth_path, allow_pickle=False) as data:
        truth = {k: data[k] for k in data.files}
    atomic_write_text(out_path, json.dumps(geojson_for(truth, as_list), separators=(",", ":")) + "\n")


def tile_tumour_fraction(truth: Mapping[str, np.ndarray], coords: np.ndarray, tile_size: float) -> np.ndarray:
    """Planted tumour share of the tissue of each tile (top-left ``coords``, side
    ``tile_size`` level-0 px), from the truth grid; NaN for a tile without tissue cells."""
    return tile_compartment_fraction(truth, coords, tile_size, "tumour")


def tile_compartment_fraction(truth: Mapping[str, np.ndarray], coords: np.ndarray, tile_size: float,
                              compartment: str) -> np.ndarray:
    """Planted share of ``compartment`` in the tissue of each tile (as tile_tumour_fraction)."""
    labels = np.asarray(truth["labels"])
    cell_px = float(truth["um_per_px"]) / float(truth["mpp"])
    tumour = np.zeros((labels.shape[0] + 1, labels.shape[1] + 1))
    tissue = np.zeros_like(tumour)
    tumour[1:, 1:] = (labels == LABELS[compartment]).cumsum(0).cumsum(1)
    tissue[1:, 1:] = (labels > 0).cumsum(0).cumsum(1)
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    x0 = np.clip(np.round(coords[:, 0] / cell_px).astype(int), 0, labels.shape[1])
    y0 = np.clip(np.round(coords[:, 1] / cell_px).astype(int), 0, labels.shape[0])
    x1 = np.clip(np.round((coords[:, 0] + tile_size) / cell_px).astype(int), 0, labels.shape[1])
    y1 = np.clip(np.round((coords[:, 1] + tile_size) / cell_px).astype(int), 0, labels.shape[0])

    def box(a):
        return a[y1, x1] - a[y0, x1] - a[y1, x0] + a[y0, x0]

    n_tissue = box(tissue)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_tissue > 0, box(tumour) / n_tissue, np.nan)
