"""Virtual spatialisation maps (paper 003, Fig. 3-4): a slide model's per-tile scores on
the slide's tile grid — HE2RNA's per-tile gene scores, attention MIL's attention weights."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..heterogeneity import tile_grid


def score_image(coords: np.ndarray, values: np.ndarray, patch_size: float) -> np.ndarray:
    """(H, W) float image of per-tile values on the tile grid, NaN where no tile lies."""
    row, col, (h, w) = tile_grid(coords, patch_size)
    image = np.full((h, w), np.nan)
    image[row, col] = np.asarray(values, dtype=np.float64)
    return image


def patch_size_of(attrs: dict) -> float:
    return float(attrs["patch_size_level0"]) if "patch_size_level0" in attrs else float(attrs["patch_size"])


def pick_slides(samples: Sequence[str], values: Sequence[float], n: int) -> list[str]:
    """``n`` slides spread over the range of ``values`` (e.g. the gene's slide
    prediction), lowest first; ties by sample name."""
    order = sorted(range(len(samples)), key=lambda i: (values[i], samples[i]))
    if len(order) <= n:
        return [samples[i] for i in order]
    picks = np.unique(np.linspace(0, len(order) - 1, n).round().astype(int))
    return [samples[order[i]] for i in picks]


def maps_figure(panels: Sequence[tuple[str, np.ndarray]], title: str, out_path) -> None:
    """One panel per (label, image)."""
    from ..figures import STYLE, _save, plt

    with plt.rc_context(STYLE):
        n = max(1, len(panels))
        fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
        for ax, (label, image) in zip(axes[0], panels):
            shown = ax.imshow(np.ma.masked_invalid(image), cmap="viridis", interpolation="nearest")
            ax.set_title(label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        for ax in axes[0][len(panels):]:
            ax.axis("off")
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()
        _save(fig, out_path)
