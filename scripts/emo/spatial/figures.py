"""Spatial-validation figures (EMO Fig. 4B/C, Suppl. Fig. S4) and slide overlays."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .probes import probe_genes
from .roi_predictions import read_slide_info
from .tables import roi_vertices_px


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

    from ..scale_bar import add_scale_bar
    from ..stores.predictions import open_prediction_store

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
    add_scale_bar(ax, info.mpp / scale, thumb.size[0])
    ax.set_axis_off()
    ax.set_title(f"{sample}: tile predictions of {probe} and ST ROIs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
