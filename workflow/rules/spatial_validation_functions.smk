# Stage: spatial_validation. Tile-level predictions vs spatial-transcriptomics ROIs
# (EMO "ST analysis", Fig. 4): ROI predictions (area-weighted tile means), per-probe
# LMM ST ~ prediction + (1 | slide) by ML in lme4 with an LRT, BH; per-slide Spearman;
# Ki67 LMM on the 11-gene proliferation score. See docs/spatial_validation.md.

from emo.workflow.plan import check_spatial_samples as _spatial_check_samples

SPATIAL = config["spatial"]
SPATIAL_DIR = "results/spatial/{encoder}"


def _spatial_samples():
    """Slides with ROIs (from the validated ROI table; re-evaluated after the checkpoint)."""
    import pandas as pd

    path = checkpoints.spatial_rois.get().output.rois
    samples = sorted(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)["sample"].unique())
    _spatial_check_samples(samples, SAMPLE_NAMES, config["samples"], f"ROI table {SPATIAL['rois']}")
    return samples


def _spatial_roi_prediction_files(wildcards):
    return expand(f"{SPATIAL_DIR}/rois/{{sample}}.tsv", encoder=wildcards.encoder, sample=_spatial_samples())


def _spatial_model_inputs(wildcards):
    inputs = {"roi_predictions": _spatial_roi_prediction_files(wildcards), "counts": SPATIAL["probe_counts"]}
    if SPATIAL["ki67"]:
        inputs["ki67"] = SPATIAL["ki67"]
    return inputs


def _spatial_model_outputs():
    names = ["probes", "spearman", "dropped", "roi_values", "excluded_rois"]
    files = {"dropped": "dropped_probes"}
    if SPATIAL["ki67"]:
        names += ["ki67", "ki67_spearman"]
    return {name: f"{SPATIAL_DIR}/{files.get(name, name)}.tsv" for name in names}


def _spatial_overlay_targets(wildcards):
    return expand(f"{SPATIAL_DIR}/overlays/{{sample}}.png", encoder=ENCODER, sample=_spatial_samples())


def spatial_validation_targets():
    if not SPATIAL["enabled"]:
        return []
    outputs = [path.format(encoder=ENCODER) for path in _spatial_model_outputs().values()]
    figures = [f"{SPATIAL_DIR}/figures/{name}.png".format(encoder=ENCODER)
               for name in ("padj", "coefficients", "spearman")]
    return outputs + figures + [_spatial_overlay_targets]


