"""Opening whole-slide images through OpenSlide, with errors a user can act on.

OpenSlide 4 (``openslide-bin``) reads Aperio SVS, Hamamatsu NDPI, MIRAX MRXS, generic
tiled TIFF and DICOM (a folder of ``.dcm`` files, or any one file of it). Every
failure is raised as :class:`emo.errors.SlideError` naming the sample and the path.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SlideError
from .resolution import EXAMPLES, RANGE_TEXT, header_default, plausible_mpp

try:  # openslide-bin ships the shared library; openslide-python finds it
    import openslide
except ImportError as _error:  # pragma: no cover - environment problem
    raise ImportError("emo.slides needs openslide-python and openslide-bin "
                      "(pip install openslide-python openslide-bin)") from _error

SUPPORTED = "SVS, NDPI, MRXS, tiled TIFF or a DICOM folder"
MPP_FIX = ("add the level-0 resolution in µm per pixel to the 'mpp' column of the sample sheet "
           f"(e.g. {EXAMPLES})")
TRUNCATED_FIX = ("Copy the slide again from its source (an interrupted download or copy cuts a file short; "
                 "compare its size or checksum with the original), or remove it from the sample sheet; "
                 "converting the file will not help, the missing bytes are gone.")
CORRUPT_FIX = "Re-export or re-download the slide, or remove it from the sample sheet."

# TIFF field types -> bytes per value
_TIFF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
                   16: 8, 17: 8, 18: 8}
_TIFF_UINT = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q"}
_TIFF_DATA_TAGS = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), (TileOffsets, TileByteCounts)
_MAX_IFDS = 10_000


def tiff_truncation(path: str | Path) -> str | None:
    """Whether a TIFF-based slide (SVS, generic TIFF) is cut short: walks its TIFF
    directories (IFDs) and compares the file size with the last byte they refer to
    (directories, tag values, strip and tile data). Returns a description of what is
    missing, or None when the file is complete or not a TIFF this check can judge
    (classic TIFF of 4 GiB or more, e.g. NDPI with its private 64-bit offsets)."""
    try:
        return _tiff_truncation(Path(path))
    except (struct.error, OSError, ValueError, OverflowError, MemoryError):
        return None  # a directory too garbled to walk: OpenSlide's own error stands


def _tiff_truncation(p: Path) -> str | None:
    if not p.is_file():
        return None
    size = p.stat().st_size
    with open(p, "rb") as handle:
        head = handle.read(16)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            return None
        order = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(order + "H", head[2:4])[0]
        if magic == 42:
            if size >= 1 << 32:
                return None
            big, first = False, struct.unpack(order + "I", head[4:8])[0]
        elif magic == 43 and len(head) >= 16:
            big, first = True, struct.unpack(order + "Q", head[8:16])[0]
        else:
            return None
        count_fmt, entry_size, offset_fmt, inline = ("Q", 20, "Q", 8) if big else ("H", 12, "I", 4)
        count_size = 8 if big else 2

        def read(offset: int, n: int) -> bytes | None:
            if offset + n > size:
                return None
            handle.seek(offset)
            return handle.read(n)

        def values(entry: bytes, typ: int, count: int) -> tuple | None:
            fmt = _TIFF_UINT.get(typ)
            if fmt is None:
                return None
            n = count * struct.calcsize(fmt)
            raw = entry[-inline:][:n] if n <= inline else read(struct.unpack(order + offset_fmt, entry[-inline:])[0], n)
            return None if raw is None else struct.unpack(order + fmt * count, raw)

        needed, offset, index, seen = 0, first, 0, set()
        while offset and index < _MAX_IFDS and offset not in seen:
            seen.add(offset)
            raw_count = read(offset, count_size)
            if raw_count is None:
                return (f"the file is {size:,} bytes but TIFF directory {index} starts at byte {offset:,}, "
                        "past its end")
            n_entries = struct.unpack(order + count_fmt, raw_count)[0]
            table = read(offset + count_size, n_entries * entry_size + struct.calcsize(offset_fmt))
            if table is None:
                return (f"the file is {size:,} bytes but TIFF directory {index} (at byte {offset:,}) runs "
                        "past its end")
            entries = {}
            for i in range(n_entries):
                entry = table[i * entry_size:(i + 1) * entry_size]
                tag, typ = struct.unpack(order + "HH", entry[:4])
                count = struct.unpack(order + ("Q" if big else "I"), entry[4:12 if big else 8])[0]
                entries[tag] = (entry, typ, count)
                n_bytes = count * _TIFF_TYPE_SIZE.get(typ, 1)
                if n_bytes > inline:
                    needed = max(needed, struct.unpack(order + offset_fmt, entry[-inline:])[0] + n_bytes)
            for offsets_tag, counts_tag in _TIFF_DATA_TAGS:
                if offsets_tag in entries and counts_tag in entries:
                    starts = values(*entries[offsets_tag])
                    lengths = values(*entries[counts_tag])
                    if starts and lengths:
                        needed = max(needed, max(a + b for a, b in zip(starts, lengths)))
            offset = struct.unpack(order + offset_fmt, table[-struct.calcsize(offset_fmt):])[0]
            index += 1
    if needed > size:
        return (f"the file is {size:,} bytes but its TIFF directories refer to data up to byte {needed:,} "
                f"({needed - size:,} bytes missing)")
    return None


def _truncated_error(sample: str, path: str | Path, target: str) -> SlideError | None:
    problem = tiff_truncation(target)
    if problem is None:
        return None
    return SlideError(sample, str(path), f"the file looks truncated or corrupt: {problem}", TRUNCATED_FIX)


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
    if fmt is None and (error := _truncated_error(sample, path, target)) is not None:
        # a cut-off SVS/TIFF loses its directories (written last) and reads as no format
        raise error
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
        truncated = _truncated_error(sample, path, target)
        if truncated is not None:
            raise truncated from None
        raise SlideError(sample, str(path), f"the slide is unreadable or corrupt ({error})", CORRUPT_FIX) from None


def read_error(sample: str, path: str | Path, error: Exception) -> SlideError:
    """The :class:`SlideError` for a failure while decoding pixels of an opened slide:
    a truncated file says so (and to copy it again), anything else is called corrupt."""
    if isinstance(error, SlideError):
        return error
    try:
        truncated = _truncated_error(sample, path, _open_path(sample, path))
    except SlideError:
        truncated = None
    if truncated is not None:
        return truncated
    return SlideError(sample, str(path), f"reading the slide failed ({type(error).__name__}: {error})",
                      "The file is probably corrupt: re-export or re-download it, or remove it from the "
                      "sample sheet.")


def slide_mpp(slide: "openslide.OpenSlide", sample: str, path: str | Path,
              mpp_override: float | None = None) -> tuple[float, str]:
    """Level-0 µm/px and where it came from; the sample sheet wins over metadata."""
    if mpp_override is not None:
        mpp = float(mpp_override)
        if not (math.isfinite(mpp) and mpp > 0):
            raise SlideError(sample, str(path), f"sample-sheet mpp {mpp_override!r} is not positive", MPP_FIX)
        if not plausible_mpp(mpp):
            raise SlideError(sample, str(path), f"sample-sheet mpp {mpp:g} µm/px is outside the plausible range "
                             f"of a slide scan, {RANGE_TEXT}",
                             f"Fix the 'mpp' column of the sample sheet (e.g. {EXAMPLES}).")
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
    mpp = float(np.mean(values))
    if not plausible_mpp(mpp):
        origin = header_default(mpp)
        raise SlideError(
            sample, str(path),
            f"the file's metadata gives a resolution of {mpp:.4g} µm per pixel, outside the plausible range of "
            f"a slide scan, {RANGE_TEXT}" + (f"; that is what {origin} gives, not a scanner's value"
                                            if origin else "; the file's resolution header is wrong"),
            f"Give the true level-0 resolution in the 'mpp' column of the sample sheet (e.g. {EXAMPLES}); "
            "it overrides the file's value.")
    return mpp, "metadata"


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
            truncated = _truncated_error(sample, path, _open_path(sample, path))
            if truncated is not None:
                raise truncated from None
            raise SlideError(sample, str(path), f"the slide is unreadable or corrupt ({error})", CORRUPT_FIX) from None
        # tile data cut off behind intact directories opens and decodes the small level
        # but fails hours later at level 0: compare the file size with its directories now
        truncated = _truncated_error(sample, path, _open_path(sample, path))
        if truncated is not None:
            raise truncated
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
           "best_level_for_downsample", "tiff_truncation", "read_error"]
