"""H&E-like rendering of a demo layout and writing it as a pyramidal Aperio SVS.

Each compartment has a periodic texture tile (``TEXTURE_PX`` square at the render
resolution) drawn once per slide with a Beer–Lambert stain model (haematoxylin and
eosin optical densities): nuclei are stamped from precomputed discs/ellipses. The
slide is then a single vectorised gather ``texture[label, y mod T, x mod T]`` over the
layout upsampled to the render grid, plus pen ink and a blurred region.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from scipy import ndimage

from .design import LABELS
from .layout import FINE_UM, Layout

log = logging.getLogger("emo")

TEXTURE_PX = 512
# Optical-density vectors of haematoxylin and eosin (Macenko et al.'s reference stain matrix).
OD_H = np.array([0.5626, 0.7201, 0.4062], dtype=np.float32)
OD_E = np.array([0.2159, 0.8012, 0.5581], dtype=np.float32)
OD_INK = {"blue": np.array([1.1, 0.55, 0.08], dtype=np.float32),
          "green": np.array([0.9, 0.15, 0.75], dtype=np.float32)}


def _periodic_noise(rng: np.random.Generator, size: int, sigma_px: float | tuple[float, float],
                    angle: float = 0.0) -> np.ndarray:
    """Seamlessly tileable Gaussian-filtered noise (unit variance), optionally anisotropic."""
    white = rng.standard_normal((size, size), dtype=np.float32)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    sy, sx = (sigma_px, sigma_px) if np.isscalar(sigma_px) else sigma_px
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = fx * ca + fy * sa, -fx * sa + fy * ca
    kernel = np.exp(-2 * math.pi ** 2 * ((u * sx) ** 2 + (v * sy) ** 2)).astype(np.float32)
    field = np.fft.irfft2(np.fft.rfft2(white) * kernel, s=(size, size)).astype(np.float32)
    field -= field.mean()
    return field / (field.std() + 1e-12)


def _stamp(canvas: np.ndarray, centres: np.ndarray, stamp: np.ndarray) -> None:
    """Max-composite ``stamp`` centred at each (y, x) of a periodic canvas."""
    size = canvas.shape[0]
    sh, sw = stamp.shape
    pad = max(sh, sw)
    big = np.zeros((size + 2 * pad, size + 2 * pad), dtype=canvas.dtype)
    big[pad:-pad, pad:-pad] = canvas
    for y, x in centres:
        y0, x0 = int(y) + pad - sh // 2, int(x) + pad - sw // 2
        region = big[y0:y0 + sh, x0:x0 + sw]
        np.maximum(region, stamp, out=region)
    # fold the margins back (periodic)
    out = big[pad:-pad, pad:-pad].copy()
    np.maximum(out[:pad, :], big[-pad:, pad:-pad], out=out[:pad, :])
    np.maximum(out[-pad:, :], big[:pad, pad:-pad], out=out[-pad:, :])
    np.maximum(out[:, :pad], big[pad:-pad, -pad:], out=out[:, :pad])
    np.maximum(out[:, -pad:], big[pad:-pad, :pad], out=out[:, -pad:])
    canvas[...] = out


def _ellipse(a_px: float, b_px: float, angle: float, soft: float = 1.0) -> np.ndarray:
    r = int(math.ceil(max(a_px, b_px))) + 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = xx * ca + yy * sa, -xx * sa + yy * ca
    d = np.sqrt((u / a_px) ** 2 + (v / b_px) ** 2)
    return np.clip((1.0 - d) * max(a_px, b_px) / soft + 0.5, 0.0, 1.0).astype(np.float32)


def _nuclei(rng, size, n, radius_px, radius_sd, elong=1.0, angle=None, n_shapes=12, mask=None):
    """A periodic canvas of nuclei (values in [0, 1]); ``mask`` restricts centres."""
    canvas = np.zeros((size, size), dtype=np.float32)
    if mask is not None:
        ys, xs = np.nonzero(mask)
        pick = rng.integers(0, ys.size, n) if ys.size else np.zeros(0, dtype=int)
        centres = np.stack([ys[pick], xs[pick]], axis=1) if ys.size else np.zeros((0, 2))
    else:
        centres = rng.uniform(0, size, (n, 2))
    shapes = []
    for _ in range(n_shapes):
        r = max(1.5, rng.normal(radius_px, radius_sd))
        theta = angle + rng.normal(0, 0.25) if angle is not None else rng.uniform(0, math.pi)
        shapes.append(_ellipse(r * elong, r / max(elong, 1e-6) ** 0.3 if elong > 1 else r * rng.uniform(0.8, 1.0),
                               theta))
    groups = rng.integers(0, n_shapes, len(centres))
    for k, stamp in enumerate(shapes):
        _stamp(canvas, centres[groups == k], stamp)
    return canvas


def _to_rgb(h: np.ndarray, e: np.ndarray, stain: tuple[float, float], extra_od: np.ndarray | None = None,
            rng=None) -> np.ndarray:
    h = h.astype(np.float32, copy=False)
    e = e.astype(np.float32, copy=False)
    od = h[..., None] * (OD_H * np.float32(stain[0])) + e[..., None] * (OD_E * np.float32(stain[1]))
    if extra_od is not None:
        od += extra_od
    np.negative(od, out=od)
    np.exp(od, out=od)
    od *= np.float32(250.0)
    if rng is not None:
        od += (2.0 * rng.standard_normal(h.shape, dtype=np.float32))[..., None]
    np.clip(od, 0, 255, out=od)
    return od.astype(np.uint8)


def textures(rng: np.random.Generator, um_per_px: float, site_stain: tuple[float, float] = (1.0, 1.0),
             tumour_grade: float = 0.5) -> np.ndarray:
    """(6, T, T, 3) uint8 textures indexed by label code. ``site_stain`` multiplies the
    slide's own haematoxylin / eosin draw (the site's lab and scanner); ``tumour_grade``
    (0..1) sets the tumour nuclei's size (x0.8..1.3) and chromatin density (x0.85..1.2)."""
    size = TEXTURE_PX
    um = 1.0 / um_per_px  # px per µm
    area_um2 = (size / um) ** 2
    stain = (float(rng.uniform(0.8, 1.2)) * site_stain[0], float(rng.uniform(0.8, 1.2)) * site_stain[1])
    out = np.zeros((6, size, size, 3), dtype=np.uint8)

    # background: glass with faint noise
    bg = 243.0 + 2.0 * _periodic_noise(rng, size, 20 * um) + 1.5 * rng.standard_normal((size, size), dtype=np.float32)
    out[LABELS["background"]] = np.clip(bg, 0, 255).astype(np.uint8)[..., None]

    fibre_angle = float(rng.uniform(0, math.pi))
    fibres = _periodic_noise(rng, size, (1.2 * um, 14 * um), fibre_angle)
    grain = _periodic_noise(rng, size, 0.8 * um)

    # stroma: pink collagen fibres, sparse elongated fibroblast nuclei
    e = 0.55 + 0.22 * np.tanh(fibres) + 0.05 * grain
    nuc = _nuclei(rng, size, int(area_um2 / 1500), 3.0 * um, 0.4 * um, elong=2.8, angle=fibre_angle)
    h = 0.04 + 1.0 * nuc
    out[LABELS["stroma"]] = _to_rgb(h, e, stain, rng=rng)

    # tumour: nests of epithelium (pink-purple cytoplasm, crowded large hyperchromatic nuclei)
    nests = _periodic_noise(rng, size, 18 * um) > -0.45
    nests = ndimage.binary_opening(nests, iterations=2)
    e = np.where(nests, 0.38 + 0.05 * grain, 0.55 + 0.2 * np.tanh(fibres))
    h_cyto = np.where(nests, 0.16, 0.03)
    grade_size = 0.8 + 0.5 * float(tumour_grade)
    nuc = _nuclei(rng, size, int(area_um2 * nests.mean() / (95 * grade_size ** 2)), 5.2 * um * grade_size,
                  0.9 * um * grade_size, mask=nests)
    chromatin = 0.85 + 0.25 * _periodic_noise(rng, size, 0.7 * um)
    h = h_cyto + 1.15 * (0.85 + 0.35 * float(tumour_grade)) * nuc * chromatin
    out[LABELS["tumour"]] = _to_rgb(h, e, stain, rng=rng)

    # lymphocyte aggregates: dense small dark round nuclei
    nuc = _nuclei(rng, size, int(area_um2 / 45), 3.1 * um, 0.3 * um)
    e = 0.22 + 0.05 * grain
    h = 0.06 + 1.45 * nuc
    out[LABELS["lymphocytes"]] = _to_rgb(h, e, stain, rng=rng)

    # fat: white polygonal vacuoles with thin pink membranes (periodic Voronoi)
    from scipy.spatial import cKDTree
    half = size // 2
    n_cells = max(4, int((size / um) ** 2 / (75.0 ** 2)))
    seeds = rng.uniform(0, half, (n_cells, 2))
    yy, xx = np.mgrid[0:half, 0:half]
    dist, _ = cKDTree(seeds, boxsize=half).query(np.stack([yy.ravel(), xx.ravel()], 1) + 0.5, k=2)
    edge = ((dist[:, 1] - dist[:, 0]) < 1.0 * um / 2).reshape(half, half)
    edge = np.repeat(np.repeat(edge, 2, 0), 2, 1).astype(np.float32)
    edge = ndimage.gaussian_filter(edge, 0.6, mode="wrap")
    e = 0.02 + 0.6 * np.clip(edge * 1.5, 0, 1)
    h = 0.01 + 0.1 * edge
    out[LABELS["fat"]] = _to_rgb(h, e, stain, rng=rng)

    # necrosis: pale eosinophilic debris, karyorrhectic fragments, ghost nuclei
    debris = _periodic_noise(rng, size, 1.5 * um)
    e = 0.32 + 0.12 * np.tanh(debris) + 0.06 * grain
    frag = _nuclei(rng, size, int(area_um2 / 250), 1.3 * um, 0.4 * um)
    ghost = _nuclei(rng, size, int(area_um2 / 400), 4.5 * um, 0.8 * um)
    h = 0.05 + 0.9 * frag + 0.15 * ghost
    out[LABELS["necrosis"]] = _to_rgb(h, e, stain, rng=rng)
    return out


def render(layout: Layout, um_per_px: float, strip_rows: int = 1024) -> np.ndarray:
    """RGB uint8 image of the slide at ``um_per_px`` (FINE_UM must be a multiple)."""
    factor = FINE_UM / um_per_px
    if abs(factor - round(factor)) > 1e-9:
        from ..errors import ConfigError
        raise ConfigError(f"config key 'demo.render_um_per_px': {um_per_px} must divide {FINE_UM}")
    factor = int(round(factor))
    rng = np.random.default_rng([layout.spec.seed, 1])
    tex = textures(rng, um_per_px, layout.spec.stain, layout.spec.tumour_grade)
    fh, fw = layout.labels.shape
    height, width = fh * factor, fw * factor
    image = np.empty((height, width, 4), dtype=np.uint8)
    flat = np.zeros(tex.shape[:3] + (4,), dtype=np.uint8)
    flat[..., :3] = tex
    flat = flat.reshape(-1).view(np.uint32)  # one 4-byte word per texel: a single gather per pixel
    oy, ox = rng.integers(0, TEXTURE_PX, 2)
    xs = ((np.arange(width, dtype=np.int32) + ox) % TEXTURE_PX)[None, :]
    out32 = image.reshape(height, width * 4).view(np.uint32)
    plane = TEXTURE_PX * TEXTURE_PX
    for y0 in range(0, height, strip_rows):
        y1 = min(height, y0 + strip_rows)
        fine = layout.labels[y0 // factor:(y1 + factor - 1) // factor].astype(np.int32) * plane
        lab = np.repeat(np.repeat(fine, factor, 0), factor, 1)[: y1 - y0]
        ys = (((np.arange(y0, y1, dtype=np.int32) + oy) % TEXTURE_PX) * TEXTURE_PX)[:, None]
        lab += ys
        lab += xs
        np.take(flat, lab, out=out32[y0:y1])
    image = image[..., :3]
    if layout.blur.any():
        ys, xs_ = np.nonzero(layout.blur)
        y0, y1 = ys.min() * factor, (ys.max() + 1) * factor
        x0, x1 = xs_.min() * factor, (xs_.max() + 1) * factor
        sigma = 3.0 / um_per_px
        region = image[y0:y1, x0:x1].astype(np.float32)
        image[y0:y1, x0:x1] = np.clip(ndimage.gaussian_filter(region, (sigma, sigma, 0)), 0, 255).astype(np.uint8)
    if layout.pen.any():
        ink = OD_INK[layout.pen_colour or "blue"]
        transmission = np.exp(-ink * float(rng.uniform(0.9, 1.3))).astype(np.float32)
        ys, xs_ = np.nonzero(layout.pen)
        for fy, fx in zip(ys, xs_):
            block = image[fy * factor:(fy + 1) * factor, fx * factor:(fx + 1) * factor]
            block[...] = (block * transmission).astype(np.uint8)
    return image


def aperio_description(width: int, height: int, mpp: float, tile: int, quality: int, name: str) -> str:
    mag = 40 if mpp <= 0.3 else 20
    return (f"Aperio Image Library v12.0.15 \n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) "
            f"JPEG/RGB Q={quality}|AppMag = {mag}|MPP = {mpp:.4f}|Filename = {name}|"
            f"Title = emo demo slide (synthetic)|StripeWidth = {tile}")


def write_svs(image: np.ndarray, path: str | Path, render_um_per_px: float, mpp: float, quality: int,
              name: str, tile: int = 256) -> tuple[int, int]:
    """Write ``image`` (at the render resolution) as a pyramidal Aperio SVS with level-0 ``mpp``."""
    import pyvips

    height, width = image.shape[:2]
    vimg = pyvips.Image.new_from_memory(np.ascontiguousarray(image).data, width, height, 3, "uchar")
    scale = render_um_per_px / mpp
    if abs(scale - 1.0) > 1e-9:
        vimg = vimg.resize(scale, kernel="linear")
    vimg = vimg.copy(interpretation="srgb")
    w0, h0 = vimg.width, vimg.height
    vimg.set_type(pyvips.GValue.gstr_type, "image-description",
                  aperio_description(w0, h0, mpp, tile, quality, name))
    vimg.tiffsave(str(path), tile=True, tile_width=tile, tile_height=tile, pyramid=True, compression="jpeg",
                  Q=quality, xres=1000.0 / mpp, yres=1000.0 / mpp, resunit="cm", bigtiff=False, strip=False)
    return w0, h0
