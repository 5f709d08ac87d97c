"""Probe processing: counts divided by the ROI's mean negative-probe count, log2;
probes whose log2 values vary less than ``min_variance`` are dropped (listed). A
multi-gene probe's prediction is the sum of its member genes' predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTableError
from .settings import PROLIFERATION_GENES, ROI_ID_COLUMNS


def probe_genes(probe: str, settings: Mapping) -> list[str]:
    """Genes whose predictions make up a probe's prediction (summed if several)."""
    multi = settings.get("multi_gene_probes") or {}
    if probe in multi:
        return list(multi[probe])
    mapping = settings.get("probe_gene_map") or {}
    return [mapping.get(probe, probe)]


def probe_columns(path: str | Path) -> list[str]:
    """Probe names in the header of a probe-count table (no validation)."""
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
    return [c.strip() for c in header if c.strip() not in ROI_ID_COLUMNS]


def required_genes(settings: Mapping, probes: Iterable[str] = ()) -> list[str]:
    """Genes the spatial stage needs in the tile predictions: the members of the
    configured multi-gene probes, the mapped genes, the given probes' genes and, if a
    Ki67 table is configured, the proliferation genes."""
    genes: set[str] = set()
    for members in (settings.get("multi_gene_probes") or {}).values():
        genes.update(members)
    genes.update((settings.get("probe_gene_map") or {}).values())
    for probe in probes:
        genes.update(probe_genes(probe, settings))
    if settings.get("ki67"):
        genes.update(settings.get("proliferation_genes") or PROLIFERATION_GENES)
    return sorted(genes)


def normalise_counts(counts: pd.DataFrame, negative_probes: Sequence[str],
                     pseudocount: float = 0.0) -> pd.DataFrame:
    """log2(count / mean of the ROI's negative-probe counts), per ROI.

    Returns (sample, roi, one column per non-negative probe). With ``pseudocount`` p
    the value is log2((count + p) / (mean_negative + p)).
    """
    if not negative_probes:
        raise ConfigError("config key 'spatial.negative_probes' is empty; list the negative-control probe "
                          "columns of the probe-count table (EMO used six)")
    missing = [p for p in negative_probes if p not in counts.columns]
    if missing:
        raise ConfigError(f"config key 'spatial.negative_probes': {', '.join(missing)} not columns of the "
                          f"probe-count table (columns: {', '.join(c for c in counts.columns[2:][:10])} ...)")
    probes = [c for c in counts.columns if c not in ROI_ID_COLUMNS and c not in negative_probes]
    if not probes:
        raise InputTableError("probe-count table has no target probes besides the negative probes")
    negative_mean = counts[list(negative_probes)].mean(axis=1).to_numpy() + pseudocount
    values = counts[probes].to_numpy(dtype=float) + pseudocount
    if np.any(negative_mean <= 0):
        i = int(np.flatnonzero(negative_mean <= 0)[0])
        raise InputTableError(f"slide {counts['sample'].iloc[i]!r}, ROI {counts['roi'].iloc[i]!r}: all negative "
                              "probes count 0, so counts cannot be normalised; set 'spatial.pseudocount' (e.g. 1) "
                              "or drop the ROI")
    if np.any(values <= 0):
        i, j = (int(a[0]) for a in np.nonzero(values <= 0))
        raise InputTableError(f"slide {counts['sample'].iloc[i]!r}, ROI {counts['roi'].iloc[i]!r}, probe "
                              f"{probes[j]!r}: count 0 has no log; set 'spatial.pseudocount' (e.g. 1)")
    out = counts[list(ROI_ID_COLUMNS)].copy()
    logs = np.log2(values / negative_mean[:, None])
    for j, probe in enumerate(probes):
        out[probe] = logs[:, j]
    return out


def variance_filter(normalised: pd.DataFrame, min_variance: float) -> tuple[list[str], pd.DataFrame]:
    """Probes kept (variance >= min_variance) and the dropped ones with their variance.

    Variance is the sample variance (ddof=1, as R's ``var``) over all ROIs.
    """
    probes = [c for c in normalised.columns if c not in ROI_ID_COLUMNS]
    variances = normalised[probes].var(axis=0, ddof=1)
    kept = [p for p in probes if variances[p] >= min_variance]
    dropped = pd.DataFrame({"probe": [p for p in probes if p not in kept],
                            "variance": [float(variances[p]) for p in probes if p not in kept]})
    dropped["reason"] = f"variance < {min_variance:g}"
    return kept, dropped


def probe_predictions(roi_preds: pd.DataFrame, probes: Sequence[str], settings: Mapping
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-ROI predictions of each probe (sum of member genes) and the probes skipped
    because some member gene has no tile prediction."""
    out = roi_preds[list(ROI_ID_COLUMNS)].copy()
    skipped = []
    for probe in probes:
        genes = probe_genes(probe, settings)
        missing = [g for g in genes if g not in roi_preds.columns]
        if missing:
            skipped.append({"probe": probe, "variance": np.nan,
                            "reason": f"no tile predictions for {','.join(missing)}"})
            continue
        out[probe] = roi_preds[genes].sum(axis=1, min_count=len(genes))
    return out, pd.DataFrame(skipped, columns=["probe", "variance", "reason"])
