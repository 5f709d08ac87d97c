"""The per-slide tile store ``results/tiles/{sample}.h5`` (docs/data_contracts.md).

Plain HDF5, readable with h5py alone::

    with h5py.File("results/tiles/S1.h5") as f:
        coords = f["coords"][:]                                  # (N, 2) level-0 x, y
        reasons = f["candidates/reject_reason"].asstr()[:]

Written atomically; datasets are created with ``track_times=False`` so that reruns
give identical datasets (only the root attribute ``created`` differs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .io import atomic_path

REJECT_REASONS = ("background", "low_tissue", "pen", "blur", "cap")
CANDIDATE_FLOATS = ("tissue_fraction", "sharpness", "pen_fraction", "background_fraction")
ROOT_ATTRS = ("sample", "slide_path", "slide_sha256", "vendor", "mpp", "mpp_source", "level0_width",
              "level0_height", "tile_um", "tile_px", "read_level", "read_downsample", "params",
              "code_version", "emo_version", "created")


@dataclass
class TileStore:
    coords: np.ndarray
    coords_attrs: dict
    candidates: dict[str, np.ndarray]
    mask: np.ndarray
    mask_attrs: dict
    attrs: dict
    stain: dict | None = None
    extra: dict = field(default_factory=dict)


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
            coords=f["coords"][:], coords_attrs=dict(f["coords"].attrs), candidates=candidates,
            mask=f["mask"][:], mask_attrs=dict(f["mask"].attrs), attrs=dict(f.attrs),
            stain=dict(f["stain"].attrs) if "stain" in f else None,
        )


def read_geometry_attrs(path: str | Path) -> dict:
    """Just what :class:`emo.tiling.TileReader` needs (cheap: no candidate arrays)."""
    with h5py.File(path, "r") as f:
        out = {key: f.attrs[key] for key in ("sample", "mpp", "tile_px", "read_level", "read_downsample",
                                             "slide_path")}
        out["coords"] = f["coords"][:]
        out["patch_size_level0"] = float(f["coords"].attrs["patch_size_level0"])
        out["stain"] = dict(f["stain"].attrs) if "stain" in f else None
    return out
