"""Snakemake entry: ROI overlay on the slide thumbnail with the tile-prediction heatmap."""

import pandas as pd

import emo.smk
from emo import spatial

with emo.smk.rule_logging(snakemake.log[0]):  # noqa: F821
    smk = snakemake  # noqa: F821
    settings = smk.params.spatial
    probes = pd.read_csv(smk.input.probes, sep="\t")
    probe = spatial.choose_overlay_probe(probes, settings)
    rois = spatial.read_validated_rois(smk.input.rois)
    spatial.plot_overlay(smk.wildcards.sample, smk.input.slide, smk.input.tiles, smk.input.predictions, rois,
                         probe, settings, smk.output.png)
