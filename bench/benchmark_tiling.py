"""Tiling + QC throughput: emo.tiling vs a naive per-tile level-0 baseline.

    python bench/benchmark_tiling.py                 # writes a demo-like 40x slide
    python bench/benchmark_tiling.py --slide x.svs   # or any OpenSlide slide

emo.tiling reads the lowest-resolution pyramid level that still has the output
resolution, in runs of adjacent tiles (one read_region per run). The baseline reads
every candidate tile at level 0 with its own read_region, resizes it with the same
area filter and runs the same QC. Both use the same tissue mask (its time is
counted in both) and the same candidate tiles; tiles/s = candidates / seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

from emo import slides, tiling, tissue  # noqa: E402
from emo.slides import read_rgb  # noqa: E402


def write_demo_slide(path: Path, width: int, height: int, mpp: float = 0.25) -> Path:
    """A 40x Aperio-style pyramidal SVS: a synthetic H&E texture block repeated over an
    elliptical tissue region on glass (streamed by libvips, bounded memory)."""
    import pyvips

    from tiling_fixtures import synthetic_he

    block = synthetic_he(2048, 2048, mpp, seed=3)
    # fill the block with tissue everywhere (crop its centre, mirror to 2048)
    centre = block[512:1536, 512:1536]
    block = np.concatenate([np.concatenate([centre, centre[:, ::-1]], 1)] * 2, 0)
    tissue_img = pyvips.Image.new_from_memory(np.ascontiguousarray(block).tobytes(), 2048, 2048, 3, "uchar")
    tissue_img = tissue_img.replicate(math.ceil(width / 2048), math.ceil(height / 2048)).crop(0, 0, width, height)
    small_w, small_h = max(1, width // 64), max(1, height // 64)
    yy, xx = np.mgrid[0:small_h, 0:small_w]
    ellipse = ((((xx - small_w / 2) / (0.42 * small_w)) ** 2 + ((yy - small_h / 2) / (0.38 * small_h)) ** 2)
               <= 1.0).astype(np.uint8) * 255
    mask = pyvips.Image.new_from_memory(ellipse.tobytes(), small_w, small_h, 1, "uchar")
    mask = mask.resize(width / small_w, vscale=height / small_h, kernel="nearest").crop(0, 0, width, height)
    image = (mask > 128).ifthenelse(tissue_img, [240, 240, 238])
    description = (f"Aperio Image Library v10.0.0\n{width}x{height} [0,0 {width}x{height}] (256x256) "
                   f"JPEG/RGB Q=85|AppMag = 40|MPP = {mpp}")
    image = image.copy()
    image.set_type(pyvips.GValue.gstr_type, "image-description", description)
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=85, tile_width=256,
                   tile_height=256)
    return path


def naive(info, params, mask, candidates):
    """Per-tile level-0 read_region + area resize + the same QC."""
    slide = slides.open_slide(info.sample, info.path)
    size0 = params["tile_um"] / info.mpp
    side = int(round(size0))
    for x0, y0 in candidates:
        tile = tiling.resize_tile(read_rgb(slide, (int(x0), int(y0)), 0, (side, side)), params["tile_px"])
        tiling.tile_qc(tile)
    slide.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slide", help="slide to benchmark (default: write a demo-like 40x slide)")
    parser.add_argument("--mpp", type=float, default=None, help="override the slide's mpp")
    parser.add_argument("--width", type=int, default=20480)
    parser.add_argument("--height", type=int, default=16384)
    parser.add_argument("--tile-um", type=float, default=271.0)
    parser.add_argument("--tile-px", type=int, default=224)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.slide:
            path = Path(args.slide)
        else:
            t = time.perf_counter()
            path = write_demo_slide(Path(tmp) / "demo40x.svs", args.width, args.height)
            print(f"wrote {path.name} ({args.width}x{args.height} px, 0.25 µm/px) in "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        info = slides.check_slide(path.stem, path, args.mpp)
        params = tiling.tiling_params({"tile_um": args.tile_um, "tile_px": args.tile_px})

        t = time.perf_counter()
        slide = slides.open_slide(info.sample, info.path)
        mask = tissue.tissue_mask(slide, info.mpp, params["mask_um_per_px"])
        slide.close()
        t_mask = time.perf_counter() - t

        t = time.perf_counter()
        result = tiling.tile_slide(info, params)
        t_emo = time.perf_counter() - t
        candidates = result.candidates["coords"]

        t = time.perf_counter()
        naive(info, params, mask, candidates)
        t_naive = time.perf_counter() - t + t_mask

    n = len(candidates)
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (StopIteration, OSError):
        pass
    print(f"machine: {cpu}, {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    print(f"slide: {info.level0_width}x{info.level0_height} px, mpp {info.mpp}, levels "
          f"{[round(d, 3) for d in info.level_downsamples]}; tile {params['tile_um']} µm -> "
          f"{params['tile_px']} px; {n} candidate tiles, {result.stats['n_accepted']} accepted; "
          f"emo read level {result.geometry.read_level}, {result.stats['n_reads']} read_region calls")
    print()
    print(f"| method | seconds | tiles/s | speed-up |")
    print(f"|---|---:|---:|---:|")
    print(f"| naive: per-tile level-0 read_region + resize + QC | {t_naive:.2f} | {n / t_naive:.1f} | 1.0x |")
    print(f"| emo.tiling: pyramid level + run reads + QC | {t_emo:.2f} | {n / t_emo:.1f} | "
          f"{t_naive / t_emo:.1f}x |")


if __name__ == "__main__":
    main()
