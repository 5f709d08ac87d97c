"""How much of each planted compartment survives tile QC (demo slides only: needs the truth).

Used by tests/unit/test_tiling_tissue.py and bench/benchmark_tissue_qc.py to show that
fat is kept like the other compartments and that glass is rejected.
"""

from __future__ import annotations

import numpy as np

from .design import LABELS


def tile_cover(shape: tuple[int, int], label_um: float, coords: np.ndarray, mpp: float,
               tile_size0: float) -> np.ndarray:
    """Bool map (``shape``, at ``label_um`` µm/px) of the area covered by tiles at level-0 ``coords``."""
    covered = np.zeros(shape, dtype=bool)
    scale = mpp / label_um                      # label px per level-0 px
    for x, y in np.asarray(coords, dtype=np.float64).reshape(-1, 2):
        r0, r1 = int(round(y * scale)), int(round((y + tile_size0) * scale))
        c0, c1 = int(round(x * scale)), int(round((x + tile_size0) * scale))
        covered[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
    return covered


def compartment_shares(labels: np.ndarray, label_um: float, candidates: dict, mpp: float,
                       tile_size0: float) -> dict[str, dict[str, float]]:
    """Per planted compartment (and ``background`` = glass): the share of its area in accepted
    tiles (``accepted``) and in tiles rejected for each reason (``background``, ...)."""
    reasons = np.asarray(candidates["reject_reason"], dtype=object)
    coords = np.asarray(candidates["coords"])
    groups = {"accepted": reasons == ""}
    groups.update({str(r): reasons == r for r in sorted(set(reasons) - {""})})
    cover = {g: tile_cover(labels.shape, label_um, coords[sel], mpp, tile_size0) for g, sel in groups.items()}
    out: dict[str, dict[str, float]] = {}
    for name, code in LABELS.items():
        where = labels == code
        n = int(where.sum())
        out[name] = {g: (float(c[where].sum() / n) if n else float("nan")) for g, c in cover.items()}
    return out


# Slides of the QC comparison: every compartment at the same share, three mixing scales
# (fine to coarse), 20x; seeds fixed so the numbers in docs/tiling.md can be reproduced.
QC_SLIDES = ((11, 150.0), (12, 60.0), (13, 350.0))
QC_SIZE_UM = (2600.0, 1900.0)


def write_qc_slide(path, seed: int, mixing_um: float, mpp: float = 0.5, render_um_per_px: float = 1.0):
    """Write a demo slide with equal compartment shares to ``path``; returns its Layout (the truth)."""
    from .design import COMPARTMENTS, SlideSpec
    from .layout import make_layout
    from .render import render, write_svs

    spec = SlideSpec(f"QC{seed}", f"QC{seed}", "QC", mpp, QC_SIZE_UM[0], QC_SIZE_UM[1], float(mixing_um),
                     {c: 1.0 / len(COMPARTMENTS) for c in COMPARTMENTS}, False, False, int(seed))
    layout = make_layout(spec)
    write_svs(render(layout, render_um_per_px), path, render_um_per_px, mpp, 80, spec.sample)
    return layout
