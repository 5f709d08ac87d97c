#!/usr/bin/env python
"""DAG-build benchmark: a dry run of the whole workflow at TCGA-BRCA scale.

Builds placeholder inputs in a scratch directory — a sample sheet of N slides (empty
placeholder slide files), an expression matrix of G genes x N patients, a clinical
table — and times ``snakemake -n`` (DAG construction and job planning; nothing runs).
Prints one table row per size. Goal: < 30 s at 1,000 slides x 17,695 genes, with jobs
growing with slides + gene chunks (not slides x genes).

    python bench/benchmark_dag.py                       # 100, 300, 1000 slides x 17,695 genes
    python bench/benchmark_dag.py --slides 1000 --genes 17695 5000
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXTERNAL_FRACTION = 0.2
# Real names for genes a config may refer to (proliferation, receptors, traits).
MARKER_GENES = ("MKI67", "FOXA1", "ESR1", "PGR", "ERBB2", "AURKA", "BIRC5", "CCNB1", "MYBL2", "TOP2A",
                "GATA3", "KRT5", "KRT14", "KRT17", "TP53", "CD3E", "COL1A1", "MYC", "EGFR", "BCL2")  # share of slides in an external cohort (like ABIM next to TCGA)


def make_inputs(root: Path, n_slides: int, n_genes: int) -> Path:
    """Placeholder cohort under ``root``; returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    slides = root / "slides"
    slides.mkdir(exist_ok=True)
    n_external = int(n_slides * EXTERNAL_FRACTION)
    rows, cohort_patients = [], {"TCGA": [], "EXT": []}
    for i in range(n_slides):
        cohort = "EXT" if i < n_external else "TCGA"
        patient = f"{cohort}-P{i:05d}"
        sample = f"{cohort}-S{i:05d}"
        path = slides / f"{sample}.svs"
        path.touch()
        rows.append(f"{sample}\t{patient}\t{cohort}\t{path}\t0.5")
        cohort_patients[cohort].append(patient)
    (root / "samples.tsv").write_text("sample\tpatient\tcohort\tslide\tmpp\n" + "\n".join(rows) + "\n")
    named = [g for g in MARKER_GENES][:n_genes]
    genes = named + [f"GENE{g:05d}" for g in range(n_genes - len(named))]
    for cohort, patients in cohort_patients.items():
        zeros = "\t0" * len(patients)
        with open(root / f"expression_{cohort}.tsv", "w") as handle:
            handle.write("gene\t" + "\t".join(patients) + "\n")
            for gene in genes:
                handle.write(gene + zeros + "\n")
    clinical = ["patient\tage\ter\tpr\ther2\tpam50\ttp53\tsurvival_time\tsurvival_event"]
    for patients in cohort_patients.values():
        clinical += [f"{p}\t55\tpositive\tpositive\tnegative\tLumA\twildtype\t60\t0" for p in patients]
    (root / "clinical.tsv").write_text("\n".join(clinical) + "\n")

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["samples"] = str(root / "samples.tsv")
    config["clinical"] = str(root / "clinical.tsv")
    config["cohorts"] = {
        "TCGA": {"expression": str(root / "expression_TCGA.tsv"), "role": "training", "reference": True},
        "EXT": {"expression": str(root / "expression_EXT.tsv"), "role": "external"},
    }
    config.setdefault("demo", {})["enabled"] = False
    config.setdefault("spatial", {})["enabled"] = False  # placeholder cohort: no ROI tables
    heterogeneity = config.get("heterogeneity") or {}
    if not heterogeneity.get("traits"):
        heterogeneity["traits"] = ["MKI67", "FOXA1"]
    config["heterogeneity"] = heterogeneity
    # EMO's split proportions (the schema defaults)
    config.get("splits", {}).pop("proportions", None)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def dry_run(root: Path, config: Path, snakefile: Path = REPO / "Snakefile"
            ) -> tuple[float, float, int, dict[str, int], str]:
    """Wall seconds, CPU seconds (user + sys of snakemake: robust on a busy machine),
    job count, jobs per rule, console output."""
    exe = Path(sys.executable).parent / "snakemake"
    cmd = [str(exe if exe.exists() else "snakemake"), "-s", str(snakefile), "-d", str(root / "wd"),
           "--configfile", str(config), "-n", "--quiet", "rules", "--cores", "1"]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"dry run failed ({result.returncode}):\n{text[-5000:]}")
    counts: dict[str, int] = {}
    in_stats = False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            in_stats, counts = True, {}
            continue
        if in_stats:
            match = re.match(r"^(\w+)\s+(\d+)\s*$", line)
            if match:
                counts[match.group(1)] = int(match.group(2))
            elif line.strip() == "" and counts:
                in_stats = False
    total = counts.pop("total", sum(counts.values()))
    return seconds, cpu, total, counts, text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slides", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--genes", type=int, nargs="+", default=[17695])
    parser.add_argument("--keep", help="keep the placeholder inputs in this directory")
    parser.add_argument("--snakefile", type=Path, default=REPO / "Snakefile",
                        help="workflow to time (default: this repository's)")
    args = parser.parse_args(argv)

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="emo_dag_bench_"))
    rows = []
    try:
        print(f"{'slides':>7} {'genes':>7} {'jobs':>7} {'wall_s':>7} {'cpu_s':>7}  jobs per rule")
        for n_genes in args.genes:
            for n_slides in args.slides:
                root = base / f"s{n_slides}_g{n_genes}"
                config = make_inputs(root, n_slides, n_genes)
                seconds, cpu, total, counts, _ = dry_run(root, config, args.snakefile)
                per_rule = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
                print(f"{n_slides:>7} {n_genes:>7} {total:>7} {seconds:>7.1f} {cpu:>7.1f}  {per_rule}", flush=True)
                rows.append((n_slides, n_genes, total, cpu))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    # CPU seconds: on an idle machine the wall time is about the same.
    slow = [r for r in rows if r[0] >= 1000 and r[3] >= 30]
    if slow:
        print(f"GOAL MISSED: DAG build >= 30 CPU s for (slides, genes, jobs, cpu_s) {slow}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
