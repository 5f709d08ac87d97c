"""Fixtures for the feature-extraction tests: tiny synthetic tile sources and tile stores."""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np


class ArrayTiles:
    """Indexable, picklable tile source: deterministic H&E-ish uint8 tiles from a seed."""

    def __init__(self, n: int, tile_px: int = 224, seed: int = 0):
        self.n, self.tile_px, self.seed = n, tile_px, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        base = np.array([200, 120, 190], dtype=np.float64)  # pink/purple
        noise = rng.normal(0, 30, size=(self.tile_px, self.tile_px, 3))
        yy, xx = np.mgrid[0:self.tile_px, 0:self.tile_px]
        blobs = 40 * np.sin(xx / (5 + i % 7))[..., None] * np.cos(yy / (3 + i % 5))[..., None]
        return np.clip(base + noise + blobs, 0, 255).astype(np.uint8)


class SlowTiles(ArrayTiles):
    """ArrayTiles that sleep per tile and touch ``marker`` once tile ``mark_at`` is read
    (lets a test kill an extraction mid-way)."""

    def __init__(self, n: int, tile_px: int, seed: int, delay: float, marker: str, mark_at: int):
        super().__init__(n, tile_px, seed)
        self.delay, self.marker, self.mark_at = delay, marker, mark_at

    def __getitem__(self, i: int) -> np.ndarray:
        if i >= self.mark_at:
            Path(self.marker).touch()
        time.sleep(self.delay)
        return super().__getitem__(i)


TILING_PARAMS = {"tile_um": 271.0, "tile_px": 224, "min_tissue_fraction": 0.5, "seed": 0}


def make_tile_store(path: Path, n: int, tile_px: int = 224, sample: str = "S1", tile_um: float | None = None) -> Path:
    """A minimal tile store with what feature extraction reads (docs/data_contracts.md).
    ``tile_um`` given: also the root attribute (as real stores have); else only in params."""
    path.parent.mkdir(parents=True, exist_ok=True)
    coords = np.array([[x * 598, y * 598] for y in range(n) for x in range(1)][:n], dtype=np.int64).reshape(n, 2)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("coords", data=coords)
        ds.attrs["patch_level"] = 0
        ds.attrs["patch_size"] = 598
        ds.attrs["patch_size_level0"] = 598.2
        ds.attrs["downsample"] = 2.67
        f.attrs["sample"] = sample
        f.attrs["tile_px"] = tile_px
        params = dict(TILING_PARAMS, tile_px=tile_px)
        if tile_um is not None:
            f.attrs["tile_um"] = float(tile_um)
            params["tile_um"] = float(tile_um)
        f.attrs["params"] = json.dumps(params, sort_keys=True)
        f.attrs["created"] = "2026-01-01T00:00:00+00:00"
    return path
