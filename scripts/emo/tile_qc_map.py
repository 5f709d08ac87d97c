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
                 thumbnail_px: int = 1024, mpp: float | None = None) -> None:
    """``slide``: an open OpenSlide; ``candidates``: the tile store's /candidates arrays
    (``coords``, ``reject_reason``); tiles are drawn at their level-0 footprint, also where a
    last-row/column tile leaves the slide. With ``mpp`` (level-0 µm/px) a scale bar."""
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
    if mpp is not None:
        from .scale_bar import add_scale_bar

        add_scale_bar(ax, mpp / scale, thumb.shape[1])
    ax.set_axis_off()
    handles = [Patch(facecolor="none", edgecolor=ACCEPTED_COLOUR, label=f"accepted ({int(accepted.sum())})")]
    handles += [Patch(facecolor=c, alpha=0.45, label=f"{r} ({counts[r]})") for r, c in REASON_COLOURS.items()
                if counts[r]]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    ax.set_title(title, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def qc_summary(samples, tile_stores) -> "pd.DataFrame":
    """Per slide: candidate tiles, accepted, rejected by reason and the rejected share."""
    import pandas as pd

    from .stores.tiles import read_tile_store

    rows = []
    for sample, path in zip(samples, tile_stores):
        store = read_tile_store(path)
        reasons = np.asarray(store.candidates["reject_reason"], dtype=object)
        row = {"sample": sample, "candidates": len(reasons), "accepted": int((reasons == "").sum())}
        row.update({f"rejected_{r}": int((reasons == r).sum()) for r in REASON_COLOURS})
        row["rejected_fraction"] = round(1 - row["accepted"] / row["candidates"], 6) if len(reasons) else 1.0
        rows.append(row)
    return pd.DataFrame(rows)


def most_rejected(summary, n: int) -> list[str]:
    """The ``n`` slides with the largest rejected share (ties: sample name): the ones to look at."""
    ordered = summary.sort_values(["rejected_fraction", "sample"], ascending=[False, True])
    return list(ordered["sample"].head(n))


def write_qc_maps(samples, tile_stores, slides, summary_path, map_paths, code_version: str, params) -> list[str]:
    """Rule tile_qc_maps: the summary table of every slide and the QC maps of the
    ``len(map_paths)`` most rejected slides (in that order). Returns the slides drawn."""
    import openslide

    from .io import write_tsv
    from .provenance import write_sidecar
    from .stores.tiles import read_tile_store

    summary = qc_summary(samples, tile_stores)
    write_tsv(summary, summary_path)
    write_sidecar(summary_path, code_version, params, list(tile_stores))
    chosen = most_rejected(summary, len(map_paths))
    index = {s: i for i, s in enumerate(samples)}
    for path, sample in zip(map_paths, chosen):
        store = read_tile_store(tile_stores[index[sample]])
        share = float(summary.set_index("sample").loc[sample, "rejected_fraction"])
        with openslide.OpenSlide(str(slides[index[sample]])) as slide:
            write_qc_map(slide, store.candidates, float(store.coords_attrs["patch_size_level0"]), path,
                         title=f"{sample}: {share:.0%} of {len(store.candidates['coords'])} candidate tiles rejected",
                         mpp=float(store.attrs["mpp"]))
    return chosen
