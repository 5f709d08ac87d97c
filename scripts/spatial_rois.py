"""Snakemake entry: validate the ROI table (checkpoint spatial_rois)."""

import emo.smk
from emo import io, provenance, spatial

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    rois = spatial.load_rois(snakemake.input.rois)  # noqa: F821
    log.info("ROI table: %d ROIs on %d slides", len(rois), rois["sample"].nunique())
    io.write_tsv(spatial.rois_to_table(rois), snakemake.output.rois)  # noqa: F821
    provenance.write_sidecar(snakemake.output.rois, snakemake.params.code_version,  # noqa: F821
                             {}, [snakemake.input.rois])  # noqa: F821
