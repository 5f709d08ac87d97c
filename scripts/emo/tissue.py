"""Tissue detection at low resolution and per-pixel classes shared with tile QC.

Mask method (CLAM-like): HSV saturation of a low-resolution image near
``mask_um_per_px``, median-filtered, thresholded with Otsu (never below
``MIN_SATURATION``); pen ink (blue/green by hue, black by value) is removed from the
tissue; small objects and small holes are cleaned up by area in µm².

The image is built in horizontal strips read from the best pyramid level and
box-filtered down, so memory stays bounded whatever the slide size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from .slides import best_level_for_downsample, read_rgb

# Pixel classes (documented in docs/tiling.md); integer RGB arithmetic for speed.
MIN_SATURATION = 15          # floor of the Otsu saturation threshold (0..255 scale)
BACKGROUND_MAX_SATURATION = 0.10
BACKGROUND_MIN_VALUE = 204   # bright (V >= 0.8), unsaturated: glass / background / fat
PEN_MIN_SATURATION = 0.25
BLUE_MIN = 120               # blue ink: B is max, B >= 120, B - R >= 70
BLUE_MINUS_RED = 70
GREEN_MINUS_RED = 25         # green/cyan ink: G is max, G - R >= 25
BLACK_MAX_VALUE = 40         # black ink: V <= 40 and S <= 0.45 (dark nuclei are saturated)
BLACK_MAX_SATURATION = 0.45
MIN_OBJECT_UM2 = 10_000.0    # tissue fragments smaller than this are dropped
MAX_HOLE_UM2 = 10_000.0      # holes smaller than this are filled
STRIP_PIXELS = 1 << 23       # level-L pixels read per mask strip (~32 MB RGBA)


def _channels(rgb: np.ndarray):
    r = rgb[..., 0].astype(np.int32)
    g = rgb[..., 1].astype(np.int32)
    b = rgb[..., 2].astype(np.int32)
    v = np.maximum(np.maximum(r, g), b)
    delta = v - np.minimum(np.minimum(r, g), b)
    return r, g, b, v, delta


def saturation_u8(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation scaled to 0..255 (uint8)."""
    _, _, _, v, delta = _channels(rgb)
    return (delta * 255 // np.maximum(v, 1)).astype(np.uint8)


def pen_pixels(rgb: np.ndarray) -> np.ndarray:
    """Blue, green/cyan and black marker ink (bool, same height/width as ``rgb``)."""
    r, g, b, v, delta = _channels(rgb)
    saturated = delta * 100 >= PEN_MIN_SATURATION * 100 * v
    blue = (b == v) & (b >= BLUE_MIN) & (b - r >= BLUE_MINUS_RED) & saturated
    green = (g == v) & (g - r >= GREEN_MINUS_RED) & saturated
    black = (v <= BLACK_MAX_VALUE) & (delta * 100 <= BLACK_MAX_SATURATION * 100 * v)
    return blue | green | black


def background_pixels(rgb: np.ndarray) -> np.ndarray:
    """Bright, unsaturated pixels (bool)."""
    _, _, _, v, delta = _channels(rgb)
    return (delta * 100 < BACKGROUND_MAX_SATURATION * 100 * v) & (v >= BACKGROUND_MIN_VALUE)


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold on uint8 values (pixels > threshold are foreground)."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    omega = np.cumsum(hist) / total
    mu = np.cumsum(hist * np.arange(256)) / total
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_b = (mu_t * omega - mu) ** 2 / (omega * (1.0 - omega))
    sigma_b[~np.isfinite(sigma_b)] = -1.0
    return int(np.argmax(sigma_b))


@dataclass
class TissueMask:
    mask: np.ndarray          # uint8 (h, w), 1 = tissue
    pen: np.ndarray           # bool (h, w), pen ink at mask resolution
    downsample: float         # level-0 px per mask px
    level: int                # pyramid level the image was read from
    threshold: int            # saturation threshold used (0..255)


def low_resolution_rgb(slide, downsample: float) -> tuple[np.ndarray, int]:
    """RGB image of the whole slide at ``downsample`` level-0 px per px, in strips."""
    width0, height0 = slide.dimensions
    out_w = max(1, math.ceil(width0 / downsample))
    out_h = max(1, math.ceil(height0 / downsample))
    level = best_level_for_downsample(slide.level_downsamples, downsample)
    ds_level = float(slide.level_downsamples[level])
    scale = downsample / ds_level                      # level-L px per output px (>= 1)
    level_w = max(1, round(out_w * scale))
    rows_per_strip = max(1, int(STRIP_PIXELS // max(1, level_w * scale)))
    image = np.empty((out_h, out_w, 3), dtype=np.uint8)
    for r0 in range(0, out_h, rows_per_strip):
        r1 = min(out_h, r0 + rows_per_strip)
        y_level0 = round(r0 * downsample)
        strip_h = max(1, round((r1 - r0) * scale))
        strip = read_rgb(slide, (0, y_level0), level, (level_w, strip_h))
        if strip.shape[:2] != (r1 - r0, out_w):
            strip = np.asarray(Image.fromarray(strip).resize((out_w, r1 - r0), Image.BOX))
        image[r0:r1] = strip
    return image, level


def tissue_mask(slide, mpp: float, mask_um_per_px: float = 8.0, min_object_um2: float = MIN_OBJECT_UM2,
                max_hole_um2: float = MAX_HOLE_UM2) -> TissueMask:
    """Tissue mask of a slide at about ``mask_um_per_px`` µm per mask pixel."""
    downsample = max(1.0, mask_um_per_px / mpp)
    rgb, level = low_resolution_rgb(slide, downsample)
    return mask_from_rgb(rgb, downsample, level, mpp, min_object_um2, max_hole_um2)


def mask_from_rgb(rgb: np.ndarray, downsample: float, level: int, mpp: float,
                  min_object_um2: float = MIN_OBJECT_UM2, max_hole_um2: float = MAX_HOLE_UM2) -> TissueMask:
    pen = pen_pixels(rgb)
    sat = ndimage.median_filter(saturation_u8(rgb), size=5, mode="nearest")
    candidates = sat[~pen]
    threshold = max(otsu_threshold(candidates) if candidates.size else 0, MIN_SATURATION)
    tissue = (sat > threshold) & ~pen
    um2_per_px = (downsample * mpp) ** 2
    tissue = ndimage.binary_closing(tissue, structure=np.ones((3, 3), bool), border_value=0)
    tissue = _remove_small(tissue, min_object_um2 / um2_per_px)
    holes = ~tissue
    small_holes = holes & ~_remove_small(holes, max_hole_um2 / um2_per_px, touching_border_kept=True)
    tissue = (tissue | small_holes) & ~pen
    return TissueMask(mask=tissue.astype(np.uint8), pen=pen, downsample=float(downsample), level=int(level),
                      threshold=int(threshold))


def _remove_small(binary: np.ndarray, min_pixels: float, touching_border_kept: bool = False) -> np.ndarray:
    labels, n = ndimage.label(binary, structure=np.ones((3, 3), bool))
    if n == 0:
        return binary.copy()
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    if touching_border_kept:
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        keep[border[border > 0]] = True
    return keep[labels]
