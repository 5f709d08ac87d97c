"""Opening whole-slide images through OpenSlide, with errors a user can act on.

OpenSlide 4 (``openslide-bin``) reads Aperio SVS, Hamamatsu NDPI, MIRAX MRXS, generic
tiled TIFF and DICOM (a folder of ``.dcm`` files, or any one file of it). Every
failure is raised as :class:`emo.errors.SlideError` naming the sample and the path.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SlideError

try:  # openslide-bin ships the shared library; openslide-python finds it
    import openslide
except ImportError as _error:  # pragma: no cover - environment problem
    raise ImportError("emo.slides needs openslide-python and openslide-bin "
                      "(pip install openslide-python openslide-bin)") from _error

SUPPORTED = "SVS, NDPI, MRXS, tiled TIFF or a DICOM folder"
MPP_FIX = ("add the level-0 resolution in µm per pixel to the 'mpp' column of the sample sheet "
           "(e.g. 0.25 for 40x, 0.5 for 20x)")


@dataclass(frozen=True)
class SlideInfo:
    """What tiling needs to know about a slide, checked once up front."""

    sample: str
    path: str            # as given in the sample sheet
    open_path: str       # what OpenSlide opens (a .dcm file for DICOM folders)
    vendor: str
    mpp: float
    mpp_source: str      # "metadata" | "sample_sheet"
    level0_width: int
    level0_height: int
    level_downsamples: tuple[float, ...]
    level_dimensions: tuple[tuple[int, int], ...]


def _open_path(sample: str, path: str | Path) -> str:
    """Resolve the file OpenSlide should open; refuse missing paths."""
    p = Path(path)
    if not p.exists():
        raise SlideError(sample, str(path), "the slide file does not exist",
                         "Check the 'slide' column of the sample sheet (relative paths resolve against "
                         "the Snakemake working directory).")
    if p.is_dir():
        dicoms = sorted(x for x in p.iterdir() if x.is_file() and x.suffix.lower() == ".dcm")
        if not dicoms:
            raise SlideError(sample, str(path), "is a folder without .dcm files",
                             f"Point the 'slide' column at a slide file ({SUPPORTED}).")
        return str(dicoms[0])
    return str(p)


def open_slide(sample: str, path: str | Path) -> "openslide.OpenSlide":
    """Open a slide with OpenSlide, mapping its failures to :class:`SlideError`."""
    target = _open_path(sample, path)
    fmt = openslide.OpenSlide.detect_format(target)
    if fmt is None:
        raise SlideError(sample, str(path), "is not a whole-slide image format OpenSlide can read",
                         f"Use a {SUPPORTED} file; convert other images to a pyramidal tiled TIFF "
                         "(e.g. `vips tiffsave in out.tiff --tile --pyramid --compression jpeg`).")
    try:
        return openslide.OpenSlide(target)
    except openslide.OpenSlideUnsupportedFormatError as error:
        raise SlideError(sample, str(path), f"unsupported slide format ({fmt}: {error})",
                         f"Use a {SUPPORTED} file.") from None
    except (openslide.OpenSlideError, OSError) as error:
        raise SlideError(sample, str(path), f"the slide is unreadable or corrupt ({error})",
                         "Re-export or re-download the slide, or remove it from the sample sheet.") from None


def slide_mpp(slide: "openslide.OpenSlide", sample: str, path: str | Path,
              mpp_override: float | None = None) -> tuple[float, str]:
    """Level-0 µm/px and where it came from; the sample sheet wins over metadata."""
    if mpp_override is not None:
        mpp = float(mpp_override)
        if not (math.isfinite(mpp) and mpp > 0):
            raise SlideError(sample, str(path), f"sample-sheet mpp {mpp_override!r} is not positive", MPP_FIX)
        return mpp, "sample_sheet"
    props = slide.properties
    values = []
    for key in (openslide.PROPERTY_NAME_MPP_X, openslide.PROPERTY_NAME_MPP_Y):
        try:
            value = float(props.get(key, "nan"))
        except ValueError:
            value = float("nan")
        if math.isfinite(value) and value > 0:
            values.append(value)
    if not values:
        raise SlideError(sample, str(path), "the slide has no resolution (mpp) in its metadata", MPP_FIX)
    return float(np.mean(values)), "metadata"


def check_slide(sample: str, path: str | Path, mpp_override: float | None = None) -> SlideInfo:
    """Cheap up-front check: the slide exists, opens, decodes a region and has an mpp.

    Decodes one small region of the lowest-resolution level, which catches corrupt
    files (e.g. bad JPEG data) before any long work starts.
    """
    slide = open_slide(sample, path)
    try:
        mpp, source = slide_mpp(slide, sample, path, mpp_override)
        last = slide.level_count - 1
        w, h = slide.level_dimensions[last]
        try:
            slide.read_region((0, 0), last, (max(1, min(w, 64)), max(1, min(h, 64))))
        except openslide.OpenSlideError as error:
            raise SlideError(sample, str(path), f"the slide is unreadable or corrupt ({error})",
                             "Re-export or re-download the slide, or remove it from the sample sheet.") from None
        return SlideInfo(
            sample=sample, path=str(path), open_path=_open_path(sample, path),
            vendor=str(slide.properties.get(openslide.PROPERTY_NAME_VENDOR, "unknown")),
            mpp=mpp, mpp_source=source,
            level0_width=int(slide.dimensions[0]), level0_height=int(slide.dimensions[1]),
            level_downsamples=tuple(float(d) for d in slide.level_downsamples),
            level_dimensions=tuple((int(a), int(b)) for a, b in slide.level_dimensions),
        )
    finally:
        slide.close()


def read_rgb(slide: "openslide.OpenSlide", location: tuple[int, int], level: int,
             size: tuple[int, int]) -> np.ndarray:
    """``read_region`` as uint8 RGB; transparent areas (outside the scan) become white."""
    rgba = np.asarray(slide.read_region((int(location[0]), int(location[1])), int(level),
                                        (int(size[0]), int(size[1]))))
    alpha = rgba[..., 3]
    rgb = rgba[..., :3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def slide_sha256(path: str | Path) -> str:
    """sha256 of a slide: the file, or for multi-file formats (DICOM folder, MRXS with
    its companion folder) a digest over the relative names and contents of all files."""
    p = Path(path)
    files: list[tuple[str, Path]] = []
    if p.is_dir():
        files = [(str(f.relative_to(p)), f) for f in sorted(p.rglob("*")) if f.is_file()]
    else:
        files = [(p.name, p)]
        companion = p.with_suffix("")
        if p.suffix.lower() == ".mrxs" and companion.is_dir():
            files += [(str(f.relative_to(p.parent)), f) for f in sorted(companion.rglob("*")) if f.is_file()]
    if len(files) == 1 and not p.is_dir():
        digest = hashlib.sha256()
        with open(p, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        return digest.hexdigest()
    digest = hashlib.sha256()
    for name, f in files:
        digest.update(name.encode() + b"\0")
        with open(f, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def best_level_for_downsample(level_downsamples, downsample: float) -> int:
    """Lowest-resolution level whose downsample is <= ``downsample`` (i.e. that still
    has at least the wanted resolution, within 0.1 % for rounded level sizes); level 0
    if none."""
    best = 0
    for level, ds in enumerate(level_downsamples):
        if ds <= downsample * (1 + 1e-3) and ds >= level_downsamples[best]:
            best = level
    return best


__all__ = ["SlideInfo", "check_slide", "open_slide", "slide_mpp", "read_rgb", "slide_sha256",
           "best_level_for_downsample"]
