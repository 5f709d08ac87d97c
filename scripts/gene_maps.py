"""Entry script of rule gene_maps (library: emo.gene_maps.plot_gene_maps)."""

import emo.smk
from emo.gene_maps import plot_gene_maps

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i = snakemake.input
    plot_gene_maps(snakemake.wildcards.sample, i.slide, i.tiles, i.predictions, list(snakemake.params.genes),
                   snakemake.params.maps, snakemake.output.png)
