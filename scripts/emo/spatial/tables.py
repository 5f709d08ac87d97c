"""ROI, probe-count and Ki67 tables: reading and validation (errors name the file,
row, column, slide and ROI), and the validated ROI table written by the checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTableError
from .geometry import polygon_area
from .settings import ROI_ID_COLUMNS


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
