"""Region annotations (GeoJSON as QuPath exports them) and tile labels from them.

Accepted file shapes (QuPath "Export objects as GeoJSON"): a ``FeatureCollection``
(``{"type": "FeatureCollection", "features": [...]}``), a plain JSON list of
``Feature`` objects (QuPath's default export), or one ``Feature``. Geometries are
``Polygon`` (outer ring, then holes) or ``MultiPolygon``, in level-0 pixel coordinates.
The class is ``properties.classification.name`` (QuPath >= 0.2; a plain string
``properties.classification`` is accepted too). Every other geometry type, a feature
without a class, a class not in ``tumour_regions.classes`` and a vertex outside the
slide's level-0 extent are refused, naming the file, the feature and what to do.

Tile labels: a tile takes the class whose polygons cover at least ``min_overlap`` of
it. Cover is the fraction of an ``grid x grid`` lattice of points at the centres of
the tile's sub-squares that lie inside the class's region (inside an outer ring and
outside its holes); ``grid = 1`` is the tile-centre rule. When two classes overlap a
point, each counts it; the class with the larger cover wins (ties: the order of
``classes``). Tiles whose best cover is below ``min_overlap`` are unlabelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputTableError

UNLABELLED = -1


@dataclass(frozen=True)
class Region:
    """One polygon with its holes, in level-0 px, and its class."""

    name: str                       # class name
    outer: np.ndarray               # (n, 2) x, y
    holes: tuple[np.ndarray, ...]   # each (m, 2)
    feature: int                    # index of the feature in the file (0-based)


def _ring(coords, where: str) -> np.ndarray:
    try:
        ring = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputTableError(f"{where}: a ring is not a list of [x, y] numbers") from None
    if ring.ndim != 2 or ring.shape[1] < 2 or ring.shape[0] < 3:
        raise InputTableError(f"{where}: a ring needs at least 3 [x, y] vertices, got shape {ring.shape}")
    return ring[:, :2]


def _features(data, path: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        return list(data.get("features") or [])
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    raise InputTableError(f"annotation file {path}: expected a GeoJSON FeatureCollection, a list of Features or "
                          "one Feature (QuPath: File > Export objects as GeoJSON)")


def _class_name(feature: dict, where: str) -> str:
    props = feature.get("properties") or {}
    cls = props.get("classification")
    if isinstance(cls, dict):
        cls = cls.get("name")
    if not isinstance(cls, str) or not cls:
        raise InputTableError(f"{where} has no class (properties.classification.name); classify it in QuPath "
                              "or delete it from the file")
    return cls


def read_annotations(path: str | Path, classes: Sequence[str], width: int | None = None,
                     height: int | None = None, sample: str | None = None) -> list[Region]:
    """The regions of one annotation file; ``width``/``height`` (level-0 px), when given,
    bound the vertices (1 px of slack for QuPath's rounding)."""
    path = str(path)
    label = f"slide {sample!r} " if sample else ""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise InputTableError(f"annotation file {path} ({label.strip() or 'no slide'}): not valid JSON ({error})") from None
    known = list(classes)
    regions: list[Region] = []
    for index, feature in enumerate(_features(data, path)):
        where = f"annotation file {path} ({label}feature {index})"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise InputTableError(f"{where}: not a GeoJSON Feature")
        name = _class_name(feature, where)
        if name not in known:
            raise InputTableError(f"{where}: class {name!r} is not in tumour_regions.classes {known}; add it there "
                                  "(and to tumour_regions.tumour_classes if it is tumour) or reclassify it")
        geometry = feature.get("geometry") or {}
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [geometry.get("coordinates") or []]
        elif kind == "MultiPolygon":
            polygons = list(geometry.get("coordinates") or [])
        else:
            raise InputTableError(f"{where}: geometry type {kind!r} has no area; only Polygon and MultiPolygon "
                                  "annotations label tiles (delete points and lines from the export)")
        for polygon in polygons:
            if not polygon:
                raise InputTableError(f"{where}: an empty polygon")
            rings = [_ring(r, where) for r in polygon]
            for ring in rings:
                _check_extent(ring, width, height, where)
            regions.append(Region(name, rings[0], tuple(rings[1:]), index))
    return regions


def _check_extent(ring: np.ndarray, width: int | None, height: int | None, where: str) -> None:
    if width is None or height is None:
        return
    lo, hi = ring.min(0), ring.max(0)
    if lo[0] < -1 or lo[1] < -1 or hi[0] > width + 1 or hi[1] > height + 1:
        raise InputTableError(
            f"{where}: vertices span x {lo[0]:.0f}..{hi[0]:.0f}, y {lo[1]:.0f}..{hi[1]:.0f}, outside the slide's "
            f"level-0 extent {width} x {height} px; the file belongs to another slide or was exported at a "
            "downsampled level (QuPath exports level-0 pixels)")


def tile_points(coords: np.ndarray, tile_size: float, grid: int) -> np.ndarray:
    """(N * grid^2, 2) sample points: centres of the grid x grid sub-squares of each tile
    (top-left ``coords``, side ``tile_size`` level-0 px), tile-major."""
    offsets = (np.arange(grid) + 0.5) * (float(tile_size) / grid)
    ox, oy = np.meshgrid(offsets, offsets)
    sub = np.stack([ox.ravel(), oy.ravel()], axis=1)
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    return (coords[:, None, :] + sub[None]).reshape(-1, 2)


def inside(region: Region, points: np.ndarray) -> np.ndarray:
    """Points inside the outer ring and outside every hole."""
    from matplotlib.path import Path as MplPath  # lazy: prediction jobs import this package too

    hit = MplPath(region.outer).contains_points(points)
    for hole in region.holes:
        hit &= ~MplPath(hole).contains_points(points)
    return hit


def class_cover(regions: Sequence[Region], classes: Sequence[str], coords: np.ndarray, tile_size: float,
                grid: int) -> np.ndarray:
    """(N, len(classes)) fraction of each tile covered by each class."""
    n = len(coords)
    points = tile_points(coords, tile_size, grid)
    cover = np.zeros((n, len(classes)))
    for k, name in enumerate(classes):
        hit = np.zeros(len(points), dtype=bool)
        for region in regions:
            if region.name == name:
                hit |= inside(region, points)
        cover[:, k] = hit.reshape(n, grid * grid).mean(1) if n else 0.0
    return cover


def tile_labels(regions: Sequence[Region], classes: Sequence[str], coords: np.ndarray, tile_size: float,
                grid: int, min_overlap: float) -> np.ndarray:
    """(N,) index into ``classes`` of each tile's class, or ``UNLABELLED`` (-1)."""
    cover = class_cover(regions, classes, coords, tile_size, grid)
    if cover.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argmax(cover, axis=1)              # first maximum = order of ``classes``
    labels = best.astype(np.int64)
    labels[cover[np.arange(len(best)), best] < float(min_overlap) - 1e-12] = UNLABELLED
    return labels


def tumour_labels(labels: np.ndarray, classes: Sequence[str], tumour_classes: Sequence[str]) -> np.ndarray:
    """Class indices -> 1 tumour / 0 normal / -1 unlabelled."""
    is_tumour = np.array([c in set(tumour_classes) for c in classes], dtype=np.int64)
    out = np.full(len(labels), UNLABELLED, dtype=np.int64)
    known = labels >= 0
    out[known] = is_tumour[labels[known]]
    return out


def annotated_samples(folder: str | Path, sample_names: Sequence[str]) -> list[str]:
    """Samples with a ``{sample}.geojson`` in ``folder``; a file naming no sample of the
    sheet is refused (a typo would silently drop its annotations)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputTableError(f"config key 'tumour_regions.annotations': folder {folder} does not exist; give the "
                              "folder of the {sample}.geojson annotation files")
    files = sorted(folder.glob("*.geojson"))
    known = set(sample_names)
    unknown = [f.name for f in files if f.stem not in known]
    if unknown:
        raise InputTableError(
            f"annotation file(s) {', '.join(unknown[:5])} in {folder} (config key 'tumour_regions.annotations') "
            "name no sample of the sample sheet; name each file {sample}.geojson after its slide's sample, "
            "or move it out of the folder")
    return [f.stem for f in files]


def check_tumour_classes(classes: Sequence[str], tumour_classes: Sequence[str]) -> None:
    from ..errors import ConfigError

    missing = [c for c in tumour_classes if c not in classes]
    if missing:
        raise ConfigError(f"config key 'tumour_regions.tumour_classes': {missing} are not in "
                          f"tumour_regions.classes {list(classes)}; add them there")
    if set(tumour_classes) == set(classes):
        raise ConfigError("config key 'tumour_regions.tumour_classes' lists every class of tumour_regions.classes; "
                          "the classifier needs at least one normal-tissue class")
