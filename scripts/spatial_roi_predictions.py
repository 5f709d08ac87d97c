"""Snakemake entry: area-weighted ROI predictions of one slide."""

import emo.smk
from emo import io, provenance, spatial

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    sample = snakemake.wildcards.sample  # noqa: F821
    settings = snakemake.params.spatial  # noqa: F821
    genes = spatial.required_genes(settings, spatial.probe_columns(snakemake.input.counts))  # noqa: F821
    rois = spatial.read_validated_rois(snakemake.input.rois)  # noqa: F821
    table = spatial.slide_roi_predictions(sample, rois, snakemake.input.tiles,  # noqa: F821
                                          snakemake.input.predictions, genes=genes)  # noqa: F821
    log.info("slide %s: %d ROIs, coverage %s", sample, len(table),
             ", ".join(f"{c:.2f}" for c in table["coverage"]))
    io.write_tsv(table, snakemake.output.table)  # noqa: F821
    provenance.write_sidecar(snakemake.output.table, snakemake.params.code_version, {},  # noqa: F821
                             [snakemake.input.rois, snakemake.input.tiles, snakemake.input.predictions])  # noqa: F821
