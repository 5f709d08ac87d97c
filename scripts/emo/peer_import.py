"""Feature stores from features a peer tool already computed (TRIDENT, CLAM, STAMP), so
that users with existing features need not recompute them (docs/interop.md, "Import").

Each peer's per-slide file, as the peer documents it:

* **TRIDENT**: ``features_<encoder>/{slide}.h5``: ``/features`` (N, D), ``/coords`` (N, 2)
  level-0 top-left px; coords attrs ``patch_size`` (px at the target magnification),
  ``patch_size_level0``, ``level0_magnification``, ``target_magnification``.
* **CLAM**: ``h5_files/{slide}.h5``: ``/coords`` level-0 top-left px, attrs ``patch_level``,
  ``patch_size`` (px at that level), and ``/features``; or ``pt_files/{slide}.pt`` (a (N, D)
  tensor in the order of the h5 file's coords) when the h5 file has no features.
* **STAMP**: ``{slide}.h5``: ``/feats`` (N, D), ``/coords`` top-left in µm (attr ``unit`` =
  "um"), attrs ``tile_size_um``, ``tile_size_px``.

:func:`read_peer_features` maps each to our convention (level-0 top-left int64 px, the
tile side in level-0 px and µm) and refuses, naming the slide, file and fix: a missing
file, missing unit / magnification / size attributes, features and coords of different
lengths, and coords outside the slide. :func:`check_feature_dims` refuses slides whose
feature widths differ. :func:`write_imported_feature_store` writes our feature store
(docs/data_contracts.md): the peer's features and mapped coords, ``/colour_texture`` of the
tiles read from the slide at those coords, and provenance (format, source files and their
sha256, the peer's attributes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import h5py
import numpy as np

from .errors import InputTableError
from .stores._h5 import as_str

IMPORT_FORMATS = ("trident", "clam", "stamp")
# Objective power of a level-0 resolution: 10 µm / mpp (0.25 µm/px -> 40x), as the export.
MICRONS_AT_1X = 10.0
# Rounding slack when µm coords become level-0 px (STAMP): half a pixel.
COORD_SLACK_PX = 0.5


class PeerImportError(InputTableError):
    """A peer's feature file cannot be imported; the message names slide, file and fix."""


@dataclass
class PeerFeatures:
    sample: str
    features: np.ndarray          # float32 (N, D)
    coords: np.ndarray            # int64 (N, 2): level-0 top-left px
    patch_size_level0: float      # tile side in level-0 px
    tile_px: int                  # the peer's tile side in px (at its magnification)
    fmt: str
    files: dict[str, str] = field(default_factory=dict)       # role -> path
    peer_attrs: dict = field(default_factory=dict)             # the peer's coords / root attrs

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])


def peer_files(fmt: str, folder: str | Path, sample: str) -> dict[str, Path]:
    """The files of ``sample`` in a peer's output folder (existing or not): TRIDENT's
    ``features_<encoder>`` folder, CLAM's feature folder (holding ``h5_files``/``pt_files``),
    STAMP's feature folder."""
    folder = Path(folder)
    if fmt == "trident":
        return {"h5": folder / f"{sample}.h5"}
    if fmt == "clam":
        return {"h5": folder / "h5_files" / f"{sample}.h5", "pt": folder / "pt_files" / f"{sample}.pt"}
    if fmt == "stamp":
        return {"h5": folder / f"{sample}.h5"}
    raise PeerImportError(f"unknown feature import format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}")


def check_peer_files(fmt: str, folder: str | Path, samples: Iterable[str]) -> None:
    """Every slide of the sample sheet has its peer file (before any slide is read)."""
    missing = [s for s in samples if not peer_files(fmt, folder, s)["h5"].is_file()]
    if missing:
        example = peer_files(fmt, folder, missing[0])["h5"]
        raise PeerImportError(
            f"{len(missing)} slide(s) of the sample sheet have no {fmt} feature file in {folder}: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} (expected e.g. {example}). "
            "Compute their features with the peer tool, point the import at the folder holding them, or "
            "remove the slides from the sample sheet")


def _attrs(obj) -> dict:
    out = {}
    for key, value in obj.attrs.items():
        if isinstance(value, (bytes, str)):
            out[key] = as_str(value)
        elif isinstance(value, np.ndarray):
            out[key] = value.tolist()
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def _need(attrs: Mapping, keys: Iterable[str], what: str, sample: str, path: Path, fix: str) -> None:
    absent = [k for k in keys if k not in attrs]
    if absent:
        raise PeerImportError(f"slide {sample!r}: {what} of {path} lacks attribute(s) {', '.join(absent)}, so the "
                              f"tiles' position and size on the slide are unknown. {fix}")


def _read_trident(path: Path, sample: str, mpp: float) -> tuple:
    with h5py.File(path, "r") as f:
        _check_datasets(f, ("features", "coords"), sample, path)
        attrs = _attrs(f["coords"])
        _need(attrs, ("patch_size", "patch_size_level0", "level0_magnification", "target_magnification"),
              "/coords", sample, path, "Re-export the features with TRIDENT (it writes these attributes)")
        features, coords = f["features"][:], f["coords"][:]
    magnification = MICRONS_AT_1X / mpp
    if not np.isclose(float(attrs["level0_magnification"]), magnification, rtol=0.05):
        raise PeerImportError(
            f"slide {sample!r}: {path} was tiled at level-0 magnification {attrs['level0_magnification']}x, but "
            f"the slide's mpp {mpp:g} µm/px is {magnification:.3g}x: the features belong to another scan or "
            "another mpp. Give the mpp TRIDENT used in the sample sheet's 'mpp' column, or recompute the features")
    return features, coords, float(attrs["patch_size_level0"]), int(attrs["patch_size"]), attrs


def _read_clam(files: Mapping[str, Path], sample: str, level_downsamples) -> tuple:
    path = files["h5"]
    with h5py.File(path, "r") as f:
        _check_datasets(f, ("coords",), sample, path)
        attrs = _attrs(f["coords"])
        _need(attrs, ("patch_size", "patch_level"), "/coords", sample, path,
              "Use the h5 file CLAM's create_patches_fp.py / extract_features_fp.py wrote")
        coords = f["coords"][:]
        features = f["features"][:] if "features" in f else None
    if features is None:
        if not files["pt"].is_file():
            raise PeerImportError(f"slide {sample!r}: {path} has no /features and there is no {files['pt']}; "
                                  "run CLAM's extract_features_fp.py for this slide")
        import torch

        features = torch.load(files["pt"], map_location="cpu", weights_only=True).numpy()
    level = int(attrs["patch_level"])
    if not 0 <= level < len(level_downsamples):
        raise PeerImportError(f"slide {sample!r}: {path} says patch_level {level}, but the slide has levels "
                              f"0..{len(level_downsamples) - 1}: the features belong to another scan")
    size0 = float(attrs["patch_size"]) * float(level_downsamples[level])
    return features, coords, size0, int(attrs["patch_size"]), attrs


def _read_stamp(path: Path, sample: str, mpp: float) -> tuple:
    with h5py.File(path, "r") as f:
        _check_datasets(f, ("feats", "coords"), sample, path)
        attrs = {**_attrs(f), **{f"coords.{k}": v for k, v in _attrs(f["coords"]).items()}}
        unit = attrs.get("unit", attrs.get("coords.unit"))
        if unit is None:
            raise PeerImportError(f"slide {sample!r}: {path} has no 'unit' attribute, so its coords could be µm or "
                                  "pixels. Re-extract with a STAMP version that writes unit = 'um' (STAMP >= 2)")
        if unit not in ("um", "µm", "micron", "microns"):
            raise PeerImportError(f"slide {sample!r}: {path} has coords in {unit!r}; only µm coords ('um') are "
                                  "STAMP's documented unit")
        _need(attrs, ("tile_size_um", "tile_size_px"), "the root", sample, path,
              "Re-extract with a STAMP version that writes them (STAMP >= 2)")
        features, coords_um = f["feats"][:], f["coords"][:]
    coords = np.asarray(coords_um, dtype=np.float64) / mpp
    rounded = np.rint(coords)
    # µm written as k * tile_um sit within a rounding of our pixel grid; anything else is
    # converted as it is
    coords = rounded if np.all(np.abs(rounded - coords) <= COORD_SLACK_PX + 1e-6) else np.floor(coords)
    return features, coords, float(attrs["tile_size_um"]) / mpp, int(attrs["tile_size_px"]), attrs


def _check_datasets(f: h5py.File, names: Iterable[str], sample: str, path: Path) -> None:
    absent = [n for n in names if n not in f]
    if absent:
        raise PeerImportError(f"slide {sample!r}: {path} has no dataset(s) {', '.join('/' + n for n in absent)} "
                              f"(it holds {', '.join(sorted(f)) or 'nothing'}); is it a feature file of this format?")


def read_peer_features(fmt: str, folder: str | Path, sample: str, *, mpp: float, level0_size: tuple[int, int],
                       level_downsamples=(1.0,)) -> PeerFeatures:
    """One slide's peer features in our convention; ``mpp`` (µm/px at level 0),
    ``level0_size`` (w, h) and ``level_downsamples`` are the slide's."""
    files = peer_files(fmt, folder, sample)
    if not files["h5"].is_file():
        check_peer_files(fmt, folder, [sample])
    if fmt == "trident":
        features, coords, size0, tile_px, attrs = _read_trident(files["h5"], sample, mpp)
    elif fmt == "clam":
        features, coords, size0, tile_px, attrs = _read_clam(files, sample, level_downsamples)
    else:
        features, coords, size0, tile_px, attrs = _read_stamp(files["h5"], sample, mpp)
    features = np.asarray(features, dtype=np.float32)
    coords = np.asarray(coords).reshape(-1, 2)
    if features.ndim != 2 or len(features) != len(coords):
        raise PeerImportError(f"slide {sample!r}: {files['h5']} holds {features.shape} features but {len(coords)} "
                              "coords; the file is incomplete or mixes two slides: recompute its features")
    if not np.isfinite(features).all():
        raise PeerImportError(f"slide {sample!r}: {files['h5']} holds non-finite features; recompute them")
    coords = coords.astype(np.int64)
    width, height = level0_size
    outside = (coords[:, 0] < 0) | (coords[:, 1] < 0) | (coords[:, 0] >= width) | (coords[:, 1] >= height)
    if outside.any():
        x, y = coords[np.flatnonzero(outside)[0]]
        raise PeerImportError(
            f"slide {sample!r}: {int(outside.sum())} of {len(coords)} tiles of {files['h5']} lie outside the "
            f"slide's {width} x {height} level-0 px (first at x={x}, y={y}): the features belong to another scan "
            f"or were tiled at another resolution (mpp {mpp:g} µm/px). Check the sample sheet's slide and mpp")
    used = {role: str(p) for role, p in files.items() if p.is_file()}
    return PeerFeatures(sample, features, coords, float(size0), int(tile_px), fmt, used, attrs)


def check_feature_dims(peers: Mapping[str, PeerFeatures]) -> int:
    """All slides' features are equally wide (one encoder); returns the width."""
    dims: dict[int, list[str]] = {}
    for sample, peer in peers.items():
        dims.setdefault(peer.feature_dim, []).append(sample)
    if len(dims) > 1:
        parts = "; ".join(f"{dim}: {', '.join(samples[:5])}" for dim, samples in sorted(dims.items()))
        raise PeerImportError(f"the imported features differ in width across slides ({parts}): they come from "
                              "different encoders. Import one encoder's features (one folder) at a time")
    return next(iter(dims)) if dims else 0


def _sha256(path: str) -> str:
    from .provenance import file_sha256

    return file_sha256(path)


def colour_texture_at(slide_path: str, sample: str, coords: np.ndarray, mpp: float, tile_um: float,
                      tile_px: int, level_downsamples, batch: int = 64) -> np.ndarray:
    """Colour/texture descriptors (emo.colour_texture) of the tiles at ``coords``, read as
    our tiling reads them (level chosen for the downsample, box-filtered to ``tile_px``)."""
    from .colour_texture import N_DESCRIPTORS, tile_descriptors
    from .slides import open_slide
    from .tiling import geometry_for, read_tile

    geom = geometry_for(level_downsamples, mpp, tile_um, tile_px)
    out = np.zeros((len(coords), N_DESCRIPTORS), dtype=np.float32)
    slide = open_slide(sample, slide_path)
    try:
        for start in range(0, len(coords), batch):
            tiles = np.stack([read_tile(slide, int(x), int(y), geom) for x, y in coords[start:start + batch]])
            out[start:start + len(tiles)] = tile_descriptors(tiles)
    finally:
        slide.close()
    return out


def write_imported_feature_store(peer: PeerFeatures, out_path: str | Path, *, encoder: str, mpp: float,
                                 colour_texture: np.ndarray, code_version: str = "") -> Path:
    """Our feature store (docs/data_contracts.md) of an imported slide, atomically."""
    from .io import atomic_path
    from .provenance import base_attrs
    from .stores.features import open_feature_store_writer

    n, dim = peer.features.shape
    tile_um = peer.patch_size_level0 * mpp
    coords_attrs = {"patch_level": 0, "patch_size": int(round(peer.patch_size_level0)),
                    "patch_size_level0": float(peer.patch_size_level0),
                    "downsample": float(peer.patch_size_level0 / peer.tile_px)}
    source = {role: {"path": path, "sha256": _sha256(path)} for role, path in sorted(peer.files.items())}
    params = {"import_format": peer.fmt, "source": source}
    attrs = {"sample": peer.sample, "encoder": encoder, "feature_dim": int(dim), "weights_path": "",
             "weights_sha256": "", "input_px": int(peer.tile_px), "tile_um": float(tile_um),
             "tile_px": int(peer.tile_px), "input_um_per_px": float(tile_um / peer.tile_px),
             "import_format": peer.fmt, "import_source": json.dumps(source, sort_keys=True),
             "import_peer_attrs": json.dumps(peer.peer_attrs, sort_keys=True, default=str),
             **base_attrs(code_version, params)}
    with atomic_path(out_path) as tmp:
        with open_feature_store_writer(tmp, n, dim, peer.coords, coords_attrs) as store:
            store.write(peer.features, np.asarray(colour_texture, dtype=np.float32).reshape(n, -1))
            store.set_attrs(attrs)
    return Path(out_path)


def import_slide(fmt: str, folder: str | Path, sample: str, slide_path: str, out_path: str | Path, *, encoder: str,
                 mpp: float | None = None, code_version: str = "") -> PeerFeatures:
    """Read slide ``sample``'s peer features, check them against the slide, and write its
    feature store at ``out_path``."""
    from .slides import check_slide

    info = check_slide(sample, slide_path, mpp)
    peer = read_peer_features(fmt, folder, sample, mpp=info.mpp, level0_size=(info.level0_width, info.level0_height),
                              level_downsamples=info.level_downsamples)
    descriptors = colour_texture_at(slide_path, sample, peer.coords, info.mpp, peer.patch_size_level0 * info.mpp,
                                    peer.tile_px, info.level_downsamples)
    write_imported_feature_store(peer, out_path, encoder=encoder, mpp=info.mpp, colour_texture=descriptors,
                                 code_version=code_version)
    return peer


def import_slides(fmt: str, folder: str | Path, slides: Mapping[str, str], out_dir: str | Path, *, encoder: str,
                  mpps: Mapping[str, float | None] | None = None, code_version: str = "") -> dict[str, Path]:
    """Every slide of a sample sheet ({sample: slide path}) imported into
    ``out_dir/{sample}.h5``. All checks that need no pixels run first, over all slides
    (a missing file, attributes, lengths, coords outside the slide, widths across
    slides), so a bad folder fails before any tile is read."""
    from .slides import check_slide

    mpps = mpps or {}
    check_peer_files(fmt, folder, slides)
    infos = {s: check_slide(s, path, mpps.get(s)) for s, path in slides.items()}
    peers = {s: read_peer_features(fmt, folder, s, mpp=i.mpp, level0_size=(i.level0_width, i.level0_height),
                                   level_downsamples=i.level_downsamples) for s, i in infos.items()}
    check_feature_dims(peers)
    written = {}
    for sample, peer in peers.items():
        info = infos[sample]
        descriptors = colour_texture_at(slides[sample], sample, peer.coords, info.mpp,
                                        peer.patch_size_level0 * info.mpp, peer.tile_px, info.level_downsamples)
        written[sample] = write_imported_feature_store(peer, Path(out_dir) / f"{sample}.h5", encoder=encoder,
                                                       mpp=info.mpp, colour_texture=descriptors,
                                                       code_version=code_version)
    return written
