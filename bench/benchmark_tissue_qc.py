"""Share of each planted demo compartment that survives tile QC, this code vs an older commit.

    python bench/benchmark_tissue_qc.py                      # this tree only
    python bench/benchmark_tissue_qc.py --old 4d7c87b        # side by side with that commit
    python bench/benchmark_tissue_qc.py --old 4d7c87b --cmu tests/data/cache/CMU-1-Small-Region.svs

Demo slides (emo.demo.qc.QC_SLIDES: equal compartment shares, mixing 60/150/350 µm,
20x, 2600 x 1900 µm) are tiled with the default tiling settings of each code version,
each in its own Python process (the old code is `git archive`d into a temporary
folder). The table gives, per compartment, the share of its planted area lying in
accepted tiles, pooled over the slides, and the reasons of the rejected tiles.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from emo.demo import qc  # noqa: E402
from emo.demo.design import LABELS  # noqa: E402

TILE = """
import sys, numpy as np
from emo import slides, tiling
info = slides.check_slide(sys.argv[1], sys.argv[2])
r = tiling.tile_slide(info, {})
np.savez(sys.argv[3], coords=r.candidates["coords"], reasons=r.candidates["reject_reason"].astype(str),
         tissue=r.candidates["tissue_fraction"], size0=r.geometry.tile_size0, mpp=info.mpp)
"""


def tile_with(scripts_dir: Path, sample: str, slide: Path, out: Path) -> dict:
    subprocess.run([sys.executable, "-c", TILE, sample, str(slide), str(out)], check=True,
                   env={"PYTHONPATH": str(scripts_dir), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    z = np.load(out)
    return {"coords": z["coords"], "reject_reason": z["reasons"].astype(object), "tissue": z["tissue"],
            "size0": float(z["size0"]), "mpp": float(z["mpp"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", help="git commit/ref to compare with (its scripts/emo)")
    parser.add_argument("--cmu", help="also report reasons on this slide (e.g. CMU-1-Small-Region.svs)")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        versions = {"new": ROOT / "scripts"}
        if args.old:
            (tmp / "old").mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old, "scripts/emo", "workflow/schemas"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tmp / "old")], input=archive, check=True)
            versions = {"old": tmp / "old" / "scripts", **versions}
        area = {v: {} for v in versions}
        reasons = {v: {} for v in versions}
        for seed, mixing in qc.QC_SLIDES:
            slide = tmp / f"QC{seed}.svs"
            layout = qc.write_qc_slide(slide, seed, mixing)
            for version, scripts_dir in versions.items():
                c = tile_with(scripts_dir, f"QC{seed}", slide, tmp / f"{version}{seed}.npz")
                shares = qc.compartment_shares(layout.labels, 4.0, c, c["mpp"], c["size0"])
                for name, code in LABELS.items():
                    n = int((layout.labels == code).sum())
                    for group, share in shares[name].items():
                        area[version].setdefault(name, {}).setdefault(group, 0.0)
                        area[version][name][group] += share * n
                    area[version][name].setdefault("_n", 0)
                    area[version][name]["_n"] += n
                for r in c["reject_reason"]:
                    reasons[version][r or "accepted"] = reasons[version].get(r or "accepted", 0) + 1
        table = {v: {name: {g: s / d["_n"] for g, s in d.items() if g != "_n"} for name, d in area[v].items()}
                 for v in versions}
        print("| compartment | " + " | ".join(f"accepted ({v})" for v in versions) + " | "
              + " | ".join(f"in `background` tiles ({v})" for v in versions) + " |")
        print("|---" * (1 + 2 * len(versions)) + "|")
        for name in LABELS:
            acc = " | ".join(f"{table[v][name].get('accepted', 0):.3f}" for v in versions)
            bg = " | ".join(f"{table[v][name].get('background', 0):.3f}" for v in versions)
            print(f"| {'glass' if name == 'background' else name} | {acc} | {bg} |")
        print("tiles by reason:", json.dumps(reasons))
        out = {"demo": table, "demo_reasons": reasons}
        if args.cmu:
            out["cmu"] = {}
            for version, scripts_dir in versions.items():
                c = tile_with(scripts_dir, "CMU-1-Small-Region", Path(args.cmu), tmp / f"cmu_{version}.npz")
                counts: dict[str, int] = {}
                for r in c["reject_reason"]:
                    counts[r or "accepted"] = counts.get(r or "accepted", 0) + 1
                out["cmu"][version] = counts
                print(f"CMU-1-Small-Region ({version}): {len(c['coords'])} candidates, {counts}")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
