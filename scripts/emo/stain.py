"""Macenko stain normalisation (Macenko et al. 2009), adapted from HEnorm_python /
StainTools as in EMO.

Optical density ``OD = -log((I + 1) / Io)``; pixels with any channel OD < ``beta``
are dropped; the plane of the two main eigenvectors of the OD covariance holds the
stains; the extreme angles (``alpha`` and ``100 - alpha`` percentiles) give the H and
E vectors; concentrations are solved by least squares and their 99th percentiles
scaled to the reference maxima. The reference (HEnorm defaults) lives in
``resources/macenko_reference.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError

HENORM_REFERENCE = {
    "stain_matrix": [[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]],
    "max_concentrations": [1.9705, 1.0308],
    "Io": 240.0,
    "alpha": 1.0,
    "beta": 0.15,
}


@dataclass(frozen=True)
class StainParams:
    """A stain matrix (3 x 2, columns H and E, unit OD vectors) and the 99th
    percentile concentrations of H and E."""

    stain_matrix: np.ndarray
    max_concentrations: np.ndarray
    Io: float = 240.0
    alpha: float = 1.0
    beta: float = 0.15
    extra: dict = field(default_factory=dict, compare=False)


def load_reference(path: str | Path) -> StainParams:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"stain_normalisation.reference: {path} does not exist; point it at a JSON file "
                          "with 'stain_matrix' (3x2) and 'max_concentrations' (2), e.g. "
                          "resources/macenko_reference.json")
    try:
        data = json.loads(path.read_text())
        matrix = np.asarray(data["stain_matrix"], dtype=np.float64)
        maxc = np.asarray(data["max_concentrations"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"stain_normalisation.reference: {path} is not a valid Macenko reference "
                          f"({error}); it needs 'stain_matrix' (3x2) and 'max_concentrations' (2)") from None
    if matrix.shape != (3, 2) or maxc.shape != (2,):
        raise ConfigError(f"stain_normalisation.reference: {path}: stain_matrix must be 3x2 and "
                          f"max_concentrations length 2 (got {matrix.shape}, {maxc.shape})")
    return StainParams(matrix, maxc, float(data.get("Io", 240.0)), float(data.get("alpha", 1.0)),
                       float(data.get("beta", 0.15)))


def optical_density(rgb: np.ndarray, Io: float) -> np.ndarray:
    return -np.log((rgb.reshape(-1, 3).astype(np.float64) + 1.0) / Io)


def fit_stain(pixels: np.ndarray, Io: float = 240.0, alpha: float = 1.0, beta: float = 0.15) -> StainParams:
    """Fit the Macenko stain matrix and max concentrations from RGB pixels (any shape
    ending in 3). Raises ValueError when too few stained pixels are present."""
    od = optical_density(pixels, Io)
    od_hat = od[~np.any(od < beta, axis=1)]
    if od_hat.shape[0] < 100:
        raise ValueError(f"only {od_hat.shape[0]} stained pixels (OD >= {beta}); cannot fit a stain matrix")
    _, eigvecs = np.linalg.eigh(np.cov(od_hat.T))
    plane = eigvecs[:, 1:3]
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)   # deterministic sign
    projected = od_hat @ plane
    phi = np.arctan2(projected[:, 1], projected[:, 0])
    min_phi, max_phi = np.percentile(phi, alpha), np.percentile(phi, 100 - alpha)
    v_min = plane @ np.array([np.cos(min_phi), np.sin(min_phi)])
    v_max = plane @ np.array([np.cos(max_phi), np.sin(max_phi)])
    # Haematoxylin first: the vector with the larger red OD.
    he = np.stack([v_min, v_max], axis=1) if v_min[0] > v_max[0] else np.stack([v_max, v_min], axis=1)
    he = he * np.where(he.sum(axis=0) < 0, -1.0, 1.0)
    he = he / np.linalg.norm(he, axis=0, keepdims=True)
    conc = np.linalg.lstsq(he, od.T, rcond=None)[0]
    max_c = np.array([np.percentile(conc[0], 99), np.percentile(conc[1], 99)])
    return StainParams(he, max_c, Io, alpha, beta)


def normalise(rgb: np.ndarray, source: StainParams, reference: StainParams) -> np.ndarray:
    """Map an RGB image stained like ``source`` to the ``reference`` stain appearance."""
    shape = rgb.shape
    od = optical_density(rgb, source.Io)
    conc = np.linalg.lstsq(source.stain_matrix, od.T, rcond=None)[0]
    scale = reference.max_concentrations / np.maximum(source.max_concentrations, 1e-6)
    conc = conc * scale[:, None]
    out = reference.Io * np.exp(-(reference.stain_matrix @ conc))
    return np.clip(np.rint(out.T), 0, 255).astype(np.uint8).reshape(shape)


def to_attrs(params: StainParams, reference: StainParams, n_tiles: int, reference_path: str) -> dict:
    return {
        "method": "macenko",
        "stain_matrix": np.asarray(params.stain_matrix, dtype=np.float64),
        "max_concentrations": np.asarray(params.max_concentrations, dtype=np.float64),
        "reference_stain_matrix": np.asarray(reference.stain_matrix, dtype=np.float64),
        "reference_max_concentrations": np.asarray(reference.max_concentrations, dtype=np.float64),
        "reference_path": str(reference_path),
        "Io": float(params.Io), "alpha": float(params.alpha), "beta": float(params.beta),
        "n_tiles": int(n_tiles),
    }


def from_attrs(attrs) -> tuple[StainParams, StainParams]:
    """(slide stain, reference) from a tile store's ``/stain`` attributes."""
    io, alpha, beta = float(attrs["Io"]), float(attrs["alpha"]), float(attrs["beta"])
    source = StainParams(np.asarray(attrs["stain_matrix"]), np.asarray(attrs["max_concentrations"]),
                         io, alpha, beta)
    reference = StainParams(np.asarray(attrs["reference_stain_matrix"]),
                            np.asarray(attrs["reference_max_concentrations"]), io, alpha, beta)
    return source, reference
