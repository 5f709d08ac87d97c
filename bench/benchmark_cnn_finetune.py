"""Benchmark: EMO's per-gene CNN fine-tuning loop (emo.cnn_finetune) against its loader.

    python bench/benchmark_cnn_finetune.py                                  # CPU, small
    python bench/benchmark_cnn_finetune.py --device cuda --steps 50 --workers 8 --input-px 299 --batch-size 32

On the tiles of a synthetic 20x slide (tiled at 271 um as EMO, tile_px px), measured:

* loader-only: batches from emo.cnn_finetune.BatchSource through the production
  DataLoader (TileReader reads from the slide pyramid, JPEG decode, resize to
  tile_px, random 90 deg rotation + flip), tiles/s with nothing consuming them; also
  with the tiles first staged to local disk (tile_source: stage);
* train loop: the production step (loader + transfer + resize/normalise + Inception V3
  forward/backward + Adam), tiles/s;
* compute only: the same step on one batch already on the device (no loader);
* tune (eval) forward, tiles/s, for the 313 tune batches of each epoch.

Projection for 17,695 genes at the paper's schedule: per epoch 150 x 32 training tiles
and 313 x 32 tune tiles, at 81 epochs (the fewest early stopping allows: patience 80)
and 500 (the cap), against the paper's ~300,000 GPU-hours (12-70 h per gene on a V100).
With --sustained-tflops it also projects from the network's counted FLOPs.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

GENES = 17_695
PAPER_GPU_HOURS = 300_000
TRAIN_TILES_PER_EPOCH = 150 * 32
TUNE_TILES_PER_EPOCH = 313 * 32


def _cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _slide(dest: Path, tiles: int):
    import numpy as np
    from tiling_fixtures import synthetic_he, write_svs

    mpp = 0.5
    block = synthetic_he(1024, 1024, mpp, seed=0)
    reps = max(1, min(8, int(np.ceil(np.sqrt(tiles / 0.3) * 271 / mpp / 1024))))
    return write_svs(np.tile(block, (reps, reps, 1)), dest / "bench.svs", mpp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=64, help="tiles in the pool (first N accepted tiles)")
    ap.add_argument("--tile-px", type=int, default=299, help="tile side read from the slide")
    ap.add_argument("--input-px", type=int, default=299, help="network input side (the paper's tiles: 598 px)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measurement (after one warm-up)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sustained-tflops", type=float, default=None,
                    help="also project from counted FLOPs at this sustained rate (e.g. 10 for a V100 in fp32)")
    args = ap.parse_args()

    import torch
    from torch import nn

    from emo import cnn_finetune as cf
    from emo import slides, tiling
    from emo.features import Preprocess
    from emo.stores.tiles import write_tile_store

    if args.threads:
        torch.set_num_threads(args.threads)
    device = cf.resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="emo_bench_finetune_"))
    slide = _slide(work, args.tiles)
    info = slides.check_slide("bench", slide)
    result = tiling.tile_slide(info, {"tile_um": 271.0, "tile_px": args.tile_px, "min_sharpness": 0.0,
                                      "max_tiles_per_slide": None})
    store = tiling.build_store(result, "bench", "n/a")
    store.coords = store.coords[: args.tiles]
    write_tile_store(work / "tiles.h5", store)
    reader = tiling.TileReader(slide, work / "tiles.h5")
    n = len(reader)
    cfg = cf.FinetuneConfig.from_config({"init": "random", "input_px": args.input_px, "batch_size": args.batch_size,
                                         "steps_per_epoch": args.steps + 1, "num_workers": args.workers,
                                         "device": str(device.type)})
    pool = cf.build_pool(["bench"], {"bench": n}, {"bench": 0.0}, None, 0)
    source = cf.BatchSource([reader], pool, cfg.batch_size, cfg.steps_per_epoch, 0, "train")
    pin = device.type == "cuda"

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def loader_rate(src) -> float:
        it = iter(cf.loader(src, range(args.steps + 1), args.workers, cfg.prefetch_batches, pin))
        next(it)
        t = time.perf_counter()
        for _ in range(args.steps):
            next(it)
        return args.steps * cfg.batch_size / (time.perf_counter() - t)

    loader_stream = loader_rate(source)
    staged = cf.StagedTiles([reader], work / "stage", "bench")
    loader_staged = loader_rate(cf.BatchSource([reader], pool, cfg.batch_size, cfg.steps_per_epoch, 0, "train",
                                               staged))

    model = cf.build_model(cfg, "BENCH").to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = cf.make_optimizer(model, cfg)
    pre = Preprocess(cfg.input_px, cf.INCEPTION_MEAN, cf.INCEPTION_STD, device, channels_last=device.type == "cuda")
    loss_fn = nn.MSELoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(pre(x)).squeeze(1), y.to(device, non_blocking=True))
        loss.backward()
        opt.step()

    model.train()
    it = iter(cf.loader(source, range(args.steps + 1), args.workers, cfg.prefetch_batches, pin))
    step(*next(it))
    sync()
    t = time.perf_counter()
    for _ in range(args.steps):
        step(*next(it))
    sync()
    train_loop = args.steps * cfg.batch_size / (time.perf_counter() - t)
    x, y = source[0]
    x = x.pin_memory() if pin else x
    t = time.perf_counter()
    for _ in range(args.steps):
        step(x, y)
    sync()
    compute = args.steps * cfg.batch_size / (time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        model(pre(x))
        sync()
        t = time.perf_counter()
        for _ in range(args.steps):
            model(pre(x))
        sync()
    eval_rate = args.steps * cfg.batch_size / (time.perf_counter() - t)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(pre(x[:1]))
    gflop_fwd = counter.get_total_flops() / 1e9

    epoch_s = TRAIN_TILES_PER_EPOCH / train_loop + TUNE_TILES_PER_EPOCH / eval_rate
    rows = [("loader only, streamed from the slide (tiles/s)", f"{loader_stream:.1f}"),
            ("loader only, staged to local disk (tiles/s)", f"{loader_staged:.1f}"),
            ("train loop, end to end (tiles/s)", f"{train_loop:.2f}"),
            ("train step, compute only (tiles/s)", f"{compute:.2f}"),
            ("loader / train-loop rate", f"{loader_stream / train_loop:.1f}x"),
            ("train loop / compute only (device kept busy)", f"{100 * train_loop / compute:.0f} %"),
            ("tune forward (tiles/s)", f"{eval_rate:.2f}"),
            ("forward GFLOP per tile", f"{gflop_fwd:.2f}"),
            ("one epoch (150 x 32 train + 313 x 32 tune tiles)", f"{epoch_s / 60:.1f} min")]
    for epochs in (81, 500):
        hours = GENES * epochs * epoch_s / 3600
        rows.append((f"17,695 genes x {epochs} epochs, this device (device-hours)",
                     f"{hours:,.0f} ({hours / PAPER_GPU_HOURS:.2g}x the paper's ~300,000)"))
    implied = PAPER_GPU_HOURS * 3600 / GENES / epoch_s
    rows.append(("epochs per gene the paper's 300,000 h buy at this rate", f"{implied:.1f}"))
    if args.sustained_tflops:
        flop_epoch = gflop_fwd * 1e9 * (3 * TRAIN_TILES_PER_EPOCH + TUNE_TILES_PER_EPOCH)
        for epochs in (81, 500):
            hours = GENES * epochs * flop_epoch / (args.sustained_tflops * 1e12) / 3600
            rows.append((f"17,695 genes x {epochs} epochs at {args.sustained_tflops:g} TFLOP/s (FLOP count)",
                         f"{hours:,.0f} GPU-hours"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
    print(f"# {name}; {torch.get_num_threads()} torch threads, {args.workers} loader workers; tiles {args.tile_px} px "
          f"-> input {args.input_px} px, batch {args.batch_size}, {args.steps} timed steps, pool {n} tiles; "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")
    staged.remove()


if __name__ == "__main__":
    main()
