"""A simple colour / texture description of a tile: 40 hand-made numbers.

The baseline every expression model is reported beside (docs/gene_models.md): if a
model does no better than a ridge fit on these slide-mean statistics, it has learnt
stain and texture averages, not morphology. Computed from the same uint8 tiles the
encoder sees (after stain normalisation when it is on), in the feature-extraction job,
and stored as ``/colour_texture`` in the feature store.

Groups (``DESCRIPTOR_NAMES``): RGB mean/sd; optical density (Beer-Lambert, OD =
-log10((I + 1) / 256)) mean/sd; haematoxylin / eosin concentrations by Ruifrok &
Johnston colour deconvolution (mean, sd, 90th percentile); HSV saturation and value
mean/sd and the circular mean of hue; fractions of white, dark and haematoxylin-
dominated pixels; grey-level mean, sd, 10th/90th percentiles; gradient magnitude
mean/sd, mean |Laplacian|, mean local (4 x 4 block) sd; grey-level co-occurrence
(16 levels, right and down neighbours pooled) contrast, homogeneity, energy,
correlation and entropy.
"""

from __future__ import annotations

import numpy as np

DESCRIPTOR_NAMES: tuple[str, ...] = (
    "r_mean", "g_mean", "b_mean", "r_sd", "g_sd", "b_sd",
    "od_r_mean", "od_g_mean", "od_b_mean", "od_r_sd", "od_g_sd", "od_b_sd",
    "haem_mean", "haem_sd", "haem_p90", "eosin_mean", "eosin_sd", "eosin_p90",
    "sat_mean", "sat_sd", "val_mean", "val_sd", "hue_cos", "hue_sin",
    "white_fraction", "dark_fraction", "haem_dominant_fraction",
    "grey_mean", "grey_sd", "grey_p10", "grey_p90",
    "gradient_mean", "gradient_sd", "laplacian_mean", "local_sd_mean",
    "glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation", "glcm_entropy",
)
N_DESCRIPTORS = len(DESCRIPTOR_NAMES)
GLCM_LEVELS = 16
MIN_SIDE = 64  # tiles at least twice this side are described at half resolution
# Ruifrok & Johnston (2001) H&E(-DAB) stain vectors in OD space (rows: H, E, residual).
_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_STAINS = _STAINS / np.linalg.norm(_STAINS, axis=1, keepdims=True)
_UNMIX = np.linalg.inv(_STAINS)


def _percentile(flat: np.ndarray, q: float) -> np.ndarray:
    """Per-row q-th percentile (nearest rank; np.partition, no full sort)."""
    k = min(flat.shape[1] - 1, max(0, int(round(q / 100.0 * (flat.shape[1] - 1)))))
    return np.partition(flat, k, axis=1)[:, k]


def _mean_sd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile mean and sd over all axes but the first."""
    flat = values.reshape(values.shape[0], -1)
    return flat.mean(1), flat.std(1)


def _glcm_features(grey: np.ndarray) -> np.ndarray:
    """(N, 5) co-occurrence statistics of 16-level grey images (N, H, W) in [0, 1]."""
    n = grey.shape[0]
    levels = np.minimum((grey * GLCM_LEVELS).astype(np.int64), GLCM_LEVELS - 1)
    offset = (np.arange(n) * GLCM_LEVELS * GLCM_LEVELS)[:, None]
    pairs = [levels[:, :, :-1] * GLCM_LEVELS + levels[:, :, 1:], levels[:, :-1, :] * GLCM_LEVELS + levels[:, 1:, :]]
    counts = np.zeros(n * GLCM_LEVELS * GLCM_LEVELS)
    for pair in pairs:
        counts += np.bincount((pair.reshape(n, -1) + offset).ravel(), minlength=counts.size)
    counts = counts.reshape(n, GLCM_LEVELS, GLCM_LEVELS)
    counts = counts + counts.transpose(0, 2, 1)           # symmetric
    p = counts / counts.sum((1, 2), keepdims=True)
    i, j = np.meshgrid(np.arange(GLCM_LEVELS), np.arange(GLCM_LEVELS), indexing="ij")
    contrast = (p * (i - j) ** 2).sum((1, 2))
    homogeneity = (p / (1.0 + np.abs(i - j))).sum((1, 2))
    energy = (p * p).sum((1, 2))
    mu = (p * i).sum((1, 2))
    var = (p * (i - mu[:, None, None]) ** 2).sum((1, 2))
    correlation = np.where(var > 1e-12, (p * (i - mu[:, None, None]) * (j - mu[:, None, None])).sum((1, 2))
                           / np.maximum(var, 1e-12), 1.0)
    entropy = -(p * np.log2(np.where(p > 0, p, 1.0))).sum((1, 2))
    return np.stack([contrast, homogeneity, energy, correlation, entropy], 1)


def tile_descriptors(tiles: np.ndarray) -> np.ndarray:
    """uint8 tiles (N, H, W, 3) -> float32 (N, 40) descriptors, in ``DESCRIPTOR_NAMES`` order.
    Tiles of side >= 128 px are first box-averaged 2 x 2."""
    tiles = np.asarray(tiles)
    if tiles.ndim != 4 or tiles.shape[-1] != 3 or tiles.dtype != np.uint8:
        raise ValueError(f"expected uint8 tiles (N, H, W, 3), got {tiles.dtype} {tiles.shape}")
    n = tiles.shape[0]
    if n == 0:
        return np.zeros((0, N_DESCRIPTORS), dtype=np.float32)
    if min(tiles.shape[1:3]) >= 2 * MIN_SIDE:
        # 2 x 2 box average: a quarter of the pixels, the same colour statistics; texture
        # is measured at twice the pixel size (a few µm), still cell scale.
        h2, w2 = tiles.shape[1] // 2 * 2, tiles.shape[2] // 2 * 2
        tiles = (tiles[:, :h2, :w2].reshape(n, h2 // 2, 2, w2 // 2, 2, 3).astype(np.uint16).sum((2, 4)) + 2) // 4
        tiles = tiles.astype(np.uint8)
    rgb = tiles.astype(np.float32) / 255.0
    out = []
    mean, sd = _mean_sd(rgb.reshape(n, -1, 3).transpose(0, 2, 1).reshape(n * 3, -1))
    out += [mean.reshape(n, 3), sd.reshape(n, 3)]
    od = -np.log10((tiles.astype(np.float32) + 1.0) / 256.0)
    mean, sd = _mean_sd(od.reshape(n, -1, 3).transpose(0, 2, 1).reshape(n * 3, -1))
    out += [mean.reshape(n, 3), sd.reshape(n, 3)]
    conc = od.reshape(n, -1, 3) @ _UNMIX.astype(np.float32)            # (N, pixels, 3): H, E, residual
    for k in (0, 1):
        c = conc[..., k]
        out.append(np.stack([c.mean(1), c.std(1), _percentile(c, 90)], 1))
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    sat = np.where(v > 0, delta / np.maximum(v, 1e-6), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(delta, 1e-6)
    hue = np.where(v == r, ((g - b) / safe) % 6, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) * (np.pi / 3)
    weight = (delta > 1e-6).reshape(n, -1).astype(np.float32)
    wsum = np.maximum(weight.sum(1), 1.0)
    hue = hue.reshape(n, -1)
    s_mean, s_sd = _mean_sd(sat)
    v_mean, v_sd = _mean_sd(v)
    out.append(np.stack([s_mean, s_sd, v_mean, v_sd, (np.cos(hue) * weight).sum(1) / wsum,
                         (np.sin(hue) * weight).sum(1) / wsum], 1))
    grey = (0.299 * r + 0.587 * g + 0.114 * b).astype(np.float32)
    out.append(np.stack([((v > 0.85) & (sat < 0.1)).reshape(n, -1).mean(1), (grey < 0.3).reshape(n, -1).mean(1),
                         (conc[..., 0] > conc[..., 1]).mean(1)], 1))
    flat = grey.reshape(n, -1)
    out.append(np.stack([flat.mean(1), flat.std(1), _percentile(flat, 10),
                         _percentile(flat, 90)], 1))
    gy, gx = np.gradient(grey, axis=(1, 2))
    grad = np.sqrt(gx * gx + gy * gy)
    lap = (np.abs(grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] + grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1]
                  - 4 * grey[:, 1:-1, 1:-1]))
    h4, w4 = grey.shape[1] // 4 * 4, grey.shape[2] // 4 * 4
    blocks = grey[:, :h4, :w4].reshape(n, h4 // 4, 4, w4 // 4, 4).std((2, 4))
    g_mean, g_sd = _mean_sd(grad)
    out.append(np.stack([g_mean, g_sd, lap.reshape(n, -1).mean(1), blocks.reshape(n, -1).mean(1)], 1))
    out.append(_glcm_features(grey))
    result = np.concatenate(out, 1).astype(np.float32)
    assert result.shape[1] == N_DESCRIPTORS
    return result
