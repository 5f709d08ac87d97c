# Stage: spatial_validation. Tile-level predictions vs spatial-transcriptomics ROIs
# (EMO "ST analysis", Fig. 4): ROI predictions (area-weighted tile means), per-probe
# LMM ST ~ prediction + (1 | slide) by ML in lme4 with an LRT, BH; per-slide Spearman;
# Ki67 LMM on the 11-gene proliferation score. See docs/spatial_validation.md.

from emo.errors import InputTableError as _SpatialInputError
from emo.spatial import load_rois as _spatial_load_rois, spatial_settings as _spatial_settings

SPATIAL = _spatial_settings(config.get("spatial"))
SPATIAL_DIR = "results/spatial/{encoder}"
SPATIAL_CODE = ("spatial", "lme", "io", "provenance", "smk", "errors")


def _spatial_check_samples(samples, where):
    unknown = sorted(set(samples) - set(SAMPLE_NAMES))
    if unknown:
        raise _SpatialInputError(
            f"{where}: slide(s) {', '.join(unknown[:5])} are not in the sample sheet {config['samples']}; "
            "add them to the sheet (they need tiles and predictions) or remove their ROIs")


if SPATIAL["enabled"]:
    from emo.errors import ConfigError as _SpatialConfigError

    for _key in ("rois", "probe_counts"):
        if not SPATIAL.get(_key):
            raise _SpatialConfigError(f"config key 'spatial.{_key}' is required when 'spatial.enabled' is true")
    if not SPATIAL.get("negative_probes"):
        raise _SpatialConfigError("config key 'spatial.negative_probes' is empty; list the negative-control "
                                  "probe columns of the probe-count table")
    # Validate the ROI table now if it exists already (early, clear errors); a generated
    # table (demo) is validated by the checkpoint below.
    if Path(SPATIAL["rois"]).is_file():
        _spatial_check_samples(_spatial_load_rois(SPATIAL["rois"])["sample"], f"ROI table {SPATIAL['rois']}")
    # Genes named in the spatial config must have tile-level predictions.
    _tile_genes = (config.get("predictions") or {}).get("tile_genes", "all")
    if isinstance(_tile_genes, list):
        from emo.spatial import required_genes as _spatial_required_genes

        _missing = [g for g in _spatial_required_genes(SPATIAL) if g not in _tile_genes]
        if _missing:
            raise _SpatialConfigError(
                f"config key 'predictions.tile_genes' lacks {', '.join(_missing)}, needed by "
                "'spatial.multi_gene_probes' / 'spatial.probe_gene_map' / 'spatial.proliferation_genes' (with "
                "'spatial.ki67'); add them to predictions.tile_genes or set it to 'all'")


def _spatial_samples():
    """Slides with ROIs (from the validated ROI table; re-evaluated after the checkpoint)."""
    import pandas as pd

    path = checkpoints.spatial_rois.get().output.rois
    samples = sorted(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)["sample"].unique())
    _spatial_check_samples(samples, f"ROI table {SPATIAL['rois']}")
    return samples


def _spatial_roi_prediction_files(wildcards):
    return expand(f"{SPATIAL_DIR}/rois/{{sample}}.tsv", encoder=wildcards.encoder, sample=_spatial_samples())


def _spatial_model_inputs(wildcards):
    inputs = {"roi_predictions": _spatial_roi_prediction_files(wildcards), "counts": SPATIAL["probe_counts"]}
    if SPATIAL.get("ki67"):
        inputs["ki67"] = SPATIAL["ki67"]
    return inputs


def _spatial_model_outputs():
    names = ["probes", "spearman", "dropped", "roi_values", "excluded_rois"]
    files = {"dropped": "dropped_probes"}
    if SPATIAL.get("ki67"):
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


