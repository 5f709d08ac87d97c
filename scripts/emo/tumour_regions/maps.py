"""Tumour-probability maps: each chosen slide's H&E thumbnail with its tiles coloured by
the classifier's tumour probability (tiles at their level-0 footprint), a scale bar and
the slide's tumour fraction; annotated (training) slides are marked."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..io import atomic_path
from ..scale_bar import add_scale_bar
from ..stores.tumour_regions import SlideTumour


def figure_slides(table: pd.DataFrame, n: int) -> list[str]:
    """``n`` slides spread over the tumour-fraction range (lowest first), deterministic."""
    ordered = table.sort_values(["tumour_fraction", "sample"], kind="mergesort")["sample"].astype(str).tolist()
    if len(ordered) <= n:
        return ordered
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, n)).astype(int))
    return [ordered[i] for i in picks]


def write_maps(slides: Mapping[str, SlideTumour], slide_paths: Mapping[str, str], mpps: Mapping[str, float],
               table: pd.DataFrame, annotated: Sequence[str], path: str | Path, thumbnail_px: int = 512) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import openslide
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    names = list(slide_paths)
    cols = min(4, max(len(names), 1))
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows + 0.4), squeeze=False)
    fractions = table.set_index("sample")["tumour_fraction"]
    mappable = None
    for ax, sample in zip(axes.ravel(), names):
        with openslide.OpenSlide(str(slide_paths[sample])) as slide:
            width0 = slide.dimensions[0]
            thumb = np.asarray(slide.get_thumbnail((thumbnail_px, thumbnail_px)).convert("RGB"))
        scale = thumb.shape[1] / width0
        ax.imshow(thumb)
        tiles = slides[sample]
        size = tiles.patch_size_level0 * scale
        patches = [Rectangle((x * scale, y * scale), size, size) for x, y in tiles.coords]
        collection = PatchCollection(patches, cmap="magma", alpha=0.55, linewidths=0)
        collection.set_array(np.asarray(tiles.probability, dtype=float))
        collection.set_clim(0.0, 1.0)
        ax.add_collection(collection)
        mappable = collection
        add_scale_bar(ax, float(mpps[sample]) / scale, thumb.shape[1])  # µm per thumbnail px
        mark = " (annotated)" if sample in set(annotated) else ""
        ax.set_title(f"{sample}{mark}\ntumour {fractions.get(sample, float('nan')):.0%} of tiles", fontsize=8)
        ax.set_axis_off()
    for ax in axes.ravel()[len(names):]:
        ax.set_axis_off()
    if mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.03, label="tumour probability")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)
