"""Tile grid by physical size, per-tile QC, and reading tiles back.

Geometry (docs/tiling.md): a tile is ``tile_um`` µm square, i.e. ``tile_um / mpp``
level-0 pixels, resized to ``tile_px`` output pixels. Pixels come from the
lowest-resolution pyramid level that still has at least the output resolution
(``read_level``), cropped at ``read_px = round(tile_size0 / read_downsample)`` level
pixels and box-filtered (area) down to ``tile_px``. Where the read level's downsample
is an integer, tiling reads runs of up to ``BLOCK_TILES`` adjacent candidate tiles
with one ``read_region`` each; memory per read is bounded by the run size, not the
slide size. At non-integer downsamples (odd level sizes) OpenSlide resamples
sub-pixel offsets, so tiles are read one by one there.

:class:`TileReader` re-reads single tiles with the same arithmetic, so it returns
bit-identical pixels to those QC saw.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import stain as stain_mod
from . import tissue as tissue_mod
from .errors import SlideError
from .resolution import plausible_mpp
from .slides import SlideInfo, best_level_for_downsample, open_slide, read_error, read_rgb

log = logging.getLogger("emo")

BLOCK_TILES = 16            # candidate tiles per read_region (one row-run)
RUN_BYTES = 64 << 20        # at most this much RGBA per read_region
STAIN_FIT_MAX_TILES = 64    # accepted tiles sampled to fit the Macenko stain matrix
STAIN_FIT_PIXELS_PER_TILE = 2048
MIN_TILE_SIZE0 = 8          # level-0 px per tile side below which a tile holds no usable detail

def tiling_params(config_tiling: dict | None) -> dict:
    """Config section ``tiling`` completed with the schema's defaults (the JSON stored in
    ``params``); an unknown key raises ConfigError naming it."""
    from .settings import section

    return section("tiling", config_tiling)


@dataclass(frozen=True)
class TileGeometry:
    tile_size0: float      # level-0 px per tile side (exact)
    tile_px: int           # output px per tile side
    read_level: int
    read_downsample: float

    @property
    def read_px(self) -> int:
        return max(1, round(self.tile_size0 / self.read_downsample))

    @property
    def integer_downsample(self) -> bool:
        return float(self.read_downsample).is_integer()

    def level_xy(self, x0: int, y0: int) -> tuple[int, int]:
        """Top-left of a tile in read-level pixels."""
        return round(x0 / self.read_downsample), round(y0 / self.read_downsample)

    def level0_location(self, lx: int, ly: int) -> tuple[int, int]:
        return round(lx * self.read_downsample), round(ly * self.read_downsample)


def geometry_for(level_downsamples, mpp: float, tile_um: float, tile_px: int) -> TileGeometry:
    tile_size0 = tile_um / mpp
    level = best_level_for_downsample(level_downsamples, tile_size0 / tile_px)
    return TileGeometry(float(tile_size0), int(tile_px), int(level), float(level_downsamples[level]))


def check_tile_geometry(info: SlideInfo, tile_um: float, tile_px: int) -> float:
    """Level-0 px per tile side of ``tile_um`` µm tiles on ``info``'s slide; refuses (before
    any pixel is read) a tile smaller than :data:`MIN_TILE_SIZE0` level-0 px (a wrong mpp:
    millions of tiles upsampled from a few pixels) or one larger than the slide at level 0
    (no whole tile fits), naming the numbers."""
    tile_size0 = float(tile_um) / float(info.mpp)
    numbers = (f"tiles of {tile_um:g} µm (config tiling.tile_um) at {info.mpp:g} µm/px (mpp from "
               f"{'the sample sheet' if info.mpp_source == 'sample_sheet' else 'the slide metadata'}) are "
               f"{tile_size0:.4g} level-0 px a side; the slide is {info.level0_width} x {info.level0_height} px")
    mpp_fix = ("the slide's value in the 'mpp' column of the sample sheet (the true level-0 µm per pixel, "
               "e.g. 0.25 for 40x, 0.5 for 20x)")
    if tile_size0 < MIN_TILE_SIZE0:
        fix = (f"Config tiling.tile_um is in µm (e.g. 271), not pixels: raise it, or check {mpp_fix}."
               if plausible_mpp(info.mpp) else f"The mpp is wrong: give {mpp_fix}.")
        raise SlideError(info.sample, info.path,
                         f"{numbers}: smaller than {MIN_TILE_SIZE0} px, so each {tile_px}-px tile would be "
                         "blown up from a few pixels", fix)
    if tile_size0 > info.level0_width or tile_size0 > info.level0_height:
        raise SlideError(info.sample, info.path,
                         f"{numbers}: a tile is larger than the slide, so no whole tile fits",
                         f"Check {mpp_fix} and config tiling.tile_um (µm), or remove the slide from the "
                         "sample sheet.")
    return tile_size0


def resize_tile(crop: np.ndarray, tile_px: int) -> np.ndarray:
    """Area (box) filter down to ``tile_px``; bilinear if the level is coarser than the output."""
    if crop.shape[0] == tile_px and crop.shape[1] == tile_px:
        return np.ascontiguousarray(crop)
    resample = Image.BOX if crop.shape[0] >= tile_px else Image.BILINEAR
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((tile_px, tile_px), resample))


def read_tile_run(slide, xs: list[int], y0: int, geom: TileGeometry) -> list[np.ndarray]:
    """Tiles at level-0 ``(x, y0)`` for sorted ``xs`` in one row.

    One read_region for the whole run when the read level's downsample is an integer
    (level-0 locations then map to whole level pixels, so a crop of the block equals a
    single-tile read). Otherwise OpenSlide resamples sub-pixel offsets, so each tile
    is read on its own, exactly as :class:`TileReader` does."""
    lxs = [geom.level_xy(x, y0)[0] for x in xs]
    ly = geom.level_xy(xs[0], y0)[1]
    if not geom.integer_downsample and len(xs) > 1:
        return [read_tile_run(slide, [x], y0, geom)[0] for x in xs]
    width = lxs[-1] - lxs[0] + geom.read_px
    block = read_rgb(slide, geom.level0_location(lxs[0], ly), geom.read_level, (width, geom.read_px))
    return [resize_tile(block[:, lx - lxs[0]: lx - lxs[0] + geom.read_px], geom.tile_px) for lx in lxs]


def read_tile(slide, x0: int, y0: int, geom: TileGeometry) -> np.ndarray:
    return read_tile_run(slide, [int(x0)], int(y0), geom)[0]


# --------------------------------------------------------------------------- QC
def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey (ITU-R 601) tile, valid region
    (equals OpenCV ``cv2.Laplacian(grey, CV_64F).var()`` away from the border)."""
    grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    lap = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1])
    return float(lap.var())


def tile_envelope(mask: np.ndarray, mask_downsample: float, x0: int, y0: int, size0: float,
                  tile_px: int) -> np.ndarray:
    """The tissue mask at the centres of a tile's output pixels (bool (tile_px, tile_px));
    False outside the slide."""
    centres = (np.arange(tile_px) + 0.5) * (size0 / tile_px)
    rows = np.floor((y0 + centres) / mask_downsample).astype(np.int64)
    cols = np.floor((x0 + centres) / mask_downsample).astype(np.int64)
    h, w = mask.shape
    inside = (rows[:, None] < h) & (cols[None, :] < w)
    return mask[np.minimum(rows, h - 1)[:, None], np.minimum(cols, w - 1)[None, :]].astype(bool) & inside


def tile_qc(rgb: np.ndarray, envelope: np.ndarray | None = None,
            white_min_value: int = tissue_mod.DEFAULT_GLASS_VALUE - tissue_mod.GLASS_VALUE_TOLERANCE
            ) -> tuple[float, float, float]:
    """(sharpness, pen_fraction, background_fraction) of one output-resolution tile.

    Background is glass: glass-coloured pixels outside the tissue ``envelope`` (the mask,
    which holds fat and loose stroma; :func:`tile_envelope`). White inside it (fat
    lumens, gaps between fibres) is tissue. ``envelope=None``: every white pixel counts."""
    pen = tissue_mod.pen_pixels(rgb)
    glass = tissue_mod.white_pixels(rgb, white_min_value)
    if envelope is not None:
        glass &= ~envelope
    return sharpness(rgb.astype(np.float32)), float(pen.mean()), float(glass.mean())


def reject_reason(tissue_fraction: float, sharp: float, pen_fraction: float, background_fraction: float,
                  params: dict) -> str:
    """First failing check in the order background, pen, low_tissue, blur ("" = accepted).

    ``background`` first: a tile that is mostly glass is that, whatever else fails.
    Pen before tissue because pen ink is cut out of the tissue mask (a pen-covered tile
    would otherwise read as low_tissue); blur last, so it names tiles that are tissue."""
    if background_fraction > params["max_background_fraction"]:
        return "background"
    if pen_fraction > params["max_pen_fraction"]:
        return "pen"
    if tissue_fraction < params["min_tissue_fraction"]:
        return "low_tissue"
    if sharp < params["min_sharpness"]:
        return "blur"
    return ""


@dataclass
class TilingResult:
    info: SlideInfo
    geometry: TileGeometry
    params: dict
    candidates: dict[str, np.ndarray]
    coords: np.ndarray
    mask: tissue_mod.TissueMask
    stain: dict | None = None
    stats: dict = field(default_factory=dict)


def _grid_tissue_fraction(integral: np.ndarray, mask_ds: float, xs0: np.ndarray, y0: int,
                          size0: float) -> np.ndarray:
    """Fraction of mask pixels set inside each tile (integral image, mask-pixel rounding)."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1

    def clip(v, hi):
        return np.clip(v, 0, hi)

    r0 = int(round(y0 / mask_ds))
    r1 = max(int(round((y0 + size0) / mask_ds)), r0 + 1)
    c0 = np.rint(xs0 / mask_ds).astype(np.int64)
    c1 = np.maximum(np.rint((xs0 + size0) / mask_ds).astype(np.int64), c0 + 1)
    # the whole footprint is the denominator: the part of a last-row/column tile outside
    # the slide holds no tissue
    area = np.maximum((r1 - r0) * (c1 - c0), 1)
    r0, r1, c0, c1 = clip(r0, h), clip(r1, h), clip(c0, w), clip(c1, w)
    inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    return inside / area


def tile_slide(info: SlideInfo, params: dict, stain_reference: stain_mod.StainParams | None = None,
               stain_reference_path: str = "") -> TilingResult:
    """Tissue mask, candidate grid, QC of every candidate, optional cap and stain fit."""
    params = tiling_params(params)
    check_tile_geometry(info, params["tile_um"], params["tile_px"])  # before any pixel is read
    geom = geometry_for(info.level_downsamples, info.mpp, params["tile_um"], params["tile_px"])
    slide = open_slide(info.sample, info.path)
    try:
        try:
            mask = tissue_mod.tissue_mask(slide, info.mpp, params["mask_um_per_px"])
        except Exception as error:  # openslide decode errors surface here
            _raise_read_error(info, error)
        size0 = geom.tile_size0
        # the last row/column may be partial: read_rgb pads outside the scan with white
        nx = int(math.ceil(info.level0_width / size0 - 1e-9))
        ny = int(math.ceil(info.level0_height / size0 - 1e-9))
        log.info("slide %s: %dx%d px, mpp %.4f (%s), tile %.1f level-0 px -> %d px from level %d "
                 "(downsample %.3f, %d px), grid %dx%d, mask threshold %d, glass value %d", info.sample,
                 info.level0_width, info.level0_height, info.mpp, info.mpp_source, size0, geom.tile_px,
                 geom.read_level, geom.read_downsample, geom.read_px, nx, ny, mask.threshold, mask.glass_value)
        xs_all = np.rint(np.arange(nx) * size0).astype(np.int64)
        rng = np.random.default_rng(params["seed"])
        pixel_pick = rng.integers(0, geom.tile_px * geom.tile_px, size=STAIN_FIT_PIXELS_PER_TILE)
        rows: dict[str, list] = {k: [] for k in ("coords", "tissue_fraction", "sharpness", "pen_fraction",
                                                 "background_fraction", "reject_reason")}
        stain_pixels: dict[int, np.ndarray] = {}
        n_reads = 0
        # tiles per read_region: BLOCK_TILES, fewer if one run would exceed RUN_BYTES (RGBA)
        run_len = int(max(1, min(BLOCK_TILES, RUN_BYTES // (4 * geom.read_px * geom.read_px))))
        integral = np.pad(mask.mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        pen_integral = np.pad(mask.pen.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        for j in range(ny):
            y0 = int(round(j * size0))
            fractions = _grid_tissue_fraction(integral, mask.downsample, xs_all, y0, size0) if nx else []
            pen_in_mask = _grid_tissue_fraction(pen_integral, mask.downsample, xs_all, y0, size0) if nx else []
            # candidates: any tissue, or pen ink (so pen-covered tissue is reported as "pen")
            cols = [i for i in range(nx) if fractions[i] > 0 or pen_in_mask[i] > 0]
            for run in _runs(cols, run_len):
                xs = [int(xs_all[i]) for i in run]
                try:
                    tiles = read_tile_run(slide, xs, y0, geom)
                except Exception as error:
                    _raise_read_error(info, error)
                n_reads += 1
                for i, x0, tile in zip(run, xs, tiles):
                    envelope = tile_envelope(mask.mask, mask.downsample, x0, y0, size0, geom.tile_px)
                    sharp, pen, background = tile_qc(tile, envelope, mask.white_min_value)
                    reason = reject_reason(float(fractions[i]), sharp, pen, background, params)
                    if reason == "" and stain_reference is not None:
                        stain_pixels[len(rows["coords"])] = tile.reshape(-1, 3)[pixel_pick]
                    rows["coords"].append((x0, y0))
                    rows["tissue_fraction"].append(fractions[i])
                    rows["sharpness"].append(sharp)
                    rows["pen_fraction"].append(pen)
                    rows["background_fraction"].append(background)
                    rows["reject_reason"].append(reason)
    finally:
        slide.close()
    candidates = {
        "coords": np.asarray(rows["coords"], dtype=np.int64).reshape(-1, 2),
        "tissue_fraction": np.asarray(rows["tissue_fraction"], dtype=np.float32),
        "sharpness": np.asarray(rows["sharpness"], dtype=np.float32),
        "pen_fraction": np.asarray(rows["pen_fraction"], dtype=np.float32),
        "background_fraction": np.asarray(rows["background_fraction"], dtype=np.float32),
        "reject_reason": np.asarray(rows["reject_reason"], dtype=object),
    }
    accepted_idx = np.flatnonzero(candidates["reject_reason"] == "")
    cap = params["max_tiles_per_slide"]
    if cap is not None and len(accepted_idx) > cap:
        keep = np.sort(np.random.default_rng(params["seed"]).choice(accepted_idx, size=int(cap), replace=False))
        dropped = np.setdiff1d(accepted_idx, keep)
        candidates["reject_reason"][dropped] = "cap"
        accepted_idx = keep
    candidates["accepted"] = candidates["reject_reason"] == ""
    coords = candidates["coords"][accepted_idx]
    reasons, counts = np.unique(candidates["reject_reason"], return_counts=True)
    stats = {"n_candidates": int(len(candidates["coords"])), "n_accepted": int(len(accepted_idx)),
             "n_reads": n_reads, "reasons": {str(r) or "accepted": int(c) for r, c in zip(reasons, counts)}}
    log.info("slide %s: %s", info.sample, stats)
    if len(accepted_idx) == 0:
        raise SlideError(info.sample, info.path,
                         f"no tile passed QC ({stats['n_candidates']} candidates; {stats['reasons']})",
                         "Check that the slide shows tissue and its mpp is right; if so, loosen "
                         "tiling.min_tissue_fraction / tiling.min_sharpness / tiling.max_background_fraction "
                         "in the config, or remove the slide from the sample sheet.")
    stain_attrs = None
    if stain_reference is not None:
        stain_attrs = _fit_slide_stain(info, accepted_idx, stain_pixels, params["seed"], stain_reference,
                                       stain_reference_path)
    return TilingResult(info, geom, params, candidates, coords, mask, stain_attrs, stats)


def _fit_slide_stain(info, accepted_idx, stain_pixels, seed, reference, reference_path) -> dict:
    chosen = accepted_idx
    if len(chosen) > STAIN_FIT_MAX_TILES:
        chosen = np.sort(np.random.default_rng(seed + 1).choice(chosen, STAIN_FIT_MAX_TILES, replace=False))
    pixels = np.concatenate([stain_pixels[int(i)] for i in chosen])
    try:
        fitted = stain_mod.fit_stain(pixels, reference.Io, reference.alpha, reference.beta)
    except ValueError as error:
        raise SlideError(info.sample, info.path, f"Macenko stain fit failed ({error})",
                         "Set stain_normalisation.method: none, or check that the slide is H&E-stained.") from None
    return stain_mod.to_attrs(fitted, reference, len(chosen), reference_path)


def _runs(cols: list[int], max_len: int = BLOCK_TILES) -> list[list[int]]:
    """Consecutive column indices, split into runs of at most ``max_len``."""
    runs: list[list[int]] = []
    for c in cols:
        if runs and c == runs[-1][-1] + 1 and len(runs[-1]) < max_len:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


def _raise_read_error(info: SlideInfo, error: Exception):
    """A decode failure as SlideError: truncated files say so (emo.slides.read_error)."""
    raise read_error(info.sample, info.path, error) from None


def build_store(result: TilingResult, code_version_value: str, slide_sha: str):
    """The :class:`emo.stores.tiles.TileStore` of a tiling result (contract attrs)."""
    from .provenance import base_attrs
    from .stores.tiles import TileStore

    info, geom = result.info, result.geometry
    attrs = {
        "sample": info.sample, "slide_path": info.path, "slide_sha256": slide_sha, "vendor": info.vendor,
        "mpp": float(info.mpp), "mpp_source": info.mpp_source, "level0_width": int(info.level0_width),
        "level0_height": int(info.level0_height), "tile_um": float(result.params["tile_um"]),
        "tile_px": int(geom.tile_px), "read_level": int(geom.read_level),
        "read_downsample": float(geom.read_downsample),
    }
    attrs.update(base_attrs(code_version_value, result.params))
    coords_attrs = {"patch_level": 0, "patch_size": int(round(geom.tile_size0)),
                    "patch_size_level0": float(geom.tile_size0),
                    "downsample": float(geom.tile_size0 / geom.tile_px)}
    mask_attrs = {"downsample": float(result.mask.downsample), "level": int(result.mask.level),
                  "saturation_threshold": int(result.mask.threshold), "glass_value": int(result.mask.glass_value),
                  "white_min_value": int(result.mask.white_min_value)}
    return TileStore(coords=result.coords, coords_attrs=coords_attrs, candidates=result.candidates,
                     mask=result.mask.mask, mask_attrs=mask_attrs, attrs=attrs, stain=result.stain)


# ----------------------------------------------------------------------- reader
class TileReader:
    """Accepted tiles of a tile store, in store order, as uint8 (tile_px, tile_px, 3).

    Picklable: the OpenSlide handle is opened lazily in each process (DataLoader
    workers) and not pickled. ``normalise=True`` applies the store's Macenko stain
    normalisation (the store must have been written with ``method: macenko``).
    """

    def __init__(self, slide_path: str | Path, tile_store_path: str | Path, mpp: float | None = None,
                 normalise: bool = False):
        from .stores.tiles import read_tile_store_header

        self.slide_path = str(slide_path)
        self.tile_store_path = str(tile_store_path)
        header = read_tile_store_header(tile_store_path)
        attrs = header.attrs
        self.sample = str(attrs["sample"])
        store_mpp = float(attrs["mpp"])
        if mpp is not None and not math.isclose(float(mpp), store_mpp, rel_tol=1e-6):
            raise SlideError(self.sample, self.slide_path,
                             f"mpp {mpp} differs from the tile store's mpp {store_mpp} ({tile_store_path})",
                             "Re-run tiling for this slide (the sample sheet's mpp changed).")
        self.mpp = store_mpp
        self.coords = np.asarray(header.coords, dtype=np.int64)
        self.geometry = TileGeometry(float(header.coords_attrs["patch_size_level0"]), int(attrs["tile_px"]),
                                     int(attrs["read_level"]), float(attrs["read_downsample"]))
        self.tile_px = self.geometry.tile_px
        self.normalise = bool(normalise)
        self._stain = None
        if self.normalise:
            if not header.stain or header.stain.get("method") != "macenko":
                raise SlideError(self.sample, self.tile_store_path, "the tile store has no Macenko stain fit",
                                 "Set stain_normalisation.method: macenko and re-run tiling, or read with "
                                 "normalise=False.")
            self._stain = stain_mod.from_attrs(header.stain)
        self._slide = None

    def __len__(self) -> int:
        return len(self.coords)

    def _open(self):
        if self._slide is None:
            self._slide = open_slide(self.sample, self.slide_path)
        return self._slide

    def __getitem__(self, index: int) -> np.ndarray:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"tile {index} out of range (0..{len(self) - 1})")
        x0, y0 = self.coords[index]
        tile = read_tile(self._open(), int(x0), int(y0), self.geometry)
        if self._stain is not None:
            tile = stain_mod.normalise(tile, *self._stain)
        return tile

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_slide"] = None
        return state

    def close(self) -> None:
        if self._slide is not None:
            self._slide.close()
            self._slide = None
