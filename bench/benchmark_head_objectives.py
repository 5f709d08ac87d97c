"""Benchmark: what the per-gene heads learn under each training objective, beside the
ridge baseline and the oracle, on tile features shaped like a real cohort.

The cohort (tests/gene_models_fixtures.compartment_cohort): tiles drawn from five
compartments with per-patient stain shifts and noisy tiles, genes a linear function of
the compartment fractions with oracle R² spread from 0.05 to 0.8 (most genes weak).
Rows: EMO's protocol (tile loss, tile tune criterion), the slide-bag loss with the
patient tune criterion selected on the tune patients, the same with the untrained head
as a candidate and a refit, the default (epochs by 5-fold cross-validation over train +
tune, refit) at two learning rates, optionally an mlp head, and the pipeline's ridge
baseline on the same patients. Prints mean validation R² and its ratio to ridge's, the
best-epoch distribution, and the time per fit.

    OMP_NUM_THREADS=2 python bench/benchmark_head_objectives.py            # as in docs/benchmarks.md
    python bench/benchmark_head_objectives.py --genes 12 --epochs 20       # quick check
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
from gene_models_fixtures import compartment_cohort, heads_validation_r2, ridge_validation_r2  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs=3, default=(200, 50, 60), metavar=("TRAIN", "TUNE", "VAL"))
    parser.add_argument("--tiles", type=int, default=60)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--genes", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mlp", action="store_true", help="add the mlp head (slow on CPU)")
    args = parser.parse_args()
    cohort = compartment_cohort(seed=args.seed, n_train=args.patients[0], n_tune=args.patients[1],
                                n_validation=args.patients[2], tiles=args.tiles, dim=args.dim, n_genes=args.genes)
    schedule = dict(steps_per_epoch=100, max_epochs=args.epochs, patience=15, device="cpu")
    emo = dict(objective="tile", tune_criterion="tile", epoch_selection="tune", refit=False, untrained_candidate=False)
    tune_only = dict(epoch_selection="tune", refit=False, untrained_candidate=False)
    rows = [
        ("EMO protocol (tile loss, tile tune)", dict(schedule, **emo)),
        ("slide bags, patient tune, on tune patients", dict(schedule, **tune_only)),
        ("  + epoch 0 candidate + refit on train+tune", dict(schedule, epoch_selection="tune")),
        ("default: 5-fold CV epochs + refit, lr 1e-4", dict(schedule)),
        ("default, lr 3e-5 (the demo's)", dict(schedule, learning_rate=3e-5)),
    ]
    if args.mlp:  # minutes per fit on two cores
        rows.append(("default, mlp head", dict(schedule, head="mlp")))
    start = time.perf_counter()
    ridge_r2 = ridge_validation_r2(cohort)
    ridge_s = time.perf_counter() - start
    oracle = float(cohort["oracle_r2"].mean())
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}; "
          f"cohort: {args.patients} patients, {args.tiles} tiles, {args.dim}-d, {args.genes} genes; "
          f"oracle mean R2 {oracle:.3f}")
    header = f"{'model':46s} {'val R2':>7s} {'/ridge':>7s} {'best epoch p10/p50/p90':>24s} {'time s':>7s}"
    print(header)
    print("-" * len(header))
    for name, settings in rows:
        start = time.perf_counter()
        r2, result = heads_validation_r2(cohort, settings)
        seconds = time.perf_counter() - start
        epochs = "/".join(f"{v:.0f}" for v in np.percentile(result["best_epoch"], [10, 50, 90]))
        print(f"{name:46s} {r2.mean():7.3f} {r2.mean() / ridge_r2.mean():7.2f} {epochs:>24s} {seconds:7.1f}")
    print(f"{'ridge baseline (slide means, train + tune)':46s} {ridge_r2.mean():7.3f} {1.0:7.2f} {'-':>24s} "
          f"{ridge_s:7.1f}")
    print(f"{'oracle':46s} {oracle:7.3f} {oracle / ridge_r2.mean():7.2f}")


if __name__ == "__main__":
    main()
