"""Entry script of rule tile_qc_maps: per-slide tiling QC summary and the QC maps of the
most rejected slides (library: emo.tile_qc_map)."""

import emo.smk
from emo.tile_qc_map import write_qc_maps

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    chosen = write_qc_maps(sm.params.samples, list(sm.input.tiles), list(sm.input.slides), sm.output.summary,
                           list(sm.output.maps), sm.params.code_version, sm.params.tile_qc)
    log.info("QC summary of %d slides; maps of the most rejected: %s", len(sm.params.samples), ", ".join(chosen))
