"""Benchmark: batched chunk training of per-gene heads vs one gene at a time.

Both paths run the same code (emo.gene_models.train_heads) on the same features with
the same settings; the one-gene loop trains a subset of genes alone and is scaled
per gene. Early stopping is disabled (patience > epochs) so both do identical work.
Prints a table and a projection of the wall time of a transcriptome-wide run
(17,695 genes x 1,000 slides) on this CPU.

    OMP_NUM_THREADS=1 python bench/benchmark_gene_training.py               # realistic sizes
    python bench/benchmark_gene_training.py --genes 64 --single-genes 4     # quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from emo import gene_models as gm  # noqa: E402


def make_data(slides: int, tiles: int, dim: int, genes: int, tune_fraction: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_tune = max(2, int(round(slides * tune_fraction)))
    n_train = slides - n_tune
    latent = rng.normal(size=(slides, 8))
    mixing = rng.normal(size=(8, dim)).astype(np.float32)
    loadings = rng.normal(size=(8, genes))
    y = latent @ loadings / 3 + rng.normal(size=(slides, genes))
    x = (np.repeat(latent, tiles, 0).astype(np.float32) @ mixing
         + rng.normal(size=(slides * tiles, dim)).astype(np.float32))
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y[:n_train].mean(0)) / y[:n_train].std(0)
    patient = np.repeat(np.arange(slides), tiles)
    train_rows = patient < n_train
    return (x[train_rows], y[:n_train], patient[train_rows], x[~train_rows], y[n_train:],
            patient[~train_rows] - n_train)


def idiomatic_one_gene(x, y_tile, xt, yt_tile, cfg: gm.TrainConfig) -> float:
    """A typical per-gene PyTorch loop (nn.Linear, torch.optim.Adam, DataLoader with a
    replacement sampler), as one would write to train EMO's heads one gene at a time.
    Returns its best tune loss (the work is what is timed)."""
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    torch.manual_seed(cfg.seed)
    model = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y_tile.astype(np.float32)))
    loader = DataLoader(data, batch_size=cfg.batch_size,
                        sampler=RandomSampler(data, replacement=True, num_samples=cfg.steps_per_epoch * cfg.batch_size))
    xt_t, yt_t = torch.from_numpy(xt), torch.from_numpy(yt_tile.astype(np.float32))
    best = float("inf")
    for _ in range(cfg.max_epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb).squeeze(1), yb)
            loss.backward()
            opt.step()
        with torch.no_grad():
            best = min(best, float(torch.nn.functional.mse_loss(model(xt_t).squeeze(1), yt_t)))
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genes", type=int, default=1000, help="genes in the batched chunk")
    parser.add_argument("--single-genes", type=int, default=8, help="genes trained one at a time (scaled)")
    parser.add_argument("--slides", type=int, default=100)
    parser.add_argument("--tiles", type=int, default=50, help="tiles per slide")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150, help="steps per epoch (EMO 150)")
    parser.add_argument("--batch", type=int, default=32, help="tiles per step (EMO 32)")
    parser.add_argument("--head", default="linear", choices=["linear", "mlp"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tune-fraction", type=float, default=0.2)
    args = parser.parse_args(argv)

    x, y, p, xt, yt, pt = make_data(args.slides, args.tiles, args.dim, args.genes, args.tune_fraction)
    genes = [f"G{i:05d}" for i in range(args.genes)]
    cfg = gm.TrainConfig.from_config(dict(head=args.head, steps_per_epoch=args.steps, batch_size=args.batch,
                         max_epochs=args.epochs, patience=args.epochs + 1, device=args.device))
    gm.train_heads(x, y[:, :2], p, xt, yt[:, :2], pt, genes[:2], gm.TrainConfig.from_config(dict(
        head=args.head, steps_per_epoch=3, max_epochs=1, device=args.device)))  # warm-up

    start = time.perf_counter()
    batched = gm.train_heads(x, y, p, xt, yt, pt, genes, cfg)
    t_batched = time.perf_counter() - start

    start = time.perf_counter()
    single_best = []
    for i in range(args.single_genes):
        out = gm.train_heads(x, y[:, [i]], p, xt, yt[:, [i]], pt, [genes[i]], cfg)
        single_best.append(out["params"])
    t_single = time.perf_counter() - start
    idiomatic = args.head == "linear"
    if idiomatic:
        idiomatic_one_gene(x, y[p, 0], xt, yt[pt, 0], gm.TrainConfig.from_config(dict(steps_per_epoch=3, max_epochs=1)))  # warm-up
        start = time.perf_counter()
        for i in range(args.single_genes):
            idiomatic_one_gene(x, y[p, i], xt, yt[pt, i], cfg)
        t_idiomatic = time.perf_counter() - start
    per_gene_single = t_single / args.single_genes
    per_gene_batched = t_batched / args.genes
    speedup = per_gene_single / per_gene_batched
    # equivalence spot check on the genes trained both ways
    key = "W" if args.head == "linear" else "W2"
    max_diff = max(float(np.abs(single_best[i][key][0] - batched["params"][key][i]).max())
                   for i in range(args.single_genes))

    tiles_train = x.shape[0]
    epochs_emo = 500
    full_genes, full_slides = 17695, 1000
    chunks = int(np.ceil(full_genes / args.genes))
    # Per-epoch cost of a chunk: the training steps do not depend on the number of
    # slides (fixed steps x batch); the tune loss scales with the tune tiles.
    params_t = {k: torch.as_tensor(v) for k, v in batched["params"].items()}
    xt_t, yt_t, pt_t = torch.as_tensor(xt), torch.as_tensor(yt, dtype=torch.float32), torch.as_tensor(pt)
    start = time.perf_counter()
    gm._tune_loss(params_t, xt_t, yt_t, pt_t, cfg.eval_batch)
    t_eval = time.perf_counter() - start
    full_tune_tiles = int(full_slides * 0.14) * gm.TrainConfig.from_config(dict()).tune_tiles_per_slide
    per_epoch_batched = max(t_batched / args.epochs - t_eval, 0.0) + t_eval * full_tune_tiles / xt.shape[0]
    projection_h = chunks * per_epoch_batched * epochs_emo / 3600
    projection_single_h = full_genes * per_gene_single / args.epochs * epochs_emo / 3600

    threads = torch.get_num_threads()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, torch "
          f"{torch.__version__}, {threads} torch thread(s), device {args.device}")
    print(f"data: {args.slides} slides x {args.tiles} tiles x {args.dim}-d ({tiles_train} training tiles, "
          f"{xt.shape[0]} tune tiles); head {args.head}; {args.epochs} epochs x {args.steps} steps x batch "
          f"{args.batch}")
    print()
    print(f"| mode | genes | wall s | s per gene |")
    print(f"|---|---|---|---|")
    print(f"| batched chunk | {args.genes} | {t_batched:.2f} | {per_gene_batched:.4f} |")
    print(f"| one gene at a time (same code, G=1) | {args.single_genes} | {t_single:.2f} | {per_gene_single:.4f} |")
    if idiomatic:
        print(f"| one gene at a time (nn.Linear + torch.optim.Adam + DataLoader) | {args.single_genes} | "
              f"{t_idiomatic:.2f} | {t_idiomatic / args.single_genes:.4f} |")
    print()
    print(f"speed-up per gene, batched vs the same code one gene at a time: {speedup:.0f}x")
    if idiomatic:
        print(f"speed-up per gene, batched vs an idiomatic per-gene PyTorch loop: "
              f"{t_idiomatic / args.single_genes / per_gene_batched:.0f}x")
    print(f"max |delta weight| batched vs alone on {args.single_genes} genes: {max_diff:.2e}")
    print(f"projection, 17,695 genes x 1,000 slides, {epochs_emo} epochs (no early stopping; EMO's maximum), "
          f"chunks of {args.genes}: batched {projection_h:.1f} h on this CPU ({chunks} chunk jobs, "
          f"{projection_h / chunks * 60:.0f} min each), one gene at a time {projection_single_h:.0f} h")
    print(f"(the training steps per epoch are fixed (steps x batch), so they do not grow with the slides; the "
          f"per-epoch tune loss ({t_eval:.2f} s here for {xt.shape[0]} tune tiles) is scaled to {full_tune_tiles} "
          f"tune tiles = 140 tune slides x {gm.TrainConfig.from_config(dict()).tune_tiles_per_slide}; early stopping usually ends "
          f"genes far before {epochs_emo} epochs)")


if __name__ == "__main__":
    main()
