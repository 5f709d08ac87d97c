"""Feature-extraction throughput: end-to-end vs encoder-only, on the same tiles.

    python bench/benchmark_features.py                  # synthetic 20x slide, 128 tiles
    python bench/benchmark_features.py --slide my.svs --tiles 1024 --device cuda --workers 8

The default slide is synthetic (20x, 0.5 um/px, a repeated 1024 px H&E block), so a
271 um tile is read at 271 px from the 2x level and resized to tile_px.

* end-to-end: emo's production path (``emo.features.write_feature_store``): DataLoader
  workers running ``emo.tiling.TileReader`` (read from the slide pyramid + JPEG decode +
  resize to tile_px), uint8 batches, batch normalisation on the device, encoder, rows
  written to HDF5.
* encoder-only: the same model on the same tiles, already decoded, normalised and on the
  device; only the forward passes are timed.

Goal: end-to-end >= 90 % of encoder-only (tile reading hidden behind the encoder).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _synthetic_slide(dest: Path, side_um: float) -> Path:
    """A 20x (0.5 um/px) Aperio SVS: a 1024 px synthetic H&E block repeated to the
    requested side (uint8 only: a few hundred MB at most)."""
    import numpy as np
    from tiling_fixtures import synthetic_he, write_svs

    mpp = 0.5  # a 271 um tile is 542 level-0 px, read from the 2x-downsampled level
    block = synthetic_he(1024, 1024, mpp, seed=0)
    reps = max(1, int(np.ceil(side_um / mpp / 1024)))
    if reps > 12:
        raise SystemExit(f"--tiles too large for the synthetic slide ({reps * 1024} px side); pass --slide")
    return write_svs(np.tile(block, (reps, reps, 1)), dest / "bench.svs", mpp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slide", help="slide to read (default: a synthetic 40x Aperio SVS)")
    ap.add_argument("--encoder", default="efficientnet_lite0")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--random-weights", action="store_true",
                    help="use random weights of the architecture (throughput only; for encoders whose weights "
                         "are not on this machine)")
    ap.add_argument("--tiles", type=int, default=128, help="tiles to embed (first N accepted tiles)")
    ap.add_argument("--tile-um", type=float, default=271.0)
    ap.add_argument("--tile-px", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each measurement")
    args = ap.parse_args()

    import numpy as np
    import torch

    from emo import features as F
    from emo import slides, tiling
    from emo.stores.tiles import write_tile_store
    from emo.encoders import load_encoder

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    device = F.select_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="emo_bench_features_"))
    side_um = args.tile_um * (int(np.ceil(np.sqrt(args.tiles / 0.3))) + 1)
    slide = Path(args.slide) if args.slide else _synthetic_slide(work, side_um)
    print(f"slide {slide}", file=sys.stderr)

    t0 = time.perf_counter()
    info = slides.check_slide("bench", slide)
    params = {"tile_um": args.tile_um, "tile_px": args.tile_px, "min_sharpness": 0.0,
              "max_tiles_per_slide": None}
    result = tiling.tile_slide(info, params)
    store = tiling.build_store(result, "bench", "n/a")
    n = min(args.tiles, len(store.coords))
    if n == 0:
        raise SystemExit("no accepted tiles on the slide")
    store.coords = store.coords[:n]
    store_path = work / "tiles.h5"
    write_tile_store(store_path, store)
    tiling_s = time.perf_counter() - t0

    weights = args.weights
    if args.random_weights:
        from emo.encoders import get_spec

        torch.manual_seed(0)
        weights = work / "random_weights.pth"
        torch.save(get_spec(args.encoder).build().state_dict(), weights)
    encoder = load_encoder(args.encoder, weights)
    embedder = F.Embedder(encoder, device, args.precision)
    reader = tiling.TileReader(slide, store_path)
    coords_attrs = {"patch_level": 0}

    print(f"tiling done ({n} tiles, {tiling_s:.1f} s)", file=sys.stderr)
    # encoder-only input: the same tiles, decoded once, normalised, on the device
    batches_u8 = [F.collate_uint8([reader[i] for i in range(s, min(n, s + args.batch_size))])
                  for s in range(0, n, args.batch_size)]
    prepared = [embedder.preprocess(b) for b in batches_u8]
    embedder.forward_normalised(prepared[0])  # warm-up

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def encoder_only() -> float:
        sync()
        t = time.perf_counter()
        for x in prepared:
            embedder.forward_normalised(x)
        sync()
        return time.perf_counter() - t

    def end_to_end() -> float:
        out = work / "features.h5"
        t = time.perf_counter()
        F.write_feature_store(out, tiling.TileReader(slide, store_path), embedder, store.coords, coords_attrs,
                              {"bench": 1}, batch_size=args.batch_size, num_workers=args.workers, progress=False)
        sync()
        return time.perf_counter() - t

    enc_s, e2e_s = [], []
    for _ in range(args.repeats):  # interleaved, best of N (other load on the machine varies)
        enc_s.append(encoder_only())
        e2e_s.append(end_to_end())
    read_t = time.perf_counter()
    for i in range(min(n, 64)):
        reader[i]
    read_per_tile = (time.perf_counter() - read_t) / min(n, 64)

    enc_rate, e2e_rate = n / min(enc_s), n / min(e2e_s)
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "-"
    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores visible, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; device {device.type} {gpu}")
    print(f"slide: {slide.name} ({info.vendor}, mpp {info.mpp}), {n} tiles of {args.tile_um:g} um -> "
          f"{args.tile_px} px read from level {store.attrs['read_level']} (tiling {tiling_s:.1f} s)")
    print(f"encoder {args.encoder}{' (random weights)' if args.random_weights else ''} "
          f"({encoder.spec.input_px} px, {embedder.precision_name}), batch "
          f"{args.batch_size}, {args.workers} DataLoader workers, {torch.get_num_threads()} torch threads, "
          f"best of {args.repeats}")
    print()
    print("| path | seconds | tiles/s |")
    print("|------|---------|---------|")
    print(f"| encoder only (tensors in memory) | {min(enc_s):.2f} | {enc_rate:.1f} |")
    print(f"| end-to-end (slide read + decode + resize + encoder + HDF5) | {min(e2e_s):.2f} | {e2e_rate:.1f} |")
    print(f"| tile reading alone, 1 process | {read_per_tile * n:.2f} | {1 / read_per_tile:.1f} |")
    print()
    print(f"end-to-end / encoder-only = {100 * e2e_rate / enc_rate:.1f} % (goal >= 90 %)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
