"""Our tile and feature stores in the layouts of the tools users already run.

* **CLAM** (Lu et al. 2021, mahmoodlab/CLAM): ``patches/{slide}.h5`` (``/coords`` level-0
  top-left, attrs ``patch_level``, ``patch_size`` at that level, ``downsample`` = the
  level's (x, y) downsample, ``level_dim``, ``downsampled_level_dim``, ``name``,
  ``save_path``), read by ``Whole_Slide_Bag_FP`` and stitched by ``StitchCoords``;
  ``h5_files/{slide}.h5`` (``/features``, ``/coords``) and ``pt_files/{slide}.pt`` (a
  float32 tensor, what CLAM's MIL training loads by default).
* **STAMP** (KatherLab): ``{slide}.h5`` with ``/feats`` (N, D), ``/coords`` in µm (top-left)
  and attrs ``unit`` = "um", ``tile_size_um``, ``tile_size_px``, ``extractor``,
  ``feat_type`` = "tile".
* **TRIDENT** (mahmoodlab): ``patches/{slide}_patches.h5`` and ``features_{encoder}/{slide}.h5``
  whose ``/coords`` attrs are ``patch_size`` (px at the target magnification),
  ``patch_size_level0``, ``level0_magnification``, ``target_magnification``, ``overlap``,
  ``name``, ``savetodir``.

Our own stores keep their names and meanings (docs/data_contracts.md); in particular the
tile store's ``downsample`` attr (level-0 px per output px) differs from CLAM's, which is
why CLAM gets its own patch file rather than ours. Every exported file also carries our
provenance (``emo_sample``, ``emo_encoder``, ``emo_mpp``, ``code_version`` and
``params``: the format, encoder, source stores and encoder weights hash).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from .io import atomic_path
from .stores.features import read_feature_store
from .stores.tiles import read_tile_store_header

FORMATS = ("clam", "stamp", "trident")
EXPORT_ROOT = "results/export"   # relative to the working directory
# Objective power of a level-0 resolution: the usual 10 µm / mpp (0.25 µm/px -> 40x).
MICRONS_AT_1X = 10.0


def export_paths(root: str | Path, fmt: str, encoder: str, sample: str) -> dict[str, Path]:
    """The files ``fmt`` gets for one slide under ``root`` (results/export)."""
    base = Path(root) / fmt / encoder
    if fmt == "clam":
        return {"patches": base / "patches" / f"{sample}.h5", "h5": base / "h5_files" / f"{sample}.h5",
                "pt": base / "pt_files" / f"{sample}.pt"}
    if fmt == "stamp":
        return {"features": base / f"{sample}.h5"}
    if fmt == "trident":
        return {"patches": base / "patches" / f"{sample}_patches.h5",
                "features": base / f"features_{encoder}" / f"{sample}.h5"}
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def _provenance(fmt: str, sample: str, encoder: str, code_version: str, mpp: float, source: Mapping) -> dict:
    """Our provenance, beside the peer's own attributes (none of theirs is named so)."""
    return {"emo_sample": sample, "emo_encoder": encoder, "emo_mpp": float(mpp), "code_version": code_version,
            "params": json.dumps({"format": fmt, "encoder": encoder, "source": dict(source)}, sort_keys=True)}


def _write_h5(path: Path, datasets: Mapping[str, np.ndarray], coords_attrs: Mapping | None = None,
              root_attrs: Mapping | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data, track_times=False)
        for key, value in (coords_attrs or {}).items():
            f["coords"].attrs[key] = value
        for key, value in (root_attrs or {}).items():
            f.attrs[key] = value


def clam_patch_attrs(sample: str, tile_attrs: Mapping, coords_attrs: Mapping, save_path: str) -> dict:
    """CLAM's coords attrs: patches are read at level 0, ``patch_size`` level-0 px."""
    dims = np.array([int(tile_attrs["level0_width"]), int(tile_attrs["level0_height"])], dtype=np.int64)
    return {"patch_level": 0, "patch_size": int(coords_attrs["patch_size"]),
            "downsample": np.array([1.0, 1.0]), "level_dim": dims, "downsampled_level_dim": dims,
            "name": sample, "save_path": save_path}


def stamp_coords_um(coords: np.ndarray, coords_attrs: Mapping, tile_um: float, mpp: float) -> np.ndarray:
    """Tile top-left corners in µm, as STAMP tiles: on its grid of ``tile_um``.

    Our level-0 coords are the grid's ``k * patch_size_level0`` rounded to whole pixels;
    times the mpp they fall up to half a pixel short of ``k * tile_um``, which STAMP's
    ``floor(coords_um / tile_size_um)`` would put into the previous grid cell. On the
    grid, the exact ``k * tile_um`` is written; coords off the grid (none from our
    tiling) are converted as they are."""
    size0 = float(coords_attrs["patch_size_level0"])
    cells = np.rint(coords / size0)
    if np.all(np.abs(cells * size0 - coords) <= 0.5 + 1e-9):
        return cells * tile_um
    return coords.astype(np.float64) * mpp


def trident_coords_attrs(sample: str, tile_attrs: Mapping, coords_attrs: Mapping, save_dir: str) -> dict:
    mpp = float(tile_attrs["mpp"])
    tile_px = int(tile_attrs["tile_px"])
    size0 = float(coords_attrs["patch_size_level0"])
    return {"patch_size": tile_px, "patch_size_level0": int(round(size0)),
            "level0_magnification": round(MICRONS_AT_1X / mpp, 3),
            "target_magnification": round(MICRONS_AT_1X / (size0 * mpp / tile_px), 3),
            "overlap": 0, "name": sample, "savetodir": save_dir}


def export_slide(fmt: str, sample: str, tile_store: str | Path, feature_store: str | Path, root: str | Path,
                 encoder: str, code_version: str = "") -> dict[str, Path]:
    """Write slide ``sample`` in format ``fmt``; returns the files written."""
    header = read_tile_store_header(tile_store)
    store = read_feature_store(feature_store)
    if not np.array_equal(store.coords, header.coords):
        raise ValueError(f"{sample}: feature store {feature_store} and tile store {tile_store} hold different "
                         "tiles; rerun feature extraction")
    paths = export_paths(root, fmt, encoder, sample)
    coords = np.asarray(store.coords, dtype=np.int64)
    features = np.asarray(store.features, dtype=np.float32)
    mpp = float(header.attrs["mpp"])
    provenance = _provenance(fmt, sample, encoder, code_version, mpp,
                             {"tile_store": str(tile_store), "feature_store": str(feature_store),
                              "weights_sha256": str(store.attrs.get("weights_sha256", ""))})
    if fmt == "clam":
        attrs = clam_patch_attrs(sample, header.attrs, header.coords_attrs, str(paths["patches"].parent))
        _write_h5(paths["patches"], {"coords": coords}, attrs, provenance)
        _write_h5(paths["h5"], {"features": features, "coords": coords}, attrs, provenance)
        import torch  # only for the .pt bags

        paths["pt"].parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(paths["pt"]) as tmp:
            torch.save(torch.from_numpy(features), tmp)
    elif fmt == "stamp":
        tile_um = float(header.attrs["tile_um"])
        _write_h5(paths["features"], {"feats": features, "coords": stamp_coords_um(coords, header.coords_attrs, tile_um,
                                                                                 mpp)},
                  None, {"unit": "um", "tile_size_um": tile_um, "tile_size_px": int(header.attrs["tile_px"]),
                         "extractor": encoder, "feat_type": "tile", "code_hash": code_version[:8], **provenance})
    elif fmt == "trident":
        attrs = trident_coords_attrs(sample, header.attrs, header.coords_attrs, str(paths["patches"].parent))
        _write_h5(paths["patches"], {"coords": coords}, attrs, provenance)
        _write_h5(paths["features"], {"features": features, "coords": coords}, attrs,
                  provenance)
    return paths
