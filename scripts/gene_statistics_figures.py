"""Entry script of rule gene_statistics_figures (library: emo.figures.run_figures)."""

import emo.smk
from emo.stats import settings
from emo.figures import run_figures

snakemake = globals()["snakemake"]  # noqa: F821 (injected by Snakemake)

with emo.smk.rule_logging(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    cfg = settings(snakemake.params.statistics)
    run_figures(dict(i.items()), dict(o.items()), cfg, clinical_mapping=emo.smk.clinical_mapping(snakemake))
