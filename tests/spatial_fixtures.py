"""Synthetic spatial-transcriptomics study for the spatial-validation tests.

Slides are grids of square tiles with smooth per-gene prediction fields; ROIs are
rectangles and polygons (px and µm); ST log2 expression is planted as
``slide intercept + slope * ROI prediction + noise`` for planted probes and is
unrelated to the predictions for null probes; counts are built so that the
negative-probe normalisation recovers it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from emo import spatial

TILE = 100.0
NX, NY = 16, 12
MPP = 0.5
PLANTED = {"CD8A": ["CD8A"], "MKI67": ["MKI67"], "PD-L1": ["CD274"], "multi-krt": ["KRT18", "KRT19"]}
NULL_GENES = [f"NULL{i:02d}" for i in range(1, 13)]
LOW_VARIANCE = "CCL5"
MISSING = "FOXP3"          # has counts, no tile predictions
NEGATIVES = ["NegProbe-1", "NegProbe-2", "NegProbe-3"]
GENES = sorted({g for gs in PLANTED.values() for g in gs} | set(NULL_GENES) | {LOW_VARIANCE}
               | set(spatial.PROLIFERATION_GENES))


def settings(**overrides) -> dict:
    base = spatial.spatial_settings({
        "enabled": True, "negative_probes": NEGATIVES, "multi_gene_probes": {"multi-krt": ["KRT18", "KRT19"]},
        "probe_gene_map": {"PD-L1": "CD274"}, "min_variance": 0.001, "min_tile_coverage": 0.5})
    base.update(overrides)
    return base


def _field(rng, n_bumps=3):
    """A smooth random function on the slide (level-0 px)."""
    centres = rng.uniform([0, 0], [NX * TILE, NY * TILE], size=(n_bumps, 2))
    amps = rng.normal(0, 1.5, n_bumps)
    widths = rng.uniform(250, 500, n_bumps)

    def f(x, y):
        out = np.zeros_like(x, dtype=float)
        for (cx, cy), a, w in zip(centres, amps, widths):
            out += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * w ** 2))
        return out
    return f


def write_slide(root: Path, sample: str, rng, hole: bool = False, encoder: str = "enc") -> tuple[Path, Path]:
    """Tile store + prediction store of one synthetic slide; returns their paths."""
    coords = [(x * TILE, y * TILE) for y in range(NY) for x in range(NX)
              if not (hole and x >= NX - 4 and y >= NY - 4)]  # no tissue in the bottom-right corner
    coords = np.asarray(coords, dtype=np.int64)
    centres = coords + TILE / 2
    values = np.column_stack([rng.normal(0, 0.5) + _field(rng)(centres[:, 0], centres[:, 1])
                              + rng.normal(0, 0.05, len(coords)) for _ in GENES]).astype(np.float32)
    tiles = root / "results" / "tiles" / f"{sample}.h5"
    preds = root / "results" / "predictions" / encoder / "slides" / f"{sample}.h5"
    tiles.parent.mkdir(parents=True, exist_ok=True)
    preds.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(tiles, "w") as h5:
        h5.attrs.update({"sample": sample, "mpp": MPP, "level0_width": NX * TILE, "level0_height": NY * TILE})
        ds = h5.create_dataset("coords", data=coords)
        ds.attrs.update({"patch_level": 0, "patch_size": int(TILE), "patch_size_level0": TILE, "downsample": 1.0})
    with h5py.File(preds, "w") as h5:
        ds = h5.create_dataset("coords", data=coords)
        ds.attrs.update({"patch_level": 0, "patch_size": int(TILE), "patch_size_level0": TILE, "downsample": 1.0})
        strings = h5py.string_dtype("utf-8")
        h5.create_dataset("genes", data=np.array(GENES, dtype=object), dtype=strings)
        h5.create_dataset("slide_mean", data=values.mean(0))
        h5.create_dataset("tiles/values", data=values)
        h5.create_dataset("tiles/genes", data=np.array(GENES, dtype=object), dtype=strings)
    return tiles, preds


def _random_roi(rng, sample, name, units):
    size = 250.0
    x, y = rng.uniform(0, NX * TILE - size - 400), rng.uniform(0, NY * TILE - size - 400)
    row = {"sample": sample, "roi": name, "units": units}
    k = 1.0 if units == "px" else MPP
    if rng.random() < 0.3:  # pentagon
        angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
        pts = np.column_stack([x + size / 2 + size / 2 * np.cos(angles), y + size / 2 + size / 2 * np.sin(angles)])
        row.update(shape="polygon", polygon=spatial.format_polygon(pts * k), x="", y="", width="", height="")
    else:
        row.update(shape="rect", x=f"{x * k:.3f}", y=f"{y * k:.3f}", width=f"{size * k:.3f}",
                   height=f"{size * k:.3f}", polygon="")
    return row


def build_study(root: Path, n_slides: int = 10, rois_per_slide: int = 8, seed: int = 1,
                slope: float = 1.0, noise: float = 0.3, encoder: str = "enc") -> dict:
    """Write a synthetic study under ``root``; returns paths and the truth."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    samples = [f"ST-{i:02d}" for i in range(n_slides)]
    roi_rows, stores = [], {}
    for i, sample in enumerate(samples):
        stores[sample] = write_slide(root, sample, rng, hole=(i == 0), encoder=encoder)
        n = 1 if i == n_slides - 1 else rois_per_slide        # last slide: a single ROI
        for j in range(n):
            roi_rows.append(_random_roi(rng, sample, f"R{j + 1:02d}", "um" if j % 2 else "px"))
    # slide 0: an ROI in the tissue-free corner (coverage 0) and one without counts
    roi_rows.append({"sample": samples[0], "roi": "HOLE", "shape": "rect", "units": "px",
                     "x": f"{NX * TILE - 300}", "y": f"{NY * TILE - 300}", "width": "250", "height": "250",
                     "polygon": ""})
    roi_rows.append(dict(_random_roi(rng, samples[0], "NOCOUNTS", "px")))
    rois_path = root / "rois.tsv"
    pd.DataFrame(roi_rows)[["sample", "roi", "shape", "units", "x", "y", "width", "height", "polygon"]].to_csv(
        rois_path, sep="\t", index=False)
    rois = spatial.load_rois(rois_path)
    roi_preds = pd.concat([spatial.slide_roi_predictions(s, rois, *stores[s]) for s in samples], ignore_index=True)

    n = len(roi_preds)
    filled = roi_preds.fillna(0.0)  # the tissue-free ROI has no prediction
    slide_effect = {s: rng.normal(0, 1.0) for s in samples}
    intercept = np.array([slide_effect[s] for s in roi_preds["sample"]])
    neg_true = 30.0 * np.exp(rng.normal(0, 0.3, n))
    counts = roi_preds[["sample", "roi"]].copy()
    for probe in NEGATIVES:
        counts[probe] = rng.poisson(neg_true)
    neg_mean = counts[NEGATIVES].mean(axis=1).to_numpy()
    truth_log2 = {}
    for probe, genes in PLANTED.items():
        pred = filled[genes].sum(axis=1).to_numpy()
        truth_log2[probe] = 4 + intercept + slope * pred + rng.normal(0, noise, n)
    for gene in NULL_GENES:
        truth_log2[gene] = 4 + intercept + rng.normal(0, 0.6, n)
    truth_log2[MISSING] = 4 + rng.normal(0, 0.6, n)
    for probe, value in truth_log2.items():
        counts[probe] = np.round(neg_mean * 2.0 ** value).astype(int)
    counts[LOW_VARIANCE] = np.round(neg_mean * 2.0 ** 8).astype(int)   # log2 ratio ~ 8, variance ~ 1e-6
    counts = counts[~((counts["sample"] == samples[0]) & (counts["roi"] == "NOCOUNTS"))]
    counts_path = root / "probe_counts.tsv"
    counts.to_csv(counts_path, sep="\t", index=False)

    prolif = filled[list(spatial.PROLIFERATION_GENES)].mean(axis=1).to_numpy()
    ki67 = roi_preds[["sample", "roi"]].copy()
    ki67["ki67"] = np.clip(2.0 ** (-3 + 0.3 * intercept + 0.8 * prolif + rng.normal(0, 0.3, n)), 1e-4, 1.0)
    ki67_path = root / "ki67.tsv"
    ki67.to_csv(ki67_path, sep="\t", index=False)
    return {"root": root, "samples": samples, "stores": stores, "rois_path": rois_path, "rois": rois,
            "roi_preds": roi_preds, "counts_path": counts_path, "ki67_path": ki67_path,
            "planted": sorted(PLANTED), "null": sorted(NULL_GENES)}
