"""Per-slide maps of tile-level gene predictions (paper 001, EMO-spatial; paper 003's
"virtual spatialisation"): each tile's predicted expression drawn over the slide's H&E
thumbnail, one panel per gene, with a colour bar and a scale bar. Needs the genes' tile
predictions in the slide's prediction store (config predictions.tile_genes). docs/gene_maps.md."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import ConfigError


def map_samples(settings: Mapping, sample_names: Sequence[str]) -> list[str]:
    """The slides mapped: ``maps.samples`` (checked against the sample sheet), or
    ``maps.n_samples`` slides evenly spread over the sorted sample names."""
    names = sorted(sample_names)
    chosen = list(settings["samples"])
    if chosen:
        unknown = [s for s in chosen if s not in set(names)]
        if unknown:
            raise ConfigError(f"config key 'maps.samples': {', '.join(map(repr, unknown))} not in the sample sheet; "
                              "use sample names of the sheet (column 'sample')")
        return chosen
    n = min(int(settings["n_samples"]), len(names))
    if n == 0:
        return []
    picks = np.unique(np.round(np.linspace(0, len(names) - 1, n)).astype(int))
    return [names[i] for i in picks]


def check_map_genes(settings: Mapping, tile_genes, modelled: Sequence[str] | None = None) -> list[str]:
    """``maps.genes``, each with tile-level predictions (config predictions.tile_genes) and,
    when the modelled genes are known, modelled."""
    genes = list(settings["genes"])
    repeated = sorted({g for g in genes if genes.count(g) > 1})
    if repeated:
        raise ConfigError(f"config key 'maps.genes' lists {', '.join(repeated)} more than once")
    if isinstance(tile_genes, list):
        missing = [g for g in genes if g not in tile_genes]
        if missing:
            raise ConfigError(f"config key 'maps.genes' names {', '.join(missing)}, which config key "
                              "'predictions.tile_genes' lacks: maps need tile-level predictions; add them to "
                              "predictions.tile_genes or set it to 'all'")
    if modelled is not None:
        unknown = [g for g in genes if g not in set(modelled)]
        if unknown:
            raise ConfigError(f"config key 'maps.genes' names {', '.join(unknown)}, which the reference "
                              "cohort's expression matrix lacks, so no gene model predicts them")
    return genes


def plot_gene_maps(sample: str, slide_path: str | Path, tile_store: str | Path, predictions: str | Path,
                   genes: Sequence[str], settings: Mapping, path: str | Path) -> None:
    """One panel per gene: tiles coloured by the predicted expression (viridis, 2nd-98th
    percentile of the slide's tiles) over the thumbnail; colour bar; scale bar (emo.scale_bar)."""
    import openslide
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    from .figures import STYLE, _save, plt
    from .scale_bar import add_scale_bar
    from .stores.predictions import open_prediction_store
    from .stores.tiles import read_tile_store_attrs

    attrs = read_tile_store_attrs(tile_store)
    mpp, width = float(attrs["mpp"]), float(attrs["level0_width"])
    size = int(settings["thumbnail_px"])
    with openslide.OpenSlide(str(slide_path)) as slide:
        thumb = slide.get_thumbnail((size, size))
    scale = thumb.size[0] / width
    with open_prediction_store(predictions) as pred:
        tile_size = float(pred.coords_attrs["patch_size_level0"])
        coords = pred.coords().astype(float)
        stored = list(pred.tile_genes)
        missing = [g for g in genes if g not in stored]
        if missing:
            raise ConfigError(f"slide {sample!r}: {predictions} has no tile predictions for {', '.join(missing)} "
                              "(config key 'maps.genes'); add them to predictions.tile_genes and rerun predict_slide")
        idx = [stored.index(g) for g in genes]
        read = pred.tile_values(sorted(idx))          # a column-sliced read wants increasing indices
        values = read[:, np.argsort(np.argsort(idx))].astype(float)
    aspect = thumb.size[1] / thumb.size[0]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(genes), figsize=(4.2 * len(genes), 4.2 * aspect + 0.8), squeeze=False)
        for ax, gene, column in zip(axes[0], genes, values.T):
            ax.imshow(thumb)
            patches = [Rectangle((x * scale, y * scale), tile_size * scale, tile_size * scale)
                       for x, y in coords]
            collection = PatchCollection(patches, cmap="viridis", alpha=0.6, linewidths=0)
            collection.set_array(column)
            if len(column):
                lo, hi = np.percentile(column, [2, 98])
                collection.set_clim(lo, hi if hi > lo else lo + 1e-6)
            ax.add_collection(collection)
            fig.colorbar(collection, ax=ax, fraction=0.046, pad=0.02, label=f"predicted {gene} (log expression)")
            add_scale_bar(ax, mpp / scale, thumb.size[0], location="lower left")
            ax.set_axis_off()
            ax.set_title(f"{sample}: {gene} ({len(column)} tiles)")
        fig.tight_layout()
        _save(fig, path)
