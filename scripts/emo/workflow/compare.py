"""Compare two finished runs' results, provenance aside.

    python -m emo.workflow.compare RUN_A/results RUN_B/results

Tables (TSV/CSV) must be byte-identical; HDF5 stores identical in every group, dataset
and attribute except the provenance attributes; NumPy archives identical array by
array; figures byte-identical. Provenance sidecars (``*.json`` next to a table) and
torch checkpoints (``*.pt``, whose zip container records file names) are skipped: the
``.npz`` arrays saved beside each checkpoint carry the same weights. So are the measured
training timings (``training_cost.tsv``). Exit status 1 when
anything differs, so a refactor can show it changed no result.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Store attributes that describe how a store was made, not what it holds.
PROVENANCE_ATTRS = ("created", "code_version", "emo_version", "params", "tile_store_sha256")
# Timings measured in a job (training_cost.tsv: CPU / wall seconds) differ run to run.
SKIPPED_SUFFIXES = (".json", ".pt", ".log", "training_cost.tsv")


@dataclass(frozen=True)
class Difference:
    path: str
    problem: str


def _npz_equal(a: Path, b: Path) -> bool:
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def compare_files(a: Path, b: Path) -> str | None:
    """None when equal (provenance aside), else what differs."""
    from ..provenance import hdf5_content_sha256

    suffix = a.suffix.lower()
    if suffix == ".h5":
        ignore = PROVENANCE_ATTRS
        if hdf5_content_sha256(a, ignore) != hdf5_content_sha256(b, ignore):
            return "HDF5 content differs"
        return None
    if suffix == ".npz":
        return None if _npz_equal(a, b) else "arrays differ"
    return None if a.read_bytes() == b.read_bytes() else "bytes differ"


def compare_trees(a: str | Path, b: str | Path) -> tuple[list[Difference], int]:
    """(differences, files compared) between two result folders."""
    a, b = Path(a), Path(b)
    files_a = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    keep = lambda names: {n for n in names if not n.endswith(SKIPPED_SUFFIXES)}  # noqa: E731
    files_a, files_b = keep(files_a), keep(files_b)
    differences = [Difference(n, "only in the first run") for n in sorted(files_a - files_b)]
    differences += [Difference(n, "only in the second run") for n in sorted(files_b - files_a)]
    common = sorted(files_a & files_b)
    for name in common:
        problem = compare_files(a / name, b / name)
        if problem:
            differences.append(Difference(name, problem))
    return differences, len(common)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args(argv)
    differences, compared = compare_trees(args.first, args.second)
    print(f"| compared files | differing | skipped kinds |\n|---:|---:|---|\n"
          f"| {compared} | {len(differences)} | {', '.join(SKIPPED_SUFFIXES)} |")
    for difference in differences:
        print(f"DIFF {difference.path}: {difference.problem}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
