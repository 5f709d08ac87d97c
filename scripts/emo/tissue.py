"""Tissue detection at low resolution and per-pixel classes shared with tile QC.

Mask method (CLAM-like): HSV saturation of a low-resolution image near
``mask_um_per_px``, median-filtered, thresholded with Otsu (never below
``MIN_SATURATION``); pen ink (blue/green by hue, black by value) is removed from the
tissue; small objects and small holes are cleaned up by area in µm².

Fat and loose stroma barely raise the saturation at 8 µm/px (thin membranes, pale
fibres, white lumens), so a *structure pass* adds them: each mask pixel is "white" when
almost all of its ``STRUCTURE_UM_PER_PX`` pixels are glass-coloured (a thin membrane
crossing it is enough to make it structure); glass is the white area that holds a disk
of radius ``GLASS_RADIUS_UM`` (a morphological opening). White narrower than that disk
(adipocyte lumens, spaces between loose fibres) is tissue, whether or not its membranes
are intact. "Glass-coloured" is relative to the slide's own glass brightness (median
of the pixels outside the saturation mask).

Images are built in horizontal strips read from the best pyramid level and
box-filtered down, so memory stays bounded whatever the slide size; only
mask-resolution arrays are kept for the whole slide.
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
# Glass-coloured ("white") pixel: S < WHITE_MAX_SATURATION and V >= glass value -
# GLASS_VALUE_TOLERANCE. Glass scatters to S ~0.01-0.05 (JPEG, noise); pale eosin
# (loose stroma, membranes) sits above 0.06 or below the glass brightness.
WHITE_MAX_SATURATION = 0.06
GLASS_VALUE_TOLERANCE = 20
DEFAULT_GLASS_VALUE = 224    # slide without visible glass: white means V >= 204 (0.8)
MIN_GLASS_PIXELS = 100       # mask pixels needed to estimate the glass value
STRUCTURE_UM_PER_PX = 2.0    # structure pass: 1-2 µm membranes still darken a pixel
WHITE_BLOCK_FRACTION = 0.9   # a mask pixel is white when this share of its fine pixels is
GLASS_RADIUS_UM = 75.0       # glass holds a disk of this radius; fat lumens (50-150 µm wide) do not
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


def white_min_value(glass_value: int) -> int:
    """Lowest V that still counts as glass-coloured on a slide whose glass has ``glass_value``."""
    return int(glass_value) - GLASS_VALUE_TOLERANCE


def white_pixels(rgb: np.ndarray, min_value: int = DEFAULT_GLASS_VALUE - GLASS_VALUE_TOLERANCE) -> np.ndarray:
    """Glass-coloured pixels (bool): unsaturated and about as bright as the slide's glass.

    Glass, fat lumens and the spaces between loose fibres are all white; which of them
    is glass is decided by position (:func:`structure_tissue`, the tissue envelope)."""
    _, _, _, v, delta = _channels(rgb)
    return (delta * 100 < WHITE_MAX_SATURATION * 100 * v) & (v >= min_value)


def glass_value(rgb: np.ndarray, tissue: np.ndarray, pen: np.ndarray) -> int:
    """Median V of the low-resolution pixels away from tissue and pen (the slide's glass);
    ``DEFAULT_GLASS_VALUE`` when the slide shows too little glass."""
    near = ndimage.binary_dilation(tissue | pen, structure=np.ones((5, 5), bool))
    _, _, _, v, _ = _channels(rgb)
    values = v[~near]
    if values.size < MIN_GLASS_PIXELS:
        return DEFAULT_GLASS_VALUE
    return int(np.median(values))


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
    glass_value: int = DEFAULT_GLASS_VALUE   # V of the slide's glass (white_min_value derives from it)
    structure: np.ndarray | None = None      # bool (h, w), tissue added by the structure pass

    @property
    def white_min_value(self) -> int:
        return white_min_value(self.glass_value)


def _read_rows(slide, downsample: float, level: int, r0: int, r1: int, out_w: int) -> np.ndarray:
    """Rows ``r0:r1`` of the slide rendered at ``downsample`` level-0 px per px (``out_w`` wide),
    read from ``level`` and box-filtered; outside the scan is white."""
    ds_level = float(slide.level_downsamples[level])
    scale = downsample / ds_level                      # level-L px per output px (>= 1)
    level_w = max(1, round(out_w * scale))
    y_level0 = round(r0 * downsample)
    strip_h = max(1, round((r1 - r0) * scale))
    strip = read_rgb(slide, (0, y_level0), level, (level_w, strip_h))
    if strip.shape[:2] != (r1 - r0, out_w):
        strip = np.asarray(Image.fromarray(strip).resize((out_w, r1 - r0), Image.BOX))
    return strip


def _rows_per_strip(slide, downsample: float, level: int, out_w: int) -> int:
    scale = downsample / float(slide.level_downsamples[level])
    return max(1, int(STRIP_PIXELS // max(1, round(out_w * scale) * scale)))


def low_resolution_rgb(slide, downsample: float) -> tuple[np.ndarray, int]:
    """RGB image of the whole slide at ``downsample`` level-0 px per px, in strips."""
    width0, height0 = slide.dimensions
    out_w = max(1, math.ceil(width0 / downsample))
    out_h = max(1, math.ceil(height0 / downsample))
    level = best_level_for_downsample(slide.level_downsamples, downsample)
    rows_per_strip = _rows_per_strip(slide, downsample, level, out_w)
    image = np.empty((out_h, out_w, 3), dtype=np.uint8)
    for r0 in range(0, out_h, rows_per_strip):
        r1 = min(out_h, r0 + rows_per_strip)
        image[r0:r1] = _read_rows(slide, downsample, level, r0, r1, out_w)
    return image, level


def white_block_fraction(slide, mpp: float, mask_downsample: float, mask_shape: tuple[int, int],
                         min_value: int) -> np.ndarray:
    """Fraction (float32, mask resolution) of glass-coloured pixels among the ~``STRUCTURE_UM_PER_PX``
    pixels of each mask pixel, read in strips. A 1-2 µm membrane crossing a mask pixel
    lowers it although the box-filtered 8 µm pixel still looks white."""
    h, w = mask_shape
    k = max(1, int(round(mask_downsample * mpp / STRUCTURE_UM_PER_PX)))   # fine px per mask px
    fine_ds = mask_downsample / k
    level = best_level_for_downsample(slide.level_downsamples, fine_ds)
    rows = max(k, _rows_per_strip(slide, fine_ds, level, w * k) // k * k)
    out = np.empty((h, w), dtype=np.float32)
    for a in range(0, h * k, rows):
        b = min(h * k, a + rows)
        white = white_pixels(_read_rows(slide, fine_ds, level, a, b, w * k), min_value)
        out[a // k:b // k] = white.reshape((b - a) // k, k, w, k).mean(axis=(1, 3))
    return out


def open_glass(white: np.ndarray, radius_px: float) -> np.ndarray:
    """Glass: the white pixels covered by a disk of ``radius_px`` that fits entirely in white
    (a binary opening, via two distance transforms). Outside the image counts as white.
    White narrower than the disk (fat lumens, gaps between loose fibres) is not glass."""
    if not white.any():
        return np.zeros_like(white)
    padded = np.pad(white, 1, constant_values=True)        # the scan's surroundings are glass
    centres = ndimage.distance_transform_edt(padded) > radius_px
    if not centres.any():
        return np.zeros_like(white)
    covered = ndimage.distance_transform_edt(~centres) <= radius_px
    return covered[1:-1, 1:-1] & white


def structure_tissue(white_fraction: np.ndarray, pen: np.ndarray, mask_um_per_px: float) -> np.ndarray:
    """Tissue by structure at mask resolution (bool): every pixel that is neither glass nor pen,
    glass being :func:`open_glass` of the pixels that are (almost) all white at the fine
    resolution."""
    white = (white_fraction >= WHITE_BLOCK_FRACTION) & ~pen
    return ~open_glass(white, GLASS_RADIUS_UM / mask_um_per_px) & ~pen


def tissue_mask(slide, mpp: float, mask_um_per_px: float = 8.0, min_object_um2: float = MIN_OBJECT_UM2,
                max_hole_um2: float = MAX_HOLE_UM2) -> TissueMask:
    """Tissue mask of a slide at about ``mask_um_per_px`` µm per mask pixel: saturation
    mask plus the structure pass (fat, loose stroma), then cleaned up."""
    downsample = max(1.0, mask_um_per_px / mpp)
    rgb, level = low_resolution_rgb(slide, downsample)
    saturated, pen, threshold = saturation_tissue(rgb)
    glass = glass_value(rgb, saturated, pen)
    white = white_block_fraction(slide, mpp, downsample, saturated.shape, white_min_value(glass))
    structure = structure_tissue(white, pen, downsample * mpp)
    return mask_from_rgb(rgb, downsample, level, mpp, min_object_um2, max_hole_um2, structure=structure,
                         glass=glass)


def saturation_tissue(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(tissue by saturation before clean-up, pen ink, Otsu threshold) of a low-resolution image."""
    pen = pen_pixels(rgb)
    sat = ndimage.median_filter(saturation_u8(rgb), size=5, mode="nearest")
    candidates = sat[~pen]
    threshold = max(otsu_threshold(candidates) if candidates.size else 0, MIN_SATURATION)
    return (sat > threshold) & ~pen, pen, int(threshold)


def mask_from_rgb(rgb: np.ndarray, downsample: float, level: int, mpp: float,
                  min_object_um2: float = MIN_OBJECT_UM2, max_hole_um2: float = MAX_HOLE_UM2,
                  structure: np.ndarray | None = None, glass: int | None = None) -> TissueMask:
    """Mask from a low-resolution image; ``structure`` (bool, same shape) is added to the
    saturation tissue before clean-up (None: saturation only)."""
    tissue, pen, threshold = saturation_tissue(rgb)
    if glass is None:
        glass = glass_value(rgb, tissue, pen)
    if structure is not None:
        tissue = tissue | (structure & ~pen)
    um2_per_px = (downsample * mpp) ** 2
    tissue = ndimage.binary_closing(tissue, structure=np.ones((3, 3), bool), border_value=0)
    tissue = _remove_small(tissue, min_object_um2 / um2_per_px)
    holes = ~tissue
    small_holes = holes & ~_remove_small(holes, max_hole_um2 / um2_per_px, touching_border_kept=True)
    tissue = (tissue | small_holes) & ~pen
    return TissueMask(mask=tissue.astype(np.uint8), pen=pen, downsample=float(downsample), level=int(level),
                      threshold=int(threshold), glass_value=int(glass), structure=structure)


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
