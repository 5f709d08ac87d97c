#!/usr/bin/env python
"""Slide-model training benchmark (HE2RNA, attention MIL), scaled down and projected.

Times, on synthetic bags of 2,048-d features (ResNet-50 width), one training epoch of
each model with the paper's / CLAM's architecture at a few gene counts, the k-means
super-tiling of one 8,000-tile slide, and projects to TCGA-BRCA scale: 1,000 slides
(800 training slides per fold of 5) x 17,695 genes, HE2RNA 200 epochs on 100
super-tiles, attention MIL 200 epochs on 8,000 tiles per slide (upper bounds: early
stopping usually ends sooner). Cost per epoch is linear in slides; for HE2RNA
a + b * genes per slide (fitted on the measured gene counts); for attention MIL linear
in tiles (measured at --mil-tiles, scaled to 8,000). Prints one row per measurement and
the projection.

    python bench/benchmark_slide_models.py                 # ~1-2 min on 2 CPU cores
    python bench/benchmark_slide_models.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from emo.slide_models.bags import supertiles  # noqa: E402
from emo.slide_models.nets import HE2RNA, GatedAttentionMIL  # noqa: E402
from emo.slide_models.training import fit  # noqa: E402

FULL = {"slides": 1000, "train_slides": 800, "genes": 17695, "folds": 5, "epochs": 200, "tiles": 8000}


def epoch_seconds(model, bags, y, batch_size, ks, device) -> float:
    """Wall seconds of one training epoch (plus the held-out evaluation on 2 bags)."""
    t0 = time.perf_counter()
    fit(model, bags, y, bags[:2], y[:2], lr=1e-3, weight_decay=0.0, batch_size=batch_size, max_epochs=1,
        patience=1, ks=ks, seed=0, device=device)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slides", type=int, default=64, help="training slides per measured epoch")
    parser.add_argument("--genes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--mil-tiles", type=int, default=1000, help="tiles per slide of the attention MIL bags")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    coords = np.stack(np.meshgrid(np.arange(100), np.arange(80)), -1).reshape(-1, 2) * 512
    features = rng.normal(size=(len(coords), 2048)).astype(np.float32)
    t0 = time.perf_counter()
    supertiles(features, coords, 100, seed=0)
    kmeans_s = time.perf_counter() - t0
    print(f"| step | slides | genes | tiles/slide | seconds |\n|---|---:|---:|---:|---:|")
    print(f"| k-means super-tiles (1 slide) | 1 | - | {len(coords)} | {kmeans_s:.2f} |")

    st_bags = [rng.normal(size=(100, 2048)).astype(np.float32) for _ in range(args.slides)]
    he = {}
    for g in args.genes:
        torch.manual_seed(0)
        y = rng.normal(size=(args.slides, g)).astype(np.float32)
        model = HE2RNA(2048, g, [1024, 1024], [1, 2, 5, 10, 20, 50, 100], 0.25)
        he[g] = epoch_seconds(model, st_bags, y, 16, [1, 2, 5, 10, 20, 50, 100], args.device)
        print(f"| HE2RNA epoch (100 super-tiles, layers 1024-1024) | {args.slides} | {g} | 100 | {he[g]:.2f} |")
    g1, g2 = min(he), max(he)
    b = (he[g2] - he[g1]) / (g2 - g1) / args.slides
    a = he[g1] / args.slides - b * g1
    he_slide_epoch = a + b * FULL["genes"]

    mil_bags = [rng.normal(size=(args.mil_tiles, 2048)).astype(np.float32) for _ in range(args.slides)]
    y = rng.normal(size=(args.slides, g2)).astype(np.float32)
    torch.manual_seed(0)
    model = GatedAttentionMIL(2048, g2, 256, 128, 0.25)
    mil = epoch_seconds(model, mil_bags, y, 1, None, args.device)
    print(f"| attention MIL epoch (hidden 256, batch 1) | {args.slides} | {g2} | {args.mil_tiles} | {mil:.2f} |")
    mil_slide_epoch = mil / args.slides * FULL["tiles"] / args.mil_tiles

    per_fold = FULL["train_slides"] * FULL["epochs"]
    print(f"\nProjection to {FULL['slides']:,} slides x {FULL['genes']:,} genes ({FULL['folds']} folds of "
          f"{FULL['train_slides']} training slides, {FULL['epochs']} epochs at most), device {args.device}, "
          f"{args.threads} threads:")
    print("| model | s per slide-epoch | hours per fold | hours, 5 folds | k-means, 1,000 slides (h) |\n"
          "|---|---:|---:|---:|---:|")
    print(f"| HE2RNA (super-tiles) | {he_slide_epoch:.4f} | {he_slide_epoch * per_fold / 3600:.1f} | "
          f"{he_slide_epoch * per_fold * FULL['folds'] / 3600:.1f} | {kmeans_s * FULL['slides'] / 3600:.2f} |")
    print(f"| attention MIL ({FULL['tiles']:,} tiles) | {mil_slide_epoch:.4f} | {mil_slide_epoch * per_fold / 3600:.1f} | "
          f"{mil_slide_epoch * per_fold * FULL['folds'] / 3600:.1f} | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
