"""The per-slide tile store ``results/tiles/{sample}.h5`` (docs/data_contracts.md, "Tile store").

Plain HDF5, readable with h5py alone::

    with h5py.File("results/tiles/S1.h5") as f:
        coords = f["coords"][:]                                  # (N, 2) level-0 x, y
        reasons = f["candidates/reject_reason"].asstr()[:]

Written atomically; datasets are created with ``track_times=False`` so that reruns
give identical datasets (only the root attribute ``created`` differs).

- :class:`TileStore` / :func:`write_tile_store` / :func:`read_tile_store`: the whole store.
- :class:`TileStoreHeader` / :func:`read_tile_store_header`: accepted coords and the
  attributes only (what reading tiles and feature extraction need; no candidate arrays).
- :func:`read_tile_store_attrs`: root attributes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..io import atomic_path
from ._h5 import read_attrs

REJECT_REASONS = ("background", "low_tissue", "pen", "blur", "cap")
CANDIDATE_FLOATS = ("tissue_fraction", "sharpness", "pen_fraction", "background_fraction")
ROOT_ATTRS = ("sample", "slide_path", "slide_sha256", "vendor", "mpp", "mpp_source", "level0_width",
              "level0_height", "tile_um", "tile_px", "read_level", "read_downsample", "params",
              "code_version", "emo_version", "created")


@dataclass
class TileStore:
    coords: np.ndarray                  # /coords (N, 2) int64, accepted tiles
    coords_attrs: dict                  # /coords attrs (patch_level, patch_size, patch_size_level0, downsample)
    candidates: dict[str, np.ndarray]   # /candidates/*: coords, reject_reason, accepted, CANDIDATE_FLOATS
    mask: np.ndarray                    # /mask (h, w) uint8
    mask_attrs: dict                    # /mask attrs (downsample, level, saturation_threshold, glass_value, white_min_value)
    attrs: dict                         # root attrs (ROOT_ATTRS)
    stain: dict | None = None           # /stain attrs (Macenko fit) or None
    extra: dict = field(default_factory=dict)


@dataclass
class TileStoreHeader:
    coords: np.ndarray                  # /coords (N, 2) int64
    coords_attrs: dict                  # /coords attrs
    attrs: dict                         # root attrs
    stain: dict | None                  # /stain attrs or None


def _dataset(group: h5py.Group, name: str, data: np.ndarray, **kwargs) -> h5py.Dataset:
    return group.create_dataset(name, data=data, track_times=False, **kwargs)


def _attr_value(value: Any):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None:
        return ""
    return value


def write_tile_store(path: str | Path, store: TileStore) -> None:
    """Write ``store`` to ``path`` atomically."""
    n = len(store.candidates["coords"])
    reasons = np.asarray(store.candidates["reject_reason"], dtype=object)
    bad = sorted({r for r in reasons if r not in ("",) + REJECT_REASONS})
    if bad:
        raise ValueError(f"unknown reject reasons {bad}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            coords = _dataset(f, "coords", np.asarray(store.coords, dtype=np.int64).reshape(-1, 2))
            for key, value in store.coords_attrs.items():
                coords.attrs[key] = _attr_value(value)
            cand = f.create_group("candidates", track_order=False)
            _dataset(cand, "coords", np.asarray(store.candidates["coords"], dtype=np.int64).reshape(-1, 2))
            for key in CANDIDATE_FLOATS:
                _dataset(cand, key, np.asarray(store.candidates[key], dtype=np.float32).reshape(n))
            _dataset(cand, "reject_reason", reasons.astype(str).astype(object) if n else
                     np.zeros(0, dtype=object), dtype=h5py.string_dtype("utf-8"))
            _dataset(cand, "accepted", np.asarray([r == "" for r in reasons], dtype=bool).reshape(n))
            mask = _dataset(f, "mask", np.asarray(store.mask, dtype=np.uint8), compression="gzip",
                            compression_opts=4, shuffle=True)
            for key, value in store.mask_attrs.items():
                mask.attrs[key] = _attr_value(value)
            if store.stain is not None:
                stain = f.create_group("stain", track_order=False)
                for key, value in store.stain.items():
                    stain.attrs[key] = _attr_value(value)
            for key in ROOT_ATTRS:
                if key not in store.attrs:
                    raise ValueError(f"tile store attribute {key!r} missing")
            for key, value in store.attrs.items():
                f.attrs[key] = _attr_value(value)


def read_tile_store(path: str | Path) -> TileStore:
    """Read a whole tile store into memory (small: coords, QC metrics and mask)."""
    with h5py.File(path, "r") as f:
        cand = f["candidates"]
        candidates = {"coords": cand["coords"][:], "reject_reason": cand["reject_reason"].asstr()[:],
                      "accepted": cand["accepted"][:]}
        for key in CANDIDATE_FLOATS:
            candidates[key] = cand[key][:]
        return TileStore(
            coords=f["coords"][:], coords_attrs=read_attrs(f["coords"]), candidates=candidates,
            mask=f["mask"][:], mask_attrs=read_attrs(f["mask"]), attrs=read_attrs(f),
            stain=read_attrs(f["stain"]) if "stain" in f else None,
        )


def read_tile_store_header(path: str | Path) -> TileStoreHeader:
    """Accepted coords, their attrs, root attrs and /stain (cheap: no candidate arrays, no mask)."""
    with h5py.File(path, "r") as f:
        return TileStoreHeader(coords=f["coords"][:], coords_attrs=read_attrs(f["coords"]), attrs=read_attrs(f),
                               stain=read_attrs(f["stain"]) if "stain" in f else None)


def read_tile_store_attrs(path: str | Path) -> dict:
    """Root attributes only (sample, mpp, level0_width, ...)."""
    with h5py.File(path, "r") as f:
        return read_attrs(f)


__all__ = ["CANDIDATE_FLOATS", "REJECT_REASONS", "ROOT_ATTRS", "TileStore", "TileStoreHeader", "read_tile_store",
           "read_tile_store_attrs", "read_tile_store_header", "write_tile_store"]
