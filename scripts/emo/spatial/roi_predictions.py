"""Per-slide ROI predictions (streams one slide): a gene's ROI prediction is the
tile predictions averaged with weights equal to each tile's overlap area with the ROI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import InputTableError
from .geometry import polygon_area, weighted_roi_means
from .tables import check_roi_inside, roi_vertices_px


@dataclass
class SlideInfo:
    sample: str
    mpp: float
    width: float
    height: float
    tile_size: float


def read_slide_info(sample: str, tile_store: str | Path, predictions: str | Path) -> SlideInfo:
    from ..stores.predictions import open_prediction_store
    from ..stores.tiles import read_tile_store_attrs

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
    from ..stores.predictions import open_prediction_store

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
