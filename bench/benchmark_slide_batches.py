#!/usr/bin/env python
"""Per-slide stages as one job per slide vs batched jobs (config ``slide_batches``).

Renders the small demo's 49 slides (config/test) once (untimed), then times
``snakemake`` building their tile and feature stores twice from scratch in one workspace: with ``slide_batches: 0`` (one
job per slide and stage, the baseline) and with ``slide_batches: B``. Prints wall and
CPU seconds (Snakemake and all its jobs) and the ratio. The outputs of both runs are
the same files with the same contents (tests/workflow/test_slide_batches.py).

    python bench/benchmark_slide_batches.py                  # 6 batches (~8 slides each), 2 cores
    python bench/benchmark_slide_batches.py --batches 12 --cores 4
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
ENCODER = "efficientnet_lite0"


def run(workdir: Path, config: Path, targets: list[str], cores: int) -> tuple[float, float, str]:
    """(wall s, CPU s of snakemake and its children, stdout+stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
                             str(config), "--cores", str(cores), *targets], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"snakemake failed:\n{result.stderr[-5000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=6, help="slide_batches of the batched run")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="emo-bench-batches-"))
    for folder in ("config", "resources"):
        shutil.copytree(REPO / folder, root / folder)
    config = yaml.safe_load((REPO / "config/test/config.yaml").read_text())
    sheet = (root / config["samples"]).read_text().splitlines()
    header, rows = sheet[0], [r for r in sheet[1:] if r and not r.startswith("#")]
    samples = sorted(r.split("\t")[0] for r in rows)
    slides = [f"{config['demo']['out_dir']}/slides/{s}.svs" for s in samples]
    stores = [f"results/tiles/{s}.h5" for s in samples] + [f"results/features/{ENCODER}/{s}.h5" for s in samples]

    paths = {}
    for n_batches in (0, args.batches):
        paths[n_batches] = root / f"config/test/bench_{n_batches}.yaml"
        paths[n_batches].write_text(yaml.safe_dump(dict(config, slide_batches=n_batches), sort_keys=False))
    print(f"rendering {len(slides)} demo slides (untimed) in {root}", flush=True)
    run(root, paths[0], slides, args.cores)

    rows_out = []
    for n_batches in (0, args.batches):
        shutil.rmtree(root / "results", ignore_errors=True)
        wall, cpu, log = run(root, paths[n_batches], stores, args.cores)
        jobs = sum(1 for line in log.splitlines()
                   if line.removeprefix("local").startswith(("rule tile_slide", "rule extract_features")))
        rows_out.append((n_batches, jobs, wall, cpu))
        print(f"  slide_batches={n_batches}: {jobs} jobs, {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)

    base_wall, base_cpu = rows_out[0][2], rows_out[0][3]
    print(f"\n{len(samples)} demo slides, tile + feature stores ({ENCODER}), --cores {args.cores}; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
    print("| slide_batches | jobs | wall s | CPU s | wall speed-up | CPU saved per slide s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n_batches, jobs, wall, cpu in rows_out:
        print(f"| {n_batches} | {jobs} | {wall:.1f} | {cpu:.1f} | {base_wall / wall:.2f}x | "
              f"{(base_cpu - cpu) / len(samples):.2f} |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
