"""The analysis after the per-slide ROI predictions: normalisation, filters, mixed
models (:mod:`emo.lme`), BH, per-slide Spearman and the Ki67 model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTableError
from .probes import normalise_counts, probe_predictions, variance_filter
from .settings import MIN_ROIS_SPEARMAN, PROLIFERATION_GENES, ROI_ID_COLUMNS


def spearman_per_slide(data: pd.DataFrame, target: str) -> list[dict]:
    """Spearman r between ``prediction`` and ``observed`` within each slide."""
    from scipy.stats import spearmanr

    rows = []
    for sample, group in data.groupby("sample", sort=True):
        row = {"probe": target, "sample": sample, "n_rois": len(group), "spearman_r": np.nan, "p": np.nan,
               "status": "ok"}
        if len(group) < MIN_ROIS_SPEARMAN:
            row["status"] = f"excluded: fewer than {MIN_ROIS_SPEARMAN} ROIs"
        elif group["prediction"].nunique() < 2 or group["observed"].nunique() < 2:
            row["status"] = "excluded: constant values"
        else:
            result = spearmanr(group["prediction"], group["observed"])
            row["spearman_r"], row["p"] = float(result.statistic), float(result.pvalue)
        rows.append(row)
    return rows


MODEL_COLUMNS = ["probe", "n_rois", "n_slides", "coefficient", "se", "ci_low", "ci_high", "lrt_chi2", "p",
                 "padj", "status", "message"]


def _fit_rows(datasets: Mapping[str, pd.DataFrame], fit) -> pd.DataFrame:
    from ..lme import benjamini_hochberg

    rows = []
    for target, data in datasets.items():
        result = fit(data["observed"].to_numpy(float), data["prediction"].to_numpy(float),
                     data["sample"].astype(str).to_numpy())
        rows.append({"probe": target, "n_rois": len(data), "n_slides": data["sample"].nunique(),
                     "coefficient": result.coefficient, "se": result.se, "ci_low": result.ci_low,
                     "ci_high": result.ci_high, "lrt_chi2": result.lrt_chi2, "p": result.p,
                     "status": result.status, "message": result.message})
    table = pd.DataFrame(rows, columns=[c for c in MODEL_COLUMNS if c != "padj"])
    table.insert(MODEL_COLUMNS.index("padj"), "padj", benjamini_hochberg(table["p"].to_numpy(float)))
    return table


@dataclass
class SpatialResults:
    probes: pd.DataFrame
    spearman: pd.DataFrame
    dropped: pd.DataFrame
    roi_values: pd.DataFrame
    excluded_rois: pd.DataFrame
    ki67: pd.DataFrame | None = None
    ki67_spearman: pd.DataFrame | None = None


def run_models(roi_preds: pd.DataFrame, counts: pd.DataFrame, settings: Mapping,
               ki67: pd.DataFrame | None = None, fit=None) -> SpatialResults:
    """Everything after the per-slide ROI predictions: normalisation, filters, LMMs,
    BH, per-slide Spearman, Ki67 model.

    ``fit(y, x, groups) -> emo.lme.LmmResult``; default from ``settings['backend']``.
    """
    from .. import lme

    if fit is None:
        fit = lme.fitter(settings["backend"])
    roi_keys = roi_preds[list(ROI_ID_COLUMNS)]
    # ROIs with counts but no geometry are an input error; ROIs without counts are skipped.
    merged_keys = counts[list(ROI_ID_COLUMNS)].merge(roi_keys, how="left", indicator=True)
    orphan = merged_keys[merged_keys["_merge"] == "left_only"]
    if not orphan.empty:
        raise InputTableError(f"probe-count table: slide {orphan['sample'].iloc[0]!r}, ROI "
                              f"{orphan['roi'].iloc[0]!r} is not in the ROI table ({len(orphan)} such ROIs); "
                              "add its geometry to the ROI table or drop its counts")
    excluded = []
    with_counts = roi_preds.merge(counts[list(ROI_ID_COLUMNS)], how="inner")
    no_counts = roi_preds.merge(counts[list(ROI_ID_COLUMNS)], how="left", indicator="which")
    for row in no_counts[no_counts["which"] == "left_only"].itertuples():
        excluded.append({"sample": row.sample, "roi": row.roi, "reason": "no probe counts"})
    min_cov = float(settings["min_tile_coverage"])
    low = with_counts["coverage"] < min_cov
    for row in with_counts[low].itertuples():
        excluded.append({"sample": row.sample, "roi": row.roi,
                         "reason": f"tile coverage {row.coverage:.3f} < min_tile_coverage {min_cov:g}"})
    usable = with_counts[~low].reset_index(drop=True)
    excluded_rois = pd.DataFrame(excluded, columns=["sample", "roi", "reason"]).sort_values(
        ["sample", "roi"], kind="mergesort").reset_index(drop=True)
    if usable.empty:
        raise InputTableError("spatial validation: no ROI has probe counts and enough tile coverage "
                              f"(min_tile_coverage {min_cov:g}); see the excluded-ROI table")

    normalised = normalise_counts(counts, list(settings.get("negative_probes") or []),
                                  float(settings["pseudocount"]))
    observed = usable[list(ROI_ID_COLUMNS)].merge(normalised, how="left")
    kept, dropped_var = variance_filter(observed, float(settings["min_variance"]))
    preds, skipped = probe_predictions(usable, kept, settings)
    dropped = pd.concat([dropped_var, skipped], ignore_index=True) if not skipped.empty else dropped_var
    dropped = dropped.sort_values("probe", kind="mergesort").reset_index(drop=True)
    analysed = [p for p in kept if p in preds.columns]
    if not analysed:
        raise InputTableError("spatial validation: no probe left to analyse (all dropped; see the dropped-probe "
                              "table). Check 'spatial.probe_gene_map' / 'multi_gene_probes' against the genes in "
                              "the tile predictions")
    long_rows, datasets, spearman_rows = [], {}, []
    for probe in sorted(analysed):
        data = pd.DataFrame({"sample": usable["sample"], "roi": usable["roi"],
                             "prediction": preds[probe].to_numpy(float),
                             "observed": observed[probe].to_numpy(float)})
        datasets[probe] = data
        long_rows.append(data.assign(probe=probe))
        spearman_rows.extend(spearman_per_slide(data, probe))
    probes_table = _fit_rows(datasets, fit)
    roi_values = pd.concat(long_rows, ignore_index=True)[["probe", "sample", "roi", "prediction", "observed"]]
    results = SpatialResults(probes=probes_table, spearman=pd.DataFrame(spearman_rows), dropped=dropped,
                             roi_values=roi_values, excluded_rois=excluded_rois)
    if ki67 is not None:
        results.ki67, results.ki67_spearman = ki67_model(usable, ki67, settings, fit)
    return results


def proliferation_score(roi_preds: pd.DataFrame, genes: Sequence[str]) -> np.ndarray:
    missing = [g for g in genes if g not in roi_preds.columns]
    if missing:
        raise ConfigError(f"config key 'spatial.proliferation_genes': {', '.join(missing)} have no tile "
                          "predictions; include them in the spatially predicted genes or remove 'spatial.ki67'")
    return roi_preds[list(genes)].mean(axis=1).to_numpy(float)


def ki67_model(usable: pd.DataFrame, ki67: pd.DataFrame, settings: Mapping, fit
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """log2(Ki67 + ki67_pseudocount) ~ proliferation score + (1 | slide)."""
    genes = list(settings.get("proliferation_genes") or PROLIFERATION_GENES)
    data = usable[list(ROI_ID_COLUMNS)].copy()
    data["prediction"] = proliferation_score(usable, genes)
    data = data.merge(ki67, how="inner")
    if data.empty:
        raise InputTableError("Ki67 table: no (sample, roi) matches an analysed ROI of the ROI table")
    value = data["ki67"].to_numpy(float) + float(settings["ki67_pseudocount"])
    if np.any(value <= 0):
        i = int(np.flatnonzero(value <= 0)[0])
        raise InputTableError(f"Ki67 table: slide {data['sample'].iloc[i]!r}, ROI {data['roi'].iloc[i]!r} has "
                              "Ki67 0, which has no log; set 'spatial.ki67_pseudocount' (e.g. 0.01 for fractions)")
    data["observed"] = np.log2(value)
    data = data.drop(columns="ki67")
    table = _fit_rows({"proliferation_score": data}, fit)
    return table, pd.DataFrame(spearman_per_slide(data, "proliferation_score"))
