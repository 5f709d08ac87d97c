"""Compartment layout of a demo slide (the planted truth), on a coarse grid.

The layout is computed on a fine grid of ``FINE_UM`` µm/px: a tissue mask (a wobbly
ellipse) split into compartments by the arg-max of smooth random fields, whose
correlation length (the slide's mixing scale) sets how finely the compartments mix.
Pen strokes and an out-of-focus region are placed as masks on the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .design import COMPARTMENTS, SlideSpec

FINE_UM = 4.0  # µm per layout pixel


@dataclass
class Layout:
    spec: SlideSpec
    labels: np.ndarray  # uint8 (h, w) at FINE_UM, 0 = background
    pen: np.ndarray  # bool (h, w)
    blur: np.ndarray  # bool (h, w)
    pen_colour: str

    @property
    def fractions(self) -> dict[str, float]:
        tissue = self.labels > 0
        n = max(int(tissue.sum()), 1)
        counts = np.bincount(self.labels.ravel(), minlength=len(COMPARTMENTS) + 1)
        return {c: float(counts[i + 1] / n) for i, c in enumerate(COMPARTMENTS)}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Unit-variance Gaussian-smoothed noise; computed on a grid coarsened by ~sigma/3
    and interpolated back (fast for long correlation lengths)."""
    step = max(1, int(sigma_px // 3))
    small = (shape[0] // step + 2, shape[1] // step + 2)
    field = ndimage.gaussian_filter(rng.standard_normal(small).astype(np.float32), sigma_px / step, mode="wrap")
    if step > 1:
        field = ndimage.zoom(field, step, order=1, prefilter=False)
    field = np.ascontiguousarray(field[: shape[0], : shape[1]])
    field -= field.mean()
    field /= field.std() + 1e-12
    return field


def make_layout(spec: SlideSpec) -> Layout:
    rng = np.random.default_rng(spec.seed)
    h, w = int(round(spec.height_um / FINE_UM)), int(round(spec.width_um / FINE_UM))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2 + rng.uniform(-0.04, 0.04) * h, w / 2 + rng.uniform(-0.04, 0.04) * w
    ry, rx = h * rng.uniform(0.36, 0.43), w * rng.uniform(0.36, 0.43)
    ellipse = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    wobble = _smooth_field(rng, (h, w), 120.0 / FINE_UM)
    tissue = (ellipse + 0.18 * wobble) < 1.0
    tissue = ndimage.binary_opening(tissue, iterations=2)

    sigma = spec.mixing_um / FINE_UM
    fields = np.stack([_smooth_field(rng, (h, w), sigma * s) for s in (1.0, 1.0, 0.6, 0.8, 0.7)])
    target = np.array([spec.composition[c] for c in COMPARTMENTS])
    bias = np.log(np.maximum(target, 1e-4)) * 0.8
    inside = tissue.ravel()
    flat = fields.reshape(len(COMPARTMENTS), -1)[:, inside]
    for _ in range(12):  # adjust the biases so the composition approaches the target
        lab = np.argmax(flat + bias[:, None], axis=0)
        frac = np.bincount(lab, minlength=len(COMPARTMENTS)) / max(lab.size, 1)
        bias += 0.6 * (np.log(np.maximum(target, 1e-4)) - np.log(np.maximum(frac, 1e-4)))
    lab = np.argmax(flat + bias[:, None], axis=0)
    labels = np.zeros(h * w, dtype=np.uint8)
    labels[inside] = lab.astype(np.uint8) + 1
    labels = labels.reshape(h, w)

    pen = np.zeros((h, w), dtype=bool)
    pen_colour = ""
    if spec.pen:
        pen_colour = "blue" if rng.random() < 0.5 else "green"
        # a quadratic Bézier stroke near one side of the tissue
        side = rng.integers(4)
        t = np.linspace(0, 1, 200)[:, None]
        if side in (0, 1):  # horizontal stroke near top/bottom
            y0 = h * (0.12 if side == 0 else 0.88)
            p0, p2 = np.array([y0, w * 0.2]), np.array([y0 + rng.uniform(-0.05, 0.05) * h, w * 0.7])
        else:
            x0 = w * (0.12 if side == 2 else 0.88)
            p0, p2 = np.array([h * 0.2, x0]), np.array([h * 0.7, x0 + rng.uniform(-0.05, 0.05) * w])
        p1 = (p0 + p2) / 2 + rng.uniform(-0.12, 0.12, 2) * np.array([h, w])
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
        stroke = np.zeros((h, w), dtype=bool)
        idx = np.clip(np.round(curve).astype(int), 0, [h - 1, w - 1])
        stroke[idx[:, 0], idx[:, 1]] = True
        width_px = rng.uniform(50, 90) / FINE_UM
        pen = ndimage.distance_transform_edt(~stroke) < width_px / 2

    blur = np.zeros((h, w), dtype=bool)
    if spec.blur:
        ys, xs = np.nonzero(tissue & ~pen)
        if ys.size:
            k = rng.integers(ys.size)
            half = int(rng.uniform(450, 700) / FINE_UM / 2)
            y0, x0 = max(ys[k] - half, 0), max(xs[k] - half, 0)
            blur[y0:ys[k] + half, x0:xs[k] + half] = True
    return Layout(spec, labels, pen, blur, pen_colour)


def block_mode(labels: np.ndarray, factor: int, n_labels: int) -> np.ndarray:
    """Majority label over ``factor`` x ``factor`` blocks (sizes must divide)."""
    h, w = labels.shape
    counts = np.zeros((n_labels, h // factor, w // factor), dtype=np.int32)
    trimmed = labels[: h // factor * factor, : w // factor * factor]
    for value in range(n_labels):
        counts[value] = (trimmed == value).reshape(h // factor, factor, w // factor, factor).sum(axis=(1, 3))
    return counts.argmax(axis=0).astype(np.uint8)


def block_any(mask: np.ndarray, factor: int) -> np.ndarray:
    h, w = mask.shape
    trimmed = mask[: h // factor * factor, : w // factor * factor]
    return trimmed.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)) >= 0.5


def truth_arrays(layout: Layout, truth_um_per_px: float) -> dict[str, np.ndarray]:
    """The per-slide truth written to ``truth/{sample}.npz``."""
    factor = int(round(truth_um_per_px / FINE_UM))
    if factor < 1 or abs(factor * FINE_UM - truth_um_per_px) > 1e-9:
        from ..errors import ConfigError
        raise ConfigError(f"config key 'demo.truth_um_per_px': {truth_um_per_px} must be a multiple of {FINE_UM}")
    spec = layout.spec
    labels = block_mode(layout.labels, factor, len(COMPARTMENTS) + 1) if factor > 1 else layout.labels
    pen = block_any(layout.pen, factor) if factor > 1 else layout.pen
    blur = block_any(layout.blur, factor) if factor > 1 else layout.blur
    fractions = layout.fractions
    return {
        "sample": np.array(spec.sample),
        "patient": np.array(spec.patient),
        "cohort": np.array(spec.cohort),
        "labels": labels.astype(np.uint8),
        "pen": pen.astype(np.uint8),
        "blur": blur.astype(np.uint8),
        "um_per_px": np.array(float(truth_um_per_px)),
        "mpp": np.array(spec.mpp),
        "level0_width": np.array(int(round(spec.width_um / spec.mpp))),
        "level0_height": np.array(int(round(spec.height_um / spec.mpp))),
        "compartments": np.array(COMPARTMENTS),
        "fractions": np.array([fractions[c] for c in COMPARTMENTS]),
        "tissue_um2": np.array(float((layout.labels > 0).sum()) * FINE_UM ** 2),
        "mixing_um": np.array(spec.mixing_um),
        "pen_colour": np.array(layout.pen_colour),
    }
