"""Spatial validation inputs and ROI-level predictions (EMO "ST analysis", Fig. 4).

* ROI table, probe-count table and Ki67 table: reading and validation (errors name
  the file, row, column, slide and ROI) -- :mod:`.tables`.
* ROI geometry: rectangles or simple polygons in level-0 pixels or µm; the exact
  intersection area of an ROI with each square tile (Sutherland–Hodgman clipping of
  the ROI polygon against the tile square, shoelace area) -- :mod:`.geometry`.
* ROI prediction of a gene = tile predictions averaged with weights equal to the
  tile's overlap area with the ROI -- :mod:`.roi_predictions`.
* Probe processing: counts divided by the ROI's mean negative-probe count, log2;
  probes whose log2 values vary less than ``min_variance`` are dropped (listed).
  A multi-gene probe's prediction is the sum of its member genes' predictions --
  :mod:`.probes`.

The mixed models live in :mod:`emo.lme`; the pipeline glue in :func:`run_models`
(:mod:`.models`); the figures in :mod:`.figures`. This package re-exports the public
names of its modules, so ``from emo import spatial; spatial.load_rois(...)`` works.
"""

from __future__ import annotations

from .figures import choose_overlay_probe, plot_coefficients, plot_overlay, plot_padj, plot_spearman
from .geometry import clip_polygon_to_rect, polygon_area, tile_overlap_areas, weighted_roi_means
from .models import (MODEL_COLUMNS, SpatialResults, ki67_model, proliferation_score, run_models,
                     spearman_per_slide)
from .probes import (normalise_counts, probe_columns, probe_genes, probe_predictions, required_genes,
                     variance_filter)
from .roi_predictions import SlideInfo, read_slide_info, slide_roi_predictions
from .settings import MIN_ROIS_SPEARMAN, PROLIFERATION_GENES, ROI_ID_COLUMNS, spatial_settings
from .tables import (check_roi_inside, format_polygon, load_ki67, load_numeric_table, load_probe_counts,
                     load_rois, parse_polygon, read_validated_rois, roi_vertices_px, rois_to_table)

__all__ = [
    "MIN_ROIS_SPEARMAN", "MODEL_COLUMNS", "PROLIFERATION_GENES", "ROI_ID_COLUMNS", "SlideInfo",
    "SpatialResults", "check_roi_inside", "choose_overlay_probe", "clip_polygon_to_rect", "format_polygon",
    "ki67_model", "load_ki67", "load_numeric_table", "load_probe_counts", "load_rois", "normalise_counts",
    "parse_polygon", "plot_coefficients", "plot_overlay", "plot_padj", "plot_spearman", "polygon_area",
    "probe_columns", "probe_genes", "probe_predictions", "proliferation_score", "read_slide_info",
    "read_validated_rois", "required_genes", "roi_vertices_px", "rois_to_table", "run_models",
    "slide_roi_predictions", "spatial_settings", "spearman_per_slide", "tile_overlap_areas",
    "variance_filter", "weighted_roi_means",
]
