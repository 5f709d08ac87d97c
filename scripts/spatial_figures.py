"""Snakemake entry: bar plot of -log10 padj, coefficient plot, Spearman boxplots."""

import pandas as pd

import emo.smk
from emo import spatial

with emo.smk.rule_logging(snakemake.log[0]):  # noqa: F821
    smk = snakemake  # noqa: F821
    settings = smk.params.spatial
    probes = pd.read_csv(smk.input.probes, sep="\t")
    spearman = pd.read_csv(smk.input.spearman, sep="\t", dtype={"sample": str})
    spatial.plot_padj(probes, smk.output.padj, settings["fdr"])
    spatial.plot_coefficients(probes, smk.output.coefficients, settings["fdr"])
    spatial.plot_spearman(spearman, smk.output.spearman)
