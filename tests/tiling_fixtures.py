"""Synthetic H&E-like pyramidal Aperio SVS slides for the tiling tests and benchmark.

Colours follow the Beer-Lambert stain model with the HEnorm reference stain
vectors: nuclei (haematoxylin blobs) over eosin stroma inside an elliptical tissue
region on bright glass. Options add a blue pen stroke and a blurred rectangle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

HE_REF = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
PEN_RGB = (40, 70, 180)


def he_concentrations(height: int, width: int, mpp: float, seed: int = 0) -> np.ndarray:
    """(2, H, W) H and E concentrations: tissue ellipse with nuclei, zero on glass."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    ellipse = ((xx - width / 2) / (0.42 * width)) ** 2 + ((yy - height / 2) / (0.40 * height)) ** 2 <= 1.0
    nucleus_px = 3.0 / mpp                       # ~3 µm radius
    points = rng.random((height, width)) < (1.0 / (12.0 / mpp) ** 2)
    nuclei = ndimage.gaussian_filter(points.astype(np.float32), nucleus_px / 1.5)
    nuclei = np.clip(nuclei / nuclei.max() * 4.0, 0, 1) if nuclei.max() > 0 else nuclei
    texture = ndimage.gaussian_filter(rng.random((height, width)).astype(np.float32), 1.0 / mpp)
    texture = (texture - texture.mean()) / (texture.std() + 1e-9)
    # pure haematoxylin at nucleus centres and pure eosin where the texture is low,
    # as Macenko's extreme-angle estimate expects
    h_conc = (1.4 * nuclei + 0.15 * np.clip(texture, 0, None)) * ellipse
    e_conc = (0.55 + 0.12 * texture) * (1.0 - nuclei) * ellipse
    return np.clip(np.stack([h_conc, e_conc]), 0, None)


def render(conc: np.ndarray, stain_matrix: np.ndarray = HE_REF, Io: float = 240.0) -> np.ndarray:
    od = np.tensordot(stain_matrix, conc, axes=(1, 0))          # (3, H, W)
    rgb = Io * np.exp(-od)
    return np.clip(np.rint(np.moveaxis(rgb, 0, -1)), 0, 255).astype(np.uint8)


def synthetic_he(height: int, width: int, mpp: float, seed: int = 0, pen_box=None, blur_box=None,
                 blur_sigma_um: float = 4.0) -> np.ndarray:
    """RGB uint8 image; boxes are (x0, y0, x1, y1) in fractions of the width/height."""
    rgb = render(he_concentrations(height, width, mpp, seed))
    if blur_box is not None:
        x0, y0, x1, y1 = _box(blur_box, height, width)
        region = rgb[y0:y1, x0:x1].astype(np.float32)
        sigma = blur_sigma_um / mpp
        rgb[y0:y1, x0:x1] = np.clip(np.rint(ndimage.gaussian_filter(region, (sigma, sigma, 0))), 0, 255)
    if pen_box is not None:
        x0, y0, x1, y1 = _box(pen_box, height, width)
        rgb[y0:y1, x0:x1] = PEN_RGB
    return rgb


def downsample2(rgb: np.ndarray) -> np.ndarray:
    """Box 2x downsample (a 20x rendering of a 40x image)."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    x = rgb[:h, :w].astype(np.float32).reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _box(box, height, width):
    x0, y0, x1, y1 = box
    return int(x0 * width), int(y0 * height), int(x1 * width), int(y1 * height)


def write_svs(rgb: np.ndarray, path: str | Path, mpp: float | None, app_mag: int | None = None,
              quality: int = 90) -> Path:
    """Pyramidal tiled JPEG TIFF with an Aperio description (opens as vendor 'aperio')."""
    import pyvips

    path = Path(path)
    h, w = rgb.shape[:2]
    image = pyvips.Image.new_from_memory(np.ascontiguousarray(rgb).tobytes(), w, h, 3, "uchar")
    fields = [f"AppMag = {app_mag or (40 if (mpp or 0.25) < 0.375 else 20)}"]
    if mpp is not None:
        fields.append(f"MPP = {mpp}")
    description = (f"Aperio Image Library v10.0.0\n{w}x{h} [0,0 {w}x{h}] (256x256) JPEG/RGB Q={quality}|"
                   + "|".join(fields))
    image = image.copy()
    image.set_type(pyvips.GValue.gstr_type, "image-description", description)
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=quality, tile_width=256,
                   tile_height=256)
    return path


# --------------------------------------------------------------- shared test data
TEST_TILE_UM = 64.0
TEST_PARAMS = {"tile_um": TEST_TILE_UM, "tile_px": 48, "mask_um_per_px": 4.0}
PEN_BOX = (0.15, 0.42, 0.45, 0.70)
BLUR_BOX = (0.55, 0.3, 0.8, 0.7)


def _build(dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    rgb = synthetic_he(1536, 2048, 0.25, seed=1, pen_box=PEN_BOX, blur_box=BLUR_BOX)
    paths = {
        "x40": write_svs(rgb, dest / "x40.svs", 0.25),
        "x20": write_svs(downsample2(rgb), dest / "x20.svs", 0.5),
        "no_mpp": write_svs(downsample2(rgb), dest / "no_mpp.svs", None),
    }
    (dest / "notes.txt").write_text("not a slide\n")
    paths["text"] = dest / "notes.txt"
    from PIL import Image

    Image.fromarray(rgb[:64, :64]).save(dest / "tile.png")
    paths["png"] = dest / "tile.png"
    return paths


_SLIDES: dict[str, Path] | None = None


def synthetic_slides() -> dict[str, Path]:
    """Build the synthetic slides once per test process (in a temporary folder)."""
    global _SLIDES
    if _SLIDES is None:
        import atexit
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="emo_tiling_"))
        atexit.register(shutil.rmtree, folder, True)
        _SLIDES = _build(folder)
    return _SLIDES


def physical_box_contains(box, width_um: float, height_um: float, x_um: float, y_um: float,
                          tile_um: float) -> bool:
    """True if the tile at (x_um, y_um) lies entirely inside the fractional box."""
    x0, y0, x1, y1 = box
    return (x_um >= x0 * width_um and y_um >= y0 * height_um and x_um + tile_um <= x1 * width_um
            and y_um + tile_um <= y1 * height_um)
