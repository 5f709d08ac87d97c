"""Accepted-tile map of a slide: thumbnail, accepted tiles outlined, rejected tiles filled
by reject reason (docs/tiling.md, "QC map"). Deterministic PNG (no timestamps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path

REASON_COLOURS = {"background": "#4c72b0", "low_tissue": "#dd8452", "pen": "#8172b3", "blur": "#c44e52",
                  "cap": "#937860"}
ACCEPTED_COLOUR = "#2ca02c"


def write_qc_map(slide, candidates: dict, tile_size0: float, path: str | Path, title: str = "",
                 thumbnail_px: int = 1024) -> None:
    """``slide``: an open OpenSlide; ``candidates``: the tile store's /candidates arrays
    (``coords``, ``reject_reason``); tiles are drawn at their level-0 footprint, also where a
    last-row/column tile leaves the slide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    width0, height0 = slide.dimensions
    thumb = np.asarray(slide.get_thumbnail((thumbnail_px, thumbnail_px)).convert("RGB"))
    scale = thumb.shape[1] / width0                          # thumbnail px per level-0 px
    coords = np.asarray(candidates["coords"], dtype=np.float64).reshape(-1, 2)
    reasons = np.asarray(candidates["reject_reason"], dtype=object)
    side = tile_size0 * scale
    extent_w = max(thumb.shape[1], float((coords[:, 0].max() + tile_size0) * scale) if len(coords) else 0)
    extent_h = max(thumb.shape[0], float((coords[:, 1].max() + tile_size0) * scale) if len(coords) else 0)
    fig, ax = plt.subplots(figsize=(6, 6 * extent_h / max(extent_w, 1)), dpi=120)
    ax.imshow(thumb, extent=(0, thumb.shape[1], thumb.shape[0], 0))
    ax.add_patch(Rectangle((0, 0), thumb.shape[1], thumb.shape[0], fill=False, edgecolor="black", lw=0.6))
    counts = {}
    for reason, colour in REASON_COLOURS.items():
        sel = reasons == reason
        counts[reason] = int(sel.sum())
        boxes = [Rectangle((x * scale, y * scale), side, side) for x, y in coords[sel]]
        ax.add_collection(PatchCollection(boxes, facecolor=colour, edgecolor=colour, alpha=0.45, lw=0.5))
    accepted = reasons == ""
    boxes = [Rectangle((x * scale, y * scale), side, side) for x, y in coords[accepted]]
    ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor=ACCEPTED_COLOUR, lw=1.2))
    ax.set_xlim(0, extent_w)
    ax.set_ylim(extent_h, 0)
    ax.set_axis_off()
    handles = [Patch(facecolor="none", edgecolor=ACCEPTED_COLOUR, label=f"accepted ({int(accepted.sum())})")]
    handles += [Patch(facecolor=c, alpha=0.45, label=f"{r} ({counts[r]})") for r, c in REASON_COLOURS.items()
                if counts[r]]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    ax.set_title(title, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
