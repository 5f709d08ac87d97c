"""Spatial validation inputs and ROI-level predictions (EMO "ST analysis", Fig. 4).

* ROI table, probe-count table and Ki67 table: reading and validation (errors name
  the file, row, column, slide and ROI).
* ROI geometry: rectangles or simple polygons in level-0 pixels or µm; the exact
  intersection area of an ROI with each square tile (Sutherland–Hodgman clipping of
  the ROI polygon against the tile square, shoelace area).
* ROI prediction of a gene = tile predictions averaged with weights equal to the
  tile's overlap area with the ROI.
* Probe processing: counts divided by the ROI's mean negative-probe count, log2;
  probes whose log2 values vary less than ``min_variance`` are dropped (listed).
  A multi-gene probe's prediction is the sum of its member genes' predictions.

The mixed models live in :mod:`emo.lme`; the pipeline glue in :func:`run_models`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, InputTableError

log = logging.getLogger("emo.spatial")

# PAM50 proliferation signature (11 genes; Nielsen et al. 2010), current HGNC symbols
# (CDCA1 -> NUF2, KNTC2 -> NDC80).
PROLIFERATION_GENES = ("BIRC5", "CCNB1", "CDC20", "NUF2", "CEP55", "NDC80", "MKI67",
                       "PTTG1", "RRM2", "TYMS", "UBE2C")
ROI_ID_COLUMNS = ("sample", "roi")
MIN_ROIS_SPEARMAN = 3

def spatial_settings(config_section: Mapping | None) -> dict:
    """The ``spatial`` config section with the schema's defaults filled in."""
    from .settings import section

    return section("spatial", config_section)


# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------

def polygon_area(points: np.ndarray) -> float:
    """Absolute area of a simple polygon (shoelace formula)."""
    pts = np.asarray(points, dtype=float)
    if len(pts) < 3:
        return 0.0
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_polygon_to_rect(points: np.ndarray, xmin: float, ymin: float, xmax: float,
                         ymax: float) -> np.ndarray:
    """Sutherland–Hodgman clipping of a polygon against an axis-aligned rectangle.

    The clip window is convex, so the result is exact for any simple subject polygon
    (concave subjects may gain zero-area bridge edges, which do not change the area).
    """
    pts = [tuple(p) for p in np.asarray(points, dtype=float)]

    def clip(pts, axis, bound, keep_greater):
        if not pts:
            return pts
        out = []

        def inside(p):
            return p[axis] >= bound if keep_greater else p[axis] <= bound

        def cross(p, q):
            t = (bound - p[axis]) / (q[axis] - p[axis])
            other = 1 - axis
            point = [0.0, 0.0]
            point[axis] = bound
            point[other] = p[other] + t * (q[other] - p[other])
            return tuple(point)

        prev = pts[-1]
        for cur in pts:
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
            prev = cur
        return out

    pts = clip(pts, 0, xmin, True)
    pts = clip(pts, 0, xmax, False)
    pts = clip(pts, 1, ymin, True)
    pts = clip(pts, 1, ymax, False)
    return np.asarray(pts, dtype=float).reshape(-1, 2)


def tile_overlap_areas(polygon: np.ndarray, coords: np.ndarray, tile_size: float) -> np.ndarray:
    """Exact overlap area (level-0 px²) of ``polygon`` with each tile square.

    ``coords`` are the tiles' top-left level-0 ``x, y``; tiles are squares of side
    ``tile_size``. Tiles outside the polygon's bounding box are skipped cheaply.
    """
    polygon = np.asarray(polygon, dtype=float)
    coords = np.asarray(coords, dtype=float).reshape(-1, 2)
    areas = np.zeros(len(coords), dtype=float)
    if len(coords) == 0:
        return areas
    pxmin, pymin = polygon.min(axis=0)
    pxmax, pymax = polygon.max(axis=0)
    candidates = np.flatnonzero((coords[:, 0] < pxmax) & (coords[:, 0] + tile_size > pxmin)
                                & (coords[:, 1] < pymax) & (coords[:, 1] + tile_size > pymin))
    is_rect = _is_axis_aligned_rect(polygon)
    for i in candidates:
        x0, y0 = coords[i]
        x1, y1 = x0 + tile_size, y0 + tile_size
        if is_rect:
            w = min(x1, pxmax) - max(x0, pxmin)
            h = min(y1, pymax) - max(y0, pymin)
            areas[i] = max(w, 0.0) * max(h, 0.0)
        else:
            areas[i] = polygon_area(clip_polygon_to_rect(polygon, x0, y0, x1, y1))
    return areas


def _is_axis_aligned_rect(polygon: np.ndarray) -> bool:
    if len(polygon) != 4:
        return False
    xs, ys = np.unique(polygon[:, 0]), np.unique(polygon[:, 1])
    if len(xs) != 2 or len(ys) != 2:
        return False
    corners = {(x, y) for x in xs for y in ys}
    return {tuple(p) for p in polygon} == corners


def weighted_roi_means(polygon: np.ndarray, coords: np.ndarray, tile_size: float,
                       values: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Area-weighted mean of tile ``values`` (N, S) over the ROI.

    Returns (means (S,), covered area in px², number of overlapping tiles); means are
    NaN when no tile overlaps.
    """
    areas = tile_overlap_areas(polygon, coords, tile_size)
    covered = float(areas.sum())
    n_tiles = int(np.count_nonzero(areas > 0))
    values = np.asarray(values, dtype=float)
    if covered <= 0:
        return np.full(values.shape[1], np.nan), 0.0, 0
    nz = areas > 0
    means = areas[nz] @ values[nz] / covered
    return means, covered, n_tiles


# ---------------------------------------------------------------------------
# input tables
# ---------------------------------------------------------------------------

def _read_tsv(path: str | Path, what: str, config_key: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config key 'spatial.{config_key}': {what} {path} does not exist; "
                          "point it at a TSV (see docs/data_contracts.md, 'Spatial transcriptomics')")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    table.columns = [c.strip() for c in table.columns]
    for column in table.columns:
        table[column] = table[column].str.strip()
    return table


def _check_ids(table: pd.DataFrame, path, samples: Iterable[str] | None) -> None:
    missing = [c for c in ROI_ID_COLUMNS if c not in table.columns]
    if missing:
        raise InputTableError(f"{path}: missing column(s) {', '.join(missing)}; "
                              "every spatial table needs 'sample' and 'roi'")
    if table.empty:
        raise InputTableError(f"{path}: no rows")
    for row_number, (sample, roi) in enumerate(zip(table["sample"], table["roi"]), start=1):
        if sample == "" or roi == "":
            raise InputTableError(f"{path}, row {row_number}: empty 'sample' or 'roi'")
    dup = table.duplicated(list(ROI_ID_COLUMNS))
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputTableError(f"{path}, row {i + 1}: ROI {table['roi'].iloc[i]!r} of slide "
                              f"{table['sample'].iloc[i]!r} appears more than once; (sample, roi) must be unique")
    if samples is not None:
        known = set(samples)
        unknown = sorted(set(table["sample"]) - known)
        if unknown:
            raise InputTableError(f"{path}: slide(s) {', '.join(unknown[:5])} are not in the sample sheet; "
                                  "add them to the sheet (they need tiles and predictions) or remove their rows")


def _float(value: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number):
        raise InputTableError(f"{where}: {value!r} is not a finite number")
    return number


def parse_polygon(text: str, where: str) -> np.ndarray:
    """``"x1 y1,x2 y2,..."`` -> (K, 2) array; at least 3 distinct vertices, non-zero area."""
    try:
        points = [tuple(float(v) for v in pair.split()) for pair in text.split(",") if pair.strip()]
    except ValueError:
        points = []
    if not points or any(len(p) != 2 for p in points) or not np.all(np.isfinite(points)):
        raise InputTableError(f"{where}: polygon {text!r} is not 'x1 y1,x2 y2,...' with numeric vertices")
    pts = np.asarray(points, dtype=float)
    if len(pts) > 3 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]  # closed ring written with the first vertex repeated
    if len(pts) < 3 or polygon_area(pts) <= 0:
        raise InputTableError(f"{where}: polygon needs at least 3 vertices enclosing a non-zero area")
    return pts


def load_rois(path: str | Path, samples: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and validate the ROI table.

    Returns one row per ROI (sorted by sample, roi) with ``sample``, ``roi``, ``shape``,
    ``units`` and ``vertices`` (K×2 array in the table's units).
    """
    table = _read_tsv(path, "ROI table", "rois")
    _check_ids(table, path, samples)
    for column in ("shape", "units"):
        if column not in table.columns:
            raise InputTableError(f"{path}: missing column '{column}' (rect/polygon; px/um)")
    rows = []
    for row_number, row in enumerate(table.to_dict("records"), start=1):
        where = f"ROI table {path}, row {row_number} (slide {row['sample']!r}, ROI {row['roi']!r})"
        shape, units = row["shape"].lower(), row["units"].lower()
        if units in ("µm", "micron", "microns"):
            units = "um"
        if units not in ("px", "um"):
            raise InputTableError(f"{where}, column 'units': {row['units']!r} is not 'px' (level-0 pixels) or 'um'")
        if shape == "rect":
            for column in ("x", "y", "width", "height"):
                if column not in table.columns:
                    raise InputTableError(f"{where}: rect ROIs need columns x, y, width, height")
            x, y = _float(row["x"], f"{where}, column 'x'"), _float(row["y"], f"{where}, column 'y'")
            w = _float(row["width"], f"{where}, column 'width'")
            h = _float(row["height"], f"{where}, column 'height'")
            if w <= 0 or h <= 0:
                raise InputTableError(f"{where}: width and height must be > 0")
            vertices = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=float)
        elif shape == "polygon":
            if "polygon" not in table.columns:
                raise InputTableError(f"{where}: polygon ROIs need a 'polygon' column ('x1 y1,x2 y2,...')")
            vertices = parse_polygon(row["polygon"], f"{where}, column 'polygon'")
        else:
            raise InputTableError(f"{where}, column 'shape': {row['shape']!r} is not 'rect' or 'polygon'")
        rows.append({"sample": row["sample"], "roi": row["roi"], "shape": shape, "units": units,
                     "vertices": vertices})
    return pd.DataFrame(rows).sort_values(list(ROI_ID_COLUMNS), kind="mergesort").reset_index(drop=True)


def roi_vertices_px(roi: Mapping, mpp: float) -> np.ndarray:
    """ROI vertices in level-0 pixels."""
    vertices = np.asarray(roi["vertices"], dtype=float)
    return vertices / mpp if roi["units"] == "um" else vertices


def check_roi_inside(sample: str, roi: str, vertices_px: np.ndarray, width: float, height: float) -> None:
    xmin, ymin = vertices_px.min(axis=0)
    xmax, ymax = vertices_px.max(axis=0)
    if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
        raise InputTableError(
            f"slide {sample!r}, ROI {roi!r}: the ROI spans x {xmin:.0f}..{xmax:.0f}, y {ymin:.0f}..{ymax:.0f} "
            f"level-0 px but the slide is {width:.0f} x {height:.0f} px; check that the ROI coordinates are "
            "level-0 pixels (units 'px') or µm (units 'um') of this slide, and the slide's mpp")


def load_numeric_table(path: str | Path, what: str, config_key: str,
                       samples: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a (sample, roi, numeric columns...) table; values must be finite and >= 0."""
    table = _read_tsv(path, what, config_key)
    _check_ids(table, path, samples)
    value_columns = [c for c in table.columns if c not in ROI_ID_COLUMNS]
    if not value_columns:
        raise InputTableError(f"{what} {path}: no value columns besides sample and roi")
    out = table[list(ROI_ID_COLUMNS)].copy()
    for column in value_columns:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float)) | (values.to_numpy(dtype=float) < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputTableError(f"{what} {path}, row {i + 1} (slide {table['sample'].iloc[i]!r}, ROI "
                                  f"{table['roi'].iloc[i]!r}), column {column!r}: {table[column].iloc[i]!r} is "
                                  "not a non-negative number")
        out[column] = values.astype(float)
    return out.sort_values(list(ROI_ID_COLUMNS), kind="mergesort").reset_index(drop=True)


def load_probe_counts(path, samples=None) -> pd.DataFrame:
    return load_numeric_table(path, "probe-count table", "probe_counts", samples)


def load_ki67(path, samples=None) -> pd.DataFrame:
    table = load_numeric_table(path, "Ki67 table", "ki67", samples)
    if "ki67" not in table.columns:
        raise InputTableError(f"Ki67 table {path}: needs a column 'ki67' (fraction or score per ROI)")
    return table[list(ROI_ID_COLUMNS) + ["ki67"]]


# ---------------------------------------------------------------------------
# probes
# ---------------------------------------------------------------------------

def probe_genes(probe: str, settings: Mapping) -> list[str]:
    """Genes whose predictions make up a probe's prediction (summed if several)."""
    multi = settings.get("multi_gene_probes") or {}
    if probe in multi:
        return list(multi[probe])
    mapping = settings.get("probe_gene_map") or {}
    return [mapping.get(probe, probe)]


def probe_columns(path: str | Path) -> list[str]:
    """Probe names in the header of a probe-count table (no validation)."""
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
    return [c.strip() for c in header if c.strip() not in ROI_ID_COLUMNS]


def required_genes(settings: Mapping, probes: Iterable[str] = ()) -> list[str]:
    """Genes the spatial stage needs in the tile predictions: the members of the
    configured multi-gene probes, the mapped genes, the given probes' genes and, if a
    Ki67 table is configured, the proliferation genes."""
    genes: set[str] = set()
    for members in (settings.get("multi_gene_probes") or {}).values():
        genes.update(members)
    genes.update((settings.get("probe_gene_map") or {}).values())
    for probe in probes:
        genes.update(probe_genes(probe, settings))
    if settings.get("ki67"):
        genes.update(settings.get("proliferation_genes") or PROLIFERATION_GENES)
    return sorted(genes)


def normalise_counts(counts: pd.DataFrame, negative_probes: Sequence[str],
                     pseudocount: float = 0.0) -> pd.DataFrame:
    """log2(count / mean of the ROI's negative-probe counts), per ROI.

    Returns (sample, roi, one column per non-negative probe). With ``pseudocount`` p
    the value is log2((count + p) / (mean_negative + p)).
    """
    if not negative_probes:
        raise ConfigError("config key 'spatial.negative_probes' is empty; list the negative-control probe "
                          "columns of the probe-count table (EMO used six)")
    missing = [p for p in negative_probes if p not in counts.columns]
    if missing:
        raise ConfigError(f"config key 'spatial.negative_probes': {', '.join(missing)} not columns of the "
                          f"probe-count table (columns: {', '.join(c for c in counts.columns[2:][:10])} ...)")
    probes = [c for c in counts.columns if c not in ROI_ID_COLUMNS and c not in negative_probes]
    if not probes:
        raise InputTableError("probe-count table has no target probes besides the negative probes")
    negative_mean = counts[list(negative_probes)].mean(axis=1).to_numpy() + pseudocount
    values = counts[probes].to_numpy(dtype=float) + pseudocount
    if np.any(negative_mean <= 0):
        i = int(np.flatnonzero(negative_mean <= 0)[0])
        raise InputTableError(f"slide {counts['sample'].iloc[i]!r}, ROI {counts['roi'].iloc[i]!r}: all negative "
                              "probes count 0, so counts cannot be normalised; set 'spatial.pseudocount' (e.g. 1) "
                              "or drop the ROI")
    if np.any(values <= 0):
        i, j = (int(a[0]) for a in np.nonzero(values <= 0))
        raise InputTableError(f"slide {counts['sample'].iloc[i]!r}, ROI {counts['roi'].iloc[i]!r}, probe "
                              f"{probes[j]!r}: count 0 has no log; set 'spatial.pseudocount' (e.g. 1)")
    out = counts[list(ROI_ID_COLUMNS)].copy()
    logs = np.log2(values / negative_mean[:, None])
    for j, probe in enumerate(probes):
        out[probe] = logs[:, j]
    return out


def variance_filter(normalised: pd.DataFrame, min_variance: float) -> tuple[list[str], pd.DataFrame]:
    """Probes kept (variance >= min_variance) and the dropped ones with their variance.

    Variance is the sample variance (ddof=1, as R's ``var``) over all ROIs.
    """
    probes = [c for c in normalised.columns if c not in ROI_ID_COLUMNS]
    variances = normalised[probes].var(axis=0, ddof=1)
    kept = [p for p in probes if variances[p] >= min_variance]
    dropped = pd.DataFrame({"probe": [p for p in probes if p not in kept],
                            "variance": [float(variances[p]) for p in probes if p not in kept]})
    dropped["reason"] = f"variance < {min_variance:g}"
    return kept, dropped


# ---------------------------------------------------------------------------
# per-slide ROI predictions (streams one slide)
# ---------------------------------------------------------------------------

@dataclass
class SlideInfo:
    sample: str
    mpp: float
    width: float
    height: float
    tile_size: float


def read_slide_info(sample: str, tile_store: str | Path, predictions: str | Path) -> SlideInfo:
    from .stores.predictions import open_prediction_store
    from .stores.tiles import read_tile_store_attrs

    attrs = read_tile_store_attrs(tile_store)
    mpp = float(attrs["mpp"])
    width, height = float(attrs["level0_width"]), float(attrs["level0_height"])
    with open_prediction_store(predictions) as pred:
        tile_size = float(pred.coords_attrs["patch_size_level0"])
    return SlideInfo(sample, mpp, width, height, tile_size)


def slide_roi_predictions(sample: str, rois: pd.DataFrame, tile_store: str | Path,
                          predictions: str | Path, genes: Iterable[str] | None = None) -> pd.DataFrame:
    """ROI predictions for one slide: sample, roi, area_px, coverage, n_tiles, one column per gene.

    ``rois``: rows of :func:`load_rois` for this slide. Raises if an ROI lies (partly)
    outside the slide. ``genes``: restrict to these tile genes (only their columns are
    read, so memory stays small when all genes have tile predictions).
    """
    from .stores.predictions import open_prediction_store

    info = read_slide_info(sample, tile_store, predictions)
    with open_prediction_store(predictions) as pred:
        coords = pred.coords()
        all_genes = pred.tile_genes
        shape = pred.tile_values_shape
        if shape != (len(coords), len(all_genes)):
            raise InputTableError(f"slide {sample!r}: {predictions} has /tiles/values of shape {shape} but "
                                  f"{len(coords)} coords and {len(all_genes)} genes; rerun the predictions rule")
        if genes is None:
            columns = list(range(len(all_genes)))
        else:
            wanted = set(genes)
            columns = [j for j, g in enumerate(all_genes) if g in wanted]
        genes = [all_genes[j] for j in columns]
        values = pred.tile_values(columns) if columns else np.zeros((len(coords), 0), np.float32)
    rows = []
    for roi in rois[rois["sample"] == sample].to_dict("records"):
        vertices = roi_vertices_px(roi, info.mpp)
        check_roi_inside(sample, roi["roi"], vertices, info.width, info.height)
        area = polygon_area(vertices)
        means, covered, n_tiles = weighted_roi_means(vertices, coords, info.tile_size, values)
        row = {"sample": sample, "roi": roi["roi"], "area_px": area, "coverage": covered / area,
               "n_tiles": n_tiles}
        row.update(dict(zip(genes, means)))
        rows.append(row)
    columns = ["sample", "roi", "area_px", "coverage", "n_tiles"] + genes
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------
# assembling the analysis tables
# ---------------------------------------------------------------------------

def probe_predictions(roi_preds: pd.DataFrame, probes: Sequence[str], settings: Mapping
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-ROI predictions of each probe (sum of member genes) and the probes skipped
    because some member gene has no tile prediction."""
    out = roi_preds[list(ROI_ID_COLUMNS)].copy()
    skipped = []
    for probe in probes:
        genes = probe_genes(probe, settings)
        missing = [g for g in genes if g not in roi_preds.columns]
        if missing:
            skipped.append({"probe": probe, "variance": np.nan,
                            "reason": f"no tile predictions for {','.join(missing)}"})
            continue
        out[probe] = roi_preds[genes].sum(axis=1, min_count=len(genes))
    return out, pd.DataFrame(skipped, columns=["probe", "variance", "reason"])


def spearman_per_slide(data: pd.DataFrame, target: str) -> list[dict]:
    """Spearman r between ``prediction`` and ``observed`` within each slide."""
    from scipy.stats import spearmanr

    rows = []
    for sample, group in data.groupby("sample", sort=True):
        row = {"probe": target, "sample": sample, "n_rois": len(group), "spearman_r": np.nan, "p": np.nan,
               "status": "ok"}
        if len(group) < MIN_ROIS_SPEARMAN:
            row["status"] = f"excluded: fewer than {MIN_ROIS_SPEARMAN} ROIs"
        elif group["prediction"].nunique() < 2 or group["observed"].nunique() < 2:
            row["status"] = "excluded: constant values"
        else:
            result = spearmanr(group["prediction"], group["observed"])
            row["spearman_r"], row["p"] = float(result.statistic), float(result.pvalue)
        rows.append(row)
    return rows


MODEL_COLUMNS = ["probe", "n_rois", "n_slides", "coefficient", "se", "ci_low", "ci_high", "lrt_chi2", "p",
                 "padj", "status", "message"]


def _fit_rows(datasets: Mapping[str, pd.DataFrame], fit) -> pd.DataFrame:
    from .lme import benjamini_hochberg

    rows = []
    for target, data in datasets.items():
        result = fit(data["observed"].to_numpy(float), data["prediction"].to_numpy(float),
                     data["sample"].astype(str).to_numpy())
        rows.append({"probe": target, "n_rois": len(data), "n_slides": data["sample"].nunique(),
                     "coefficient": result.coefficient, "se": result.se, "ci_low": result.ci_low,
                     "ci_high": result.ci_high, "lrt_chi2": result.lrt_chi2, "p": result.p,
                     "status": result.status, "message": result.message})
    table = pd.DataFrame(rows, columns=[c for c in MODEL_COLUMNS if c != "padj"])
    table.insert(MODEL_COLUMNS.index("padj"), "padj", benjamini_hochberg(table["p"].to_numpy(float)))
    return table


@dataclass
class SpatialResults:
    probes: pd.DataFrame
    spearman: pd.DataFrame
    dropped: pd.DataFrame
    roi_values: pd.DataFrame
    excluded_rois: pd.DataFrame
    ki67: pd.DataFrame | None = None
    ki67_spearman: pd.DataFrame | None = None


def run_models(roi_preds: pd.DataFrame, counts: pd.DataFrame, settings: Mapping,
               ki67: pd.DataFrame | None = None, fit=None) -> SpatialResults:
    """Everything after the per-slide ROI predictions: normalisation, filters, LMMs,
    BH, per-slide Spearman, Ki67 model.

    ``fit(y, x, groups) -> emo.lme.LmmResult``; default from ``settings['backend']``.
    """
    from . import lme

    if fit is None:
        fit = lme.fitter(settings["backend"])
    roi_keys = roi_preds[list(ROI_ID_COLUMNS)]
    # ROIs with counts but no geometry are an input error; ROIs without counts are skipped.
    merged_keys = counts[list(ROI_ID_COLUMNS)].merge(roi_keys, how="left", indicator=True)
    orphan = merged_keys[merged_keys["_merge"] == "left_only"]
    if not orphan.empty:
        raise InputTableError(f"probe-count table: slide {orphan['sample'].iloc[0]!r}, ROI "
                              f"{orphan['roi'].iloc[0]!r} is not in the ROI table ({len(orphan)} such ROIs); "
                              "add its geometry to the ROI table or drop its counts")
    excluded = []
    with_counts = roi_preds.merge(counts[list(ROI_ID_COLUMNS)], how="inner")
    no_counts = roi_preds.merge(counts[list(ROI_ID_COLUMNS)], how="left", indicator="which")
    for row in no_counts[no_counts["which"] == "left_only"].itertuples():
        excluded.append({"sample": row.sample, "roi": row.roi, "reason": "no probe counts"})
    min_cov = float(settings["min_tile_coverage"])
    low = with_counts["coverage"] < min_cov
    for row in with_counts[low].itertuples():
        excluded.append({"sample": row.sample, "roi": row.roi,
                         "reason": f"tile coverage {row.coverage:.3f} < min_tile_coverage {min_cov:g}"})
    usable = with_counts[~low].reset_index(drop=True)
    excluded_rois = pd.DataFrame(excluded, columns=["sample", "roi", "reason"]).sort_values(
        ["sample", "roi"], kind="mergesort").reset_index(drop=True)
    if usable.empty:
        raise InputTableError("spatial validation: no ROI has probe counts and enough tile coverage "
                              f"(min_tile_coverage {min_cov:g}); see the excluded-ROI table")

    normalised = normalise_counts(counts, list(settings.get("negative_probes") or []),
                                  float(settings["pseudocount"]))
    observed = usable[list(ROI_ID_COLUMNS)].merge(normalised, how="left")
    kept, dropped_var = variance_filter(observed, float(settings["min_variance"]))
    preds, skipped = probe_predictions(usable, kept, settings)
    dropped = pd.concat([dropped_var, skipped], ignore_index=True) if not skipped.empty else dropped_var
    dropped = dropped.sort_values("probe", kind="mergesort").reset_index(drop=True)
    analysed = [p for p in kept if p in preds.columns]
    if not analysed:
        raise InputTableError("spatial validation: no probe left to analyse (all dropped; see the dropped-probe "
                              "table). Check 'spatial.probe_gene_map' / 'multi_gene_probes' against the genes in "
                              "the tile predictions")
    long_rows, datasets, spearman_rows = [], {}, []
    for probe in sorted(analysed):
        data = pd.DataFrame({"sample": usable["sample"], "roi": usable["roi"],
                             "prediction": preds[probe].to_numpy(float),
                             "observed": observed[probe].to_numpy(float)})
        datasets[probe] = data
        long_rows.append(data.assign(probe=probe))
        spearman_rows.extend(spearman_per_slide(data, probe))
    probes_table = _fit_rows(datasets, fit)
    roi_values = pd.concat(long_rows, ignore_index=True)[["probe", "sample", "roi", "prediction", "observed"]]
    results = SpatialResults(probes=probes_table, spearman=pd.DataFrame(spearman_rows), dropped=dropped,
                             roi_values=roi_values, excluded_rois=excluded_rois)
    if ki67 is not None:
        results.ki67, results.ki67_spearman = ki67_model(usable, ki67, settings, fit)
    return results


def proliferation_score(roi_preds: pd.DataFrame, genes: Sequence[str]) -> np.ndarray:
    missing = [g for g in genes if g not in roi_preds.columns]
    if missing:
        raise ConfigError(f"config key 'spatial.proliferation_genes': {', '.join(missing)} have no tile "
                          "predictions; include them in the spatially predicted genes or remove 'spatial.ki67'")
    return roi_preds[list(genes)].mean(axis=1).to_numpy(float)


def ki67_model(usable: pd.DataFrame, ki67: pd.DataFrame, settings: Mapping, fit
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """log2(Ki67 + ki67_pseudocount) ~ proliferation score + (1 | slide)."""
    genes = list(settings.get("proliferation_genes") or PROLIFERATION_GENES)
    data = usable[list(ROI_ID_COLUMNS)].copy()
    data["prediction"] = proliferation_score(usable, genes)
    data = data.merge(ki67, how="inner")
    if data.empty:
        raise InputTableError("Ki67 table: no (sample, roi) matches an analysed ROI of the ROI table")
    value = data["ki67"].to_numpy(float) + float(settings["ki67_pseudocount"])
    if np.any(value <= 0):
        i = int(np.flatnonzero(value <= 0)[0])
        raise InputTableError(f"Ki67 table: slide {data['sample'].iloc[i]!r}, ROI {data['roi'].iloc[i]!r} has "
                              "Ki67 0, which has no log; set 'spatial.ki67_pseudocount' (e.g. 0.01 for fractions)")
    data["observed"] = np.log2(value)
    data = data.drop(columns="ki67")
    table = _fit_rows({"proliferation_score": data}, fit)
    return table, pd.DataFrame(spearman_per_slide(data, "proliferation_score"))


# ---------------------------------------------------------------------------
# validated ROI table (checkpoint output) and tables I/O
# ---------------------------------------------------------------------------

def format_polygon(vertices: np.ndarray) -> str:
    return ",".join(f"{x:.10g} {y:.10g}" for x, y in np.asarray(vertices, float))


def rois_to_table(rois: pd.DataFrame) -> pd.DataFrame:
    """Validated ROIs as a TSV-ready table (every ROI as a polygon string, table units)."""
    return pd.DataFrame({"sample": rois["sample"], "roi": rois["roi"], "shape": rois["shape"],
                         "units": rois["units"], "polygon": [format_polygon(v) for v in rois["vertices"]]})


def read_validated_rois(path: str | Path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table["vertices"] = [parse_polygon(text, f"{path}") for text in table["polygon"]]
    return table


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_padj(probes: pd.DataFrame, path: str | Path, fdr: float = 0.05) -> None:
    """Ranked -log10(BH-adjusted p) per probe (EMO Fig. 4B)."""
    plt = _pyplot()
    data = probes[np.isfinite(probes["padj"])].copy()
    data["score"] = -np.log10(data["padj"].clip(lower=1e-300))
    data = data.sort_values(["score", "probe"], ascending=[False, True], kind="mergesort")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.22 * len(data) + 1.5), 4.0))
    colours = ["#6baed6" if p < fdr else "#bdbdbd" for p in data["padj"]]
    ax.bar(np.arange(len(data)), data["score"], color=colours)
    ax.axhline(-math.log10(fdr), color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(data)))
    ax.set_xticklabels(data["probe"], rotation=90, fontsize=7)
    ax.set_ylabel("-log10(FDR-adjusted P), LRT")
    ax.set_title(f"Spatial validation: {int((data['padj'] < fdr).sum())}/{len(data)} probes with FDR < {fdr:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_coefficients(probes: pd.DataFrame, path: str | Path, fdr: float = 0.05) -> None:
    """Fixed-effect coefficient with Wald 95 % CI per probe (EMO Fig. 4C), same order as the bar plot."""
    plt = _pyplot()
    data = probes[np.isfinite(probes["coefficient"])].copy()
    data["score"] = -np.log10(data["padj"].fillna(1).clip(lower=1e-300))
    data = data.sort_values(["score", "probe"], ascending=[False, True], kind="mergesort")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.22 * len(data) + 1.5), 4.0))
    x = np.arange(len(data))
    colours = ["#3182bd" if p < fdr else "#969696" for p in data["padj"].fillna(1)]
    ax.errorbar(x, data["coefficient"], yerr=[data["coefficient"] - data["ci_low"],
                                               data["ci_high"] - data["coefficient"]],
                fmt="none", ecolor=colours, elinewidth=1)
    ax.scatter(x, data["coefficient"], c=colours, s=12, zorder=3)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(data["probe"], rotation=90, fontsize=7)
    ax.set_ylabel("fixed-effect coefficient (95% Wald CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_spearman(spearman: pd.DataFrame, path: str | Path) -> None:
    """Boxplots of the within-slide Spearman r per probe (EMO Suppl. Fig. S4)."""
    plt = _pyplot()
    data = spearman[np.isfinite(spearman["spearman_r"])]
    probes = sorted(data["probe"].unique(), key=lambda p: (-data.loc[data["probe"] == p, "spearman_r"].median(), p))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.22 * len(probes) + 1.5), 4.0))
    if probes:
        ax.boxplot([data.loc[data["probe"] == p, "spearman_r"].to_numpy() for p in probes], showfliers=True)
        ax.set_xticks(np.arange(1, len(probes) + 1))
        ax.set_xticklabels(probes, rotation=90, fontsize=7)
    else:
        ax.text(0.5, 0.5, "no slide with enough ROIs", ha="center", transform=ax.transAxes)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("within-slide Spearman r (prediction vs ST)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def choose_overlay_probe(probes: pd.DataFrame, settings: Mapping) -> str:
    """The configured overlay probe, else the probe with the smallest adjusted p."""
    if settings.get("overlay_probe"):
        return str(settings["overlay_probe"])
    ranked = probes[np.isfinite(probes["padj"])].sort_values(["padj", "probe"], kind="mergesort")
    return str(ranked["probe"].iloc[0] if not ranked.empty else probes["probe"].iloc[0])


def plot_overlay(sample: str, slide_path: str | Path, tile_store: str | Path, predictions: str | Path,
                 rois: pd.DataFrame, probe: str, settings: Mapping, path: str | Path) -> None:
    """Slide thumbnail with the tile-level prediction of ``probe`` as heatmap and the ROIs outlined."""
    import openslide
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Polygon, Rectangle

    from .stores.predictions import open_prediction_store

    plt = _pyplot()
    info = read_slide_info(sample, tile_store, predictions)
    size = int(settings["thumbnail_px"])
    with openslide.OpenSlide(str(slide_path)) as slide:
        thumb = slide.get_thumbnail((size, size))
    scale = thumb.size[0] / info.width
    with open_prediction_store(predictions) as pred:
        coords = pred.coords().astype(float)
        genes = pred.tile_genes
        members = probe_genes(probe, settings)
        missing = [g for g in members if g not in genes]
        if missing:
            raise ConfigError(f"config key 'spatial.overlay_probe': {probe!r} needs tile predictions for "
                              f"{', '.join(missing)}, which {predictions} lacks")
        idx = sorted(genes.index(g) for g in members)
        values = pred.tile_values(idx).sum(axis=1)
    fig, ax = plt.subplots(figsize=(7, 7 * thumb.size[1] / thumb.size[0] + 0.6))
    ax.imshow(thumb)
    patches = [Rectangle((x * scale, y * scale), info.tile_size * scale, info.tile_size * scale) for x, y in coords]
    collection = PatchCollection(patches, cmap="viridis", alpha=0.55, linewidths=0)
    collection.set_array(values)
    ax.add_collection(collection)
    fig.colorbar(collection, ax=ax, fraction=0.04, label=f"predicted {probe}")
    for roi in rois[rois["sample"] == sample].to_dict("records"):
        vertices = roi_vertices_px(roi, info.mpp) * scale
        ax.add_patch(Polygon(vertices, closed=True, fill=False, edgecolor="yellow", lw=1.5))
        ax.text(vertices[:, 0].min(), vertices[:, 1].min(), str(roi["roi"]), color="yellow", fontsize=6,
                va="bottom")
    ax.set_axis_off()
    ax.set_title(f"{sample}: tile predictions of {probe} and ST ROIs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
